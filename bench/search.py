"""Full-text search at size: 1,000,000 messages from 1,000 users, searched through
``store/search.py`` (the same table and query ``GET /api/search`` runs).

The messages are generated text (a Zipf-distributed 20,000-word vocabulary, 12-40 words
each) loaded straight into the search table in bulk: what is measured is the query, not
the event path that fills the table one message at a time in production. Each query is
one or two words for a random user; the floor, measured in the same run, is one
primary-key read.

    python -m bench.search [--database-url postgresql://...] [--messages 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from typing import Any

import numpy as np
from sqlalchemy import text

from bench.common import FLOOR_HEADERS, database_url, print_table, rows_against_floor
from parley.store import migrate, search
from parley.store.db import Database

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


async def run(url: str, n: int, queries: int) -> list[list[Any]]:
    rng = random.Random(3)
    db = Database(url)
    await migrate.upgrade(db)
    vocabulary = words(rng)
    load_s = await load(db, n, vocabulary, rng)
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
    ]
    hits = [0]

    def count(found: object) -> None:
        hits[0] += len(found) if isinstance(found, list) else 0

    rows = await rows_against_floor(scenarios, queries, count)
    await db.close()
    print(f"loaded {n:,} messages of {USERS} users in {load_s:.0f} s; {hits[0]:,} results returned")
    return rows


async def _query(db: Database, rng: random.Random, terms: list[str]) -> list[Any]:
    owner = f"{rng.randrange(USERS):032x}"
    return await search.search(db, owner, " ".join(terms), 20)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url(args.database_url, tmp, "search.db")
        rows = asyncio.run(run(url, args.messages, args.queries))
    print_table(["query", "queries", *FLOOR_HEADERS], rows)


if __name__ == "__main__":
    main()
