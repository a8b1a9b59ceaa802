"""The semantic cache with the real local embedder (all-MiniLM-L6-v2): paraphrases hit,
and the known traps do not, even below any sane threshold, because the agreement check
refuses them: negation, opposites, other numbers, other names, another answer language."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from parley.config.models import CacheConfig
from parley.gateway.cachekey import Question, plan_for, question_of
from parley.gateway.caller import Caller
from parley.gateway.embedders import LocalEmbedder, MicroBatcher, Vectors
from parley.gateway.semantic import SemanticCache
from parley.gateway.types import ChatRequest, UserMessage

CONFIG = CacheConfig(enabled=True, semantic=True)
LOW = 0.5
"""Far below the default threshold: what refuses the traps here is the agreement check."""


@pytest.fixture(scope="module")
def local() -> Iterator[LocalEmbedder]:
    embedder = LocalEmbedder()
    embedder.start().result()
    yield embedder
    embedder.close()


def question(text: str, team: str = "t1") -> Question:
    request = ChatRequest(model="chat", messages=[UserMessage(text)])
    plan = plan_for(request, "chat", Caller(team_id=team), CONFIG, None)
    assert plan is not None
    found = question_of(plan, request)
    assert found is not None
    return found


def vector(local: LocalEmbedder, text: str) -> Vectors:
    return asyncio.run(local.embed([text]))


def cache_with(local: LocalEmbedder, stored: str, team: str = "t1") -> SemanticCache:
    cache = SemanticCache({"local": MicroBatcher(local)}, max_entries=100)
    cache.add(question(stored, team), vector(local, stored), f"addr:{stored}", 2**62)
    return cache


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("How do I reset my password?", "how can I reset my password"),
        ("What is the capital of France?", "What's the capital city of France?"),
    ],
)
def test_a_paraphrase_hits(local: LocalEmbedder, stored: str, asked: str) -> None:
    cache = cache_with(local, stored)
    match = cache.nearest(question(asked), vector(local, asked), 0.8, 0)
    assert match is not None
    assert match.address == f"addr:{stored}"
    assert match.similarity >= 0.8


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("How do I start the database server?", "How do I stop the database server?"),
        ("Is it safe to eat raw eggs?", "Is it not safe to eat raw eggs?"),
        ("Why can I log in on my phone?", "Why can't I log in on my phone?"),
        ("What is 12 times 13?", "What is 12 times 14?"),
        ("How far is it from Paris to Berlin?", "How far is it from Paris to Madrid?"),
        ("Who won the election, Biden or Trump?", "Who won the election, Trump or Biden?"),
        (
            "Explain recursion briefly, answer in French.",
            "Explain recursion briefly, answer in Spanish.",
        ),
        ("What are the advantages of Rust?", "What are the disadvantages of Rust?"),
    ],
)
def test_the_traps_never_hit(local: LocalEmbedder, stored: str, asked: str) -> None:
    cache = cache_with(local, stored)
    similarity = cache.candidates(question(asked), vector(local, asked), 1)[0][1]
    assert similarity >= LOW  # the bi-encoder alone would call them neighbours
    assert cache.nearest(question(asked), vector(local, asked), LOW, 0) is None


def test_no_semantic_hit_crosses_namespaces(local: LocalEmbedder) -> None:
    text = "How do I reset my password?"
    cache = cache_with(local, text, team="red")
    assert cache.nearest(question(text, team="blue"), vector(local, text), LOW, 0) is None
    assert cache.nearest(question(text, team="red"), vector(local, text), LOW, 0) is not None


def test_expired_and_invalidated_entries_are_forgotten(local: LocalEmbedder) -> None:
    text = "How do I reset my password?"
    cache = SemanticCache({"local": MicroBatcher(local)}, max_entries=100)
    cache.add(question(text), vector(local, text), "addr:old", expires_ms=1_000)
    assert cache.nearest(question(text), vector(local, text), LOW, now_ms=2_000) is None
    assert len(cache) == 0
    cache.add(question(text), vector(local, text), "addr:new", expires_ms=2**62)
    cache.drop("team.t1", None)
    assert cache.nearest(question(text), vector(local, text), LOW, 0) is None


def test_the_oldest_entries_leave_beyond_the_bound(local: LocalEmbedder) -> None:
    cache = SemanticCache({"local": MicroBatcher(local)}, max_entries=2)
    for i, text in enumerate(["first question", "second question", "third question"]):
        cache.add(question(text), vector(local, text), f"addr:{i}", 2**62)
    assert len(cache) == 2
    asked = "first question"
    found = cache.nearest(question(asked), vector(local, asked), 0.99, 0)
    assert found is None
