"""Semantic search over chat messages with the real local embedder, on SQLite and
PostgreSQL: a question found by meaning with no word in common, fused with full-text hits
by reciprocal rank fusion, only ever among the asking user's own messages, and forgotten
with a deleted conversation."""

from __future__ import annotations

import pytest

from parley.chat.conversations import Conversations
from parley.chat.parts import text_part
from parley.chat.semantic_search import RRF_K, SemanticSearch, fuse
from parley.gateway.cache.embedders import LocalEmbedder
from parley.store.db import Database
from parley.store.search import Filters
from tests.integration.conftest import ADA, BOB


def test_fusion_ranks_what_both_lists_found_first() -> None:
    text = [("c", "1"), ("c", "2"), ("c", "3")]
    meaning = [("c", "3"), ("c", "4")]
    fused = fuse(text, meaning, limit=10)
    # ties (2 and 4: both second in their list) keep the order they were first seen in
    assert [key for key, _ in fused] == [("c", "3"), ("c", "1"), ("c", "2"), ("c", "4")]
    assert fused[0][1] == pytest.approx(1 / (RRF_K + 3) + 1 / (RRF_K + 1))
    assert len(fuse(text, meaning, limit=2)) == 2


@pytest.fixture
def chat(db: Database, local: LocalEmbedder) -> Conversations:
    conversations = Conversations(db)
    conversations.semantic = SemanticSearch(db, local)
    return conversations


async def say(chat: Conversations, owner: str, text: str) -> tuple[str, str]:
    conversation = await chat.create(owner)
    added = await chat.add_message(owner, conversation["id"], role="user", content=text_part(text))
    return conversation["id"], added["id"]


async def test_meaning_finds_what_words_cannot_and_fuses_with_words(chat: Conversations) -> None:
    assert chat.semantic is not None
    bread = await say(chat, ADA, "How do I bake sourdough bread at home?")
    capital = await say(chat, ADA, "What is the capital of Australia?")
    puppy = await say(chat, ADA, "Tips for training a puppy to sit")
    bobs_loaf = await say(chat, BOB, "My homemade loaf recipe with a sourdough starter")
    adas = {bread[0], capital[0], puppy[0]}
    await chat.semantic.drain()

    query = "recipe for a homemade loaf"
    assert await chat.search(ADA, query, mode="text") == []  # no word of it in Ada's messages
    found = await chat.search(ADA, query)
    assert (found[0]["conversation_id"], found[0]["message_id"]) == bread
    assert found[0]["matched"] == ["meaning"]
    assert "sourdough" in found[0]["snippet"]
    assert {r["conversation_id"] for r in found} <= adas  # never Bob's loaf
    bobs = await chat.search(BOB, query)
    assert [(r["conversation_id"], r["message_id"]) for r in bobs] == [bobs_loaf]

    both = await chat.search(ADA, "the capital of Australia")
    assert (both[0]["conversation_id"], both[0]["message_id"]) == capital
    assert both[0]["matched"] == ["text", "meaning"]
    assert "<mark>" in both[0]["snippet"]

    # filters hold for what meaning finds too
    assert await chat.search(ADA, query, filters=Filters(role="assistant")) == []
    assert await chat.search(ADA, query, filters=Filters(kind="title")) == []
    elsewhere = await chat.search(ADA, query, filters=Filters(conversation_id=puppy[0]))
    assert {r["conversation_id"] for r in elsewhere} <= {puppy[0]}
    mine = await chat.search(ADA, query, filters=Filters(conversation_id=bread[0], role="user"))
    assert [(r["conversation_id"], r["message_id"]) for r in mine] == [bread]

    await chat.delete(ADA, bread[0])
    after = await chat.search(ADA, query)
    assert all(r["conversation_id"] != bread[0] for r in after)
