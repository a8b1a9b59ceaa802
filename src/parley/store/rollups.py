"""Usage rollups: per hour and per UTC day, per key, user, team and model group.

``insert_usage`` (``store/usage.py``) hands ``add`` the rows a batch actually inserted
(the ``RETURNING`` of an insert that skips request ids already stored), inside the same
transaction, so a batch delivered twice adds nothing the second time and the rollups
always equal the raw rows they summarise. ``add`` upserts with ``counter = counter +
excluded.counter``, one statement per row in key order: two instances writing at once
each add their own rows under the row lock, never a lost update, never a deadlock.

Readers (``store/usage_reports.py``) sum rollup rows only; the raw rows are for export,
erasure and the retention purge.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, and_, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from parley.store.histogram import BUCKETS, bucket_of, latency_columns
from parley.store.tables import usage_daily, usage_hourly

HOUR_MS = 3_600_000
DAY_MS = 86_400_000

SOURCE: tuple[str, ...] = (
    "time_ms",
    "model_group",
    "team_id",
    "user_id",
    "key_id",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_nusd",
    "latency_ms",
    "ttft_ms",
    "cache",
)
"""The raw columns a rollup is made from, in the order ``add`` reads them."""

DIMENSIONS: tuple[str, ...] = ("bucket_ms", "model_group", "team_id", "user_id", "key_id")
SUMS: tuple[str, ...] = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_nusd",
    "cache_lookups",
    "cache_hits",
    "semantic_hits",
    "latency_sum_ms",
)
LAT = tuple(latency_columns("lat"))
TTFT = tuple(latency_columns("ttft"))
MEASURES: tuple[str, ...] = SUMS + LAT + TTFT
_LAT_AT = len(SUMS)
_TTFT_AT = _LAT_AT + BUCKETS
_LOOKUPS = frozenset({"hit", "semantic-hit", "miss"})

TABLES: dict[str, Table] = {"hour": usage_hourly, "day": usage_daily}
Key = tuple[int, str, str, str, str]


def fold(rows: Iterable[Sequence[Any]]) -> dict[str, dict[Key, list[int]]]:
    """Sum raw rows (``SOURCE`` order) into hourly and daily rollup rows."""
    folded: dict[str, dict[Key, list[int]]] = {"hour": {}, "day": {}}
    for row in rows:
        (time_ms, group, team, user, key, status, prompt, completion, cached, cost) = row[:10]
        latency, ttft, cache = row[10], row[11], row[12]
        dims = (group, team or "", user or "", key or "")
        for grain, size in (("hour", HOUR_MS), ("day", DAY_MS)):
            bucket = (time_ms // size) * size
            sums = folded[grain].get((bucket, *dims))
            if sums is None:
                sums = folded[grain][(bucket, *dims)] = [0] * len(MEASURES)
            sums[0] += 1
            sums[1] += status >= 400
            sums[2] += prompt or 0
            sums[3] += completion or 0
            sums[4] += cached or 0
            sums[5] += cost or 0
            sums[6] += cache in _LOOKUPS
            sums[7] += cache == "hit"
            sums[8] += cache == "semantic-hit"
            sums[9] += latency or 0
            sums[_LAT_AT + bucket_of(latency or 0)] += 1
            if ttft is not None:
                sums[_TTFT_AT + bucket_of(ttft)] += 1
    return folded


async def add(conn: AsyncConnection, rows: Sequence[Sequence[Any]]) -> None:
    """Add inserted raw rows to both rollups, inside the caller's transaction."""
    if not rows:
        return
    for grain, sums in fold(rows).items():
        sql = _upsert(conn.dialect, TABLES[grain].name)
        values = [(*key, *sums[key]) for key in sorted(sums)]
        await conn.exec_driver_sql(sql, values)


@functools.lru_cache(maxsize=16)
def _upsert(dialect: Dialect, name: str) -> str:
    table = TABLES["hour" if name == usage_hourly.name else "day"]
    builder = postgresql if dialect.name == "postgresql" else sqlite
    statement = builder.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(DIMENSIONS),
        set_={m: table.c[m] + statement.excluded[m] for m in MEASURES},
    )
    columns = [*DIMENSIONS, *MEASURES]
    compiled = statement.compile(dialect=dialect, column_keys=columns, for_executemany=True)
    order = tuple(compiled.positiontup or ())
    if order != tuple(columns):  # the values are built in DIMENSIONS + MEASURES order
        raise RuntimeError(f"unexpected parameter order for {name}: {order}")
    sql: str = compiled.string
    return sql


async def forget(conn: AsyncConnection, user_id: str, key_ids: Sequence[str]) -> None:
    """Account erasure, as for the raw rows (``identity/erase.py``): the user's rows lose
    the user, their keys' rows lose the key too, folded into the rows that remain, so a
    team's spend stays true and no rollup names the erased account."""
    for table in TABLES.values():
        who = table.c.user_id == user_id
        if key_ids:
            who = or_(who, table.c.key_id.in_(key_ids))
        found = (await conn.execute(select(table).where(who))).mappings().all()
        if not found:
            continue
        dead = frozenset(key_ids)
        merged: dict[Key, list[int]] = {}
        for row in found:
            kept_key = "" if row["key_id"] in dead else row["key_id"]
            key = (row["bucket_ms"], row["model_group"], row["team_id"], "", kept_key)
            sums = merged.setdefault(key, [0] * len(MEASURES))
            for i, name in enumerate(MEASURES):
                sums[i] += int(row[name])
        await conn.execute(delete(table).where(who))
        sql = _upsert(conn.dialect, table.name)
        values = [(*key, *merged[key]) for key in sorted(merged)]
        await conn.exec_driver_sql(sql, values)


def spend_query(table: Table, column: str | None, ident: str, since_ms: int) -> Any:
    """Nano-dollars in rollup buckets that start at or after ``since_ms``."""
    query = select(func.coalesce(func.sum(table.c.cost_nusd), 0)).where(
        table.c.bucket_ms >= since_ms
    )
    if column is not None:
        query = query.where(table.c[column] == ident)
    return query


def range_clause(table: Table, start_ms: int | None, end_ms: int | None) -> Any:
    clauses = []
    if start_ms is not None:
        clauses.append(table.c.bucket_ms >= start_ms)
    if end_ms is not None:
        clauses.append(table.c.bucket_ms < end_ms)
    return and_(*clauses) if clauses else None
