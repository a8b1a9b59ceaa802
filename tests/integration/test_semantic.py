"""The semantic cache with the real local embedder (all-MiniLM-L6-v2), on both indexes
(in process, and PostgreSQL with pgvector): paraphrases hit, and the known traps do not,
even below any sane threshold, because the agreement check refuses them: negation,
opposites, other numbers, other names, another answer language."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from parley.config import Settings
from parley.config.models import CacheConfig
from parley.gateway.accounting.caller import Caller
from parley.gateway.cache.embedders import LocalEmbedder, MicroBatcher, Vectors
from parley.gateway.cache.index import MemoryIndex, PgVectorIndex, SemanticIndex
from parley.gateway.cache.keys import Question, plan_for, question_of
from parley.gateway.cache.semantic import SemanticCache
from parley.schema.chat import ChatRequest, UserMessage
from parley.store.db import Database
from parley.store.semantic import SemanticRows
from tests.backends import postgres_database

CONFIG = CacheConfig(enabled=True, semantic=True)
LOW = 0.5
"""Far below the default threshold: what refuses the traps here is the agreement check."""


def question(text: str, team: str = "t1") -> Question:
    request = ChatRequest(model="chat", messages=[UserMessage(text)])
    plan = plan_for(request, "chat", Caller(team_id=team), CONFIG, None)
    assert plan is not None
    found = question_of(plan, request)
    assert found is not None
    return found


@pytest.fixture(params=["memory", "pgvector"])
def pg_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for the in-process index; else a fresh PostgreSQL database (made outside the
    test's event loop)."""
    if request.param == "memory":
        yield None
        return
    yield from postgres_database()


@pytest.fixture
async def index(pg_url: str | None) -> AsyncIterator[SemanticIndex]:
    if pg_url is None:
        yield MemoryIndex(max_entries=100)
        return
    db = Database(Settings(database_url=pg_url).database_url)  # the async driver
    rows = SemanticRows(db)
    await rows.ensure()
    yield PgVectorIndex(rows)
    await db.close()


async def vector(local: LocalEmbedder, text: str) -> Vectors:
    return await local.embed([text])


async def cache_with(
    local: LocalEmbedder, index: SemanticIndex, stored: str, team: str = "t1"
) -> SemanticCache:
    cache = SemanticCache({"local": MicroBatcher(local)}, index)
    await cache.remember(
        question(stored, team), await vector(local, stored), f"addr:{stored}", 2**62
    )
    return cache


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("How do I reset my password?", "how can I reset my password"),
        ("What is the capital of France?", "What's the capital city of France?"),
    ],
)
async def test_a_paraphrase_hits(
    local: LocalEmbedder, index: SemanticIndex, stored: str, asked: str
) -> None:
    cache = await cache_with(local, index, stored)
    match = await cache.nearest(question(asked), await vector(local, asked), 0.8, 0)
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
async def test_the_traps_never_hit(
    local: LocalEmbedder, index: SemanticIndex, stored: str, asked: str
) -> None:
    cache = await cache_with(local, index, stored)
    asked_vector = await vector(local, asked)
    nearest = await index.search(question(asked), asked_vector, 1)
    assert nearest[0].similarity >= LOW  # the bi-encoder alone would call them neighbours
    assert await cache.nearest(question(asked), asked_vector, LOW, 0) is None


async def test_no_semantic_hit_crosses_namespaces(
    local: LocalEmbedder, index: SemanticIndex
) -> None:
    text = "How do I reset my password?"
    cache = await cache_with(local, index, text, team="red")
    asked = await vector(local, text)
    assert await cache.nearest(question(text, team="blue"), asked, LOW, 0) is None
    assert await cache.nearest(question(text, team="red"), asked, LOW, 0) is not None


async def test_expired_and_invalidated_entries_are_forgotten(
    local: LocalEmbedder, index: SemanticIndex
) -> None:
    text = "How do I reset my password?"
    cache = SemanticCache({"local": MicroBatcher(local)}, index)
    asked = await vector(local, text)
    await cache.remember(question(text), asked, "addr:old", expires_ms=1_000)
    assert await cache.nearest(question(text), asked, LOW, now_ms=2_000) is None
    assert await index.search(question(text), asked, 5) == []
    await cache.remember(question(text), asked, "addr:new", expires_ms=2**62)
    await cache.remember(question(text, team="t2"), asked, "addr:other", expires_ms=2**62)
    await cache.drop("team.t1", None)
    assert await cache.nearest(question(text), asked, LOW, 0) is None
    assert await cache.nearest(question(text, team="t2"), asked, LOW, 0) is not None


async def test_the_oldest_entries_leave_beyond_the_bound(local: LocalEmbedder) -> None:
    index = MemoryIndex(max_entries=2)
    cache = SemanticCache({"local": MicroBatcher(local)}, index)
    for i, text in enumerate(["first question", "second question", "third question"]):
        await cache.remember(question(text), await vector(local, text), f"addr:{i}", 2**62)
    assert len(cache) == 2
    asked = "first question"
    assert await cache.nearest(question(asked), await vector(local, asked), 0.99, 0) is None
