"""Usage rollups: per hour and per UTC day, per key, user, team and model group.

``insert_usage`` (``store/usage.py``) hands ``add`` the rows a batch actually inserted
(the ``RETURNING`` of an insert that skips request ids already stored), inside the same
transaction, so a batch delivered twice adds nothing the second time and the rollups
always equal the raw rows they summarise. ``add`` upserts with ``counter = counter +
excluded.counter``, one statement per row in key order: two instances writing at once
each add their own rows under the row lock, never a lost update, never a deadlock.

Each grain has three shapes (``tables._rollup``): by team and model group (with latency
histograms), by team, user and key, and by all four. A reader picks the narrowest one
holding what it groups and filters by (``shape_for``), so the rows it sums grow with
buckets x the groups or principals it shows, not with every combination of them.
Readers (``store/usage_reports.py``) sum rollup rows only; the raw rows are for export,
erasure and the retention purge.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, delete, func, or_, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from parley.store.db import dialect_module
from parley.store.histogram import BUCKETS, bucket_of, latency_columns
from parley.store.tables import (
    usage_daily,
    usage_groups_daily,
    usage_groups_hourly,
    usage_hourly,
    usage_principals_daily,
    usage_principals_hourly,
)

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
GRAINS = {"hour": HOUR_MS, "day": DAY_MS}

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
_LAT_AT = len(SUMS)
_TTFT_AT = _LAT_AT + BUCKETS
_LOOKUPS = frozenset({"hit", "semantic-hit", "miss"})
_AT = {name: i for i, name in enumerate(SOURCE)}

Shape = str
"""``full``, ``groups`` or ``principals`` (``tables._rollup``)."""
TABLES: dict[tuple[Shape, str], Table] = {
    ("full", "hour"): usage_hourly,
    ("full", "day"): usage_daily,
    ("groups", "hour"): usage_groups_hourly,
    ("groups", "day"): usage_groups_daily,
    ("principals", "hour"): usage_principals_hourly,
    ("principals", "day"): usage_principals_daily,
}
_BY_NAME = {table.name: table for table in TABLES.values()}
Key = tuple[Any, ...]


def dimensions(table: Table) -> tuple[str, ...]:
    """The primary key after ``bucket_ms``: what the table is summed by."""
    return tuple(c.name for c in table.primary_key.columns)[1:]


def measures(table: Table) -> tuple[str, ...]:
    return SUMS + (LAT + TTFT if "lat_0" in table.c else ())


def _sums(row: Sequence[Any]) -> list[int]:
    """One raw row as the measures of a histogram-carrying rollup row."""
    (_, _, _, _, _, status, prompt, completion, cached, cost, latency, ttft, cache) = row
    sums = [0] * (len(SUMS) + 2 * BUCKETS)
    sums[0] = 1
    sums[1] = int(status >= 400)
    sums[2] = prompt or 0
    sums[3] = completion or 0
    sums[4] = cached or 0
    sums[5] = cost or 0
    sums[6] = int(cache in _LOOKUPS)
    sums[7] = int(cache == "hit")
    sums[8] = int(cache == "semantic-hit")
    sums[9] = latency or 0
    sums[_LAT_AT + bucket_of(latency or 0)] = 1
    if ttft is not None:
        sums[_TTFT_AT + bucket_of(ttft)] = 1
    return sums


def fold(rows: Iterable[Sequence[Any]]) -> dict[str, dict[Key, list[int]]]:
    """Sum raw rows (``SOURCE`` order) into the rows of every rollup table, by name."""
    folded: dict[str, dict[Key, list[int]]] = {t.name: {} for t in TABLES.values()}
    plan = [
        (t.name, GRAINS[grain], [_AT[d] for d in dimensions(t)], len(measures(t)))
        for (_shape, grain), t in TABLES.items()
    ]
    for row in rows:
        one = _sums(row)
        for name, size, picks, width in plan:
            key = (row[0] // size * size, *(row[i] or "" for i in picks))
            target = folded[name].get(key)
            if target is None:
                folded[name][key] = one[:width]
            else:
                for i in range(width):
                    target[i] += one[i]
    return folded


async def add(conn: AsyncConnection, rows: Sequence[Sequence[Any]]) -> None:
    """Add inserted raw rows to every rollup, inside the caller's transaction."""
    if not rows:
        return
    for name, sums in fold(rows).items():
        values = [(*key, *sums[key]) for key in sorted(sums)]
        await conn.exec_driver_sql(_upsert(conn.dialect, name), values)


@functools.lru_cache(maxsize=32)
def _upsert(dialect: Dialect, name: str) -> str:
    table = _BY_NAME[name]
    builder = dialect_module(dialect.name)
    statement = builder.insert(table)
    added = measures(table)
    statement = statement.on_conflict_do_update(
        index_elements=["bucket_ms", *dimensions(table)],
        set_={m: table.c[m] + statement.excluded[m] for m in added},
    )
    columns = ["bucket_ms", *dimensions(table), *added]
    compiled = statement.compile(dialect=dialect, column_keys=columns, for_executemany=True)
    order = tuple(compiled.positiontup or ())
    if order != tuple(columns):  # the values are built in exactly this order
        raise RuntimeError(f"unexpected parameter order for {name}: {order}")
    sql: str = compiled.string
    return sql


async def forget(conn: AsyncConnection, user_id: str, key_ids: Sequence[str]) -> None:
    """Account erasure, as for the raw rows (``identity/erase.py``): the user's rows lose
    the user, their keys' rows lose the key too, folded into the rows that remain, so a
    team's spend stays true and no rollup names the erased account."""
    dead = frozenset(key_ids)
    for table in TABLES.values():
        if "user_id" not in table.c:
            continue
        who = table.c.user_id == user_id
        if key_ids:
            who = or_(who, table.c.key_id.in_(key_ids))
        found = (await conn.execute(select(table).where(who))).mappings().all()
        if not found:
            continue
        dims, added = dimensions(table), measures(table)
        merged: dict[Key, list[int]] = {}
        for row in found:
            kept = {**row, "user_id": "", "key_id": "" if row["key_id"] in dead else row["key_id"]}
            key = (row["bucket_ms"], *(kept[d] for d in dims))
            sums = merged.setdefault(key, [0] * len(added))
            for i, name in enumerate(added):
                sums[i] += int(row[name])
        await conn.execute(delete(table).where(who))
        values = [(*key, *merged[key]) for key in sorted(merged)]
        await conn.exec_driver_sql(_upsert(conn.dialect, table.name), values)


def shape_for(names: Iterable[str]) -> Shape:
    """The narrowest rollup holding every dimension in ``names``."""
    wanted = set(names)
    if wanted <= {"team_id", "model_group"}:
        return "groups"
    if wanted <= {"team_id", "user_id", "key_id"}:
        return "principals"
    return "full"


def hourly_tables() -> tuple[Table, ...]:
    """The hourly rollups, which the hourly retention purge trims (``store/usage.py``)."""
    return tuple(table for (_shape, grain), table in TABLES.items() if grain == "hour")


def spend_query(
    table: Table, column: str | None, ident: str, since_ms: int, until_ms: int | None = None
) -> Any:
    """Nano-dollars in rollup buckets that start at or after ``since_ms`` (and before
    ``until_ms``)."""
    query = select(func.coalesce(func.sum(table.c.cost_nusd), 0)).where(
        table.c.bucket_ms >= since_ms
    )
    if until_ms is not None:
        query = query.where(table.c.bucket_ms < until_ms)
    if column is not None:
        query = query.where(table.c[column] == ident)
    return query
