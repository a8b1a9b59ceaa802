"""Usage rows reach SQLite and PostgreSQL through the driver's executemany, idempotently."""

from __future__ import annotations

import msgspec
from sqlalchemy import select

from parley.gateway.accounting.usage import USAGE_COLUMNS, UsageRecord
from parley.store.db import Database
from parley.store.tables import usage
from parley.store.usage import insert_usage, spend_since


def _row(request_id: str, cost: int, **extra: object) -> tuple[object, ...]:
    record = UsageRecord(
        request_id=request_id, time_ms=1_000, model_group="chat", status=200, cost_nusd=cost
    )
    return msgspec.structs.astuple(msgspec.structs.replace(record, **extra))


async def test_rows_land_column_for_column_and_a_redelivered_batch_counts_once(
    db: Database,
) -> None:
    first = [
        _row("r1", 5, key_id="k1", deployment="openai/gpt", ttft_ms=12, cache="miss"),
        _row("r2", 7, key_id="k1", prompt_tokens=3, completion_tokens=4),
    ]
    await insert_usage(db, USAGE_COLUMNS, first)
    # A Redis stream entry re-claimed after a crash arrives again beside a new one.
    await insert_usage(db, USAGE_COLUMNS, [first[1], _row("r3", 11, key_id="k1")])

    async with db.read() as conn:
        stored = (await conn.execute(select(usage).order_by(usage.c.request_id))).mappings()
        rows = [dict(row) for row in stored]
    assert [r["request_id"] for r in rows] == ["r1", "r2", "r3"]
    assert rows[0]["deployment"] == "openai/gpt"
    assert rows[0]["ttft_ms"] == 12
    assert rows[0]["cache"] == "miss"
    assert rows[1]["prompt_tokens"] == 3
    assert rows[1]["completion_tokens"] == 4
    assert rows[1]["ttft_ms"] is None
    assert await spend_since(db, "key_id", "k1", 0) == 5 + 7 + 11


async def test_an_empty_batch_writes_nothing(db: Database) -> None:
    await insert_usage(db, USAGE_COLUMNS, [])
    async with db.read() as conn:
        assert (await conn.execute(select(usage))).first() is None
