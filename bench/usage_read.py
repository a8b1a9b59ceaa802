"""The admin console's usage reads at 1,000,000 and 10,000,000 raw usage rows, on SQLite
and PostgreSQL, against a primary-key read measured in the same run.

Rows are generated in the database itself (``generate_series`` on PostgreSQL, a recursive
CTE on SQLite) over 90 days: 200 keys, each of one user (100) and one team (10), across 8
model groups, with errors, cache outcomes and latencies spread. The rollups are then
filled by the migration's own backfill query, the coarser ones summed from the finer
(production keeps them batch by batch; what is measured is the read). Each size adds
rows to the same 90 days, so the rows per hour grow tenfold while the rollup rows stay
bounded by buckets x keys x groups: the reads should stay flat. For contrast the old way,
one aggregation of the raw rows, is timed a few times at each size.

Each read goes through ``store/usage_reports.py``, the code ``GET /admin/usage`` and
``GET /admin/overview`` call. On PostgreSQL a database of its own is created (``--pg-name``,
default ``parley_bench_usage``) and dropped at the end.

    python -m bench.usage_read [--postgres postgresql://postgres@127.0.0.1:5432/test]
        [--sizes 1000000,10000000] [--engines sqlite,postgresql] [--repeats 200]
"""

# ruff: noqa: S608 - the generated SQL is built from this module's constants only

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
from sqlalchemy import Table, case, func, select, text

from bench.common import FLOOR_HEADERS, print_table, rows_against_floor
from parley.store import migrate
from parley.store.db import Database
from parley.store.rollups import DAY_MS, HOUR_MS, TABLES, dimensions, measures
from parley.store.tables import usage
from parley.store.usage_reports import Query, overview, report

KEYS, USERS, TEAMS, GROUPS = 200, 100, 10, 8
SPAN_MS = 90 * DAY_MS
NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00Z: the end of the generated 90 days
START_MS = NOW_MS - SPAN_MS
CHUNK = 1_000_000
_MIGRATION = Path(__file__).parents[1] / (
    "src/parley/store/migrations/versions/0015_usage_rollups.py"
)


def _migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("usage_rollups_0015", _MIGRATION)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generate_sql(dialect: str, first: int, last: int) -> str:
    """Rows ``first``..``last`` of the generated history, as one INSERT ... SELECT."""
    if dialect == "postgresql":
        source = f"generate_series({first}::bigint, {last}::bigint) AS s(g)"
        hexed = "lpad(to_hex({}), 32, '0')"
        head = ""
    else:
        source = "s"
        hexed = "printf('%032x', {})"
        head = (
            f"WITH RECURSIVE s(g) AS (SELECT {first} UNION ALL SELECT g + 1 FROM s "
            f"WHERE g < {last}) "
        )
    key = f"(g % {KEYS})"
    return (
        f"{head}INSERT INTO usage (request_id, time_ms, key_id, user_id, team_id, "
        "model_group, deployment, prompt_tokens, completion_tokens, cached_tokens, "
        "cost_nusd, latency_ms, ttft_ms, status, cache) SELECT "
        "'b' || g, "
        f"{START_MS} + (g * 2654435761) % {SPAN_MS}, "
        f"{hexed.format(key)}, "
        f"{hexed.format(f'{key} % {USERS} + 100000')}, "
        f"{hexed.format(f'{key} % {TEAMS} + 200000')}, "
        f"'group-' || ((g / {KEYS}) % {GROUPS}), "
        "'openai/model', "
        "100 + g % 900, 20 + g % 400, (g % 7) * 10, "
        "1000 + (g % 997) * 1000, "
        "20 + (g * 37) % 3000, "
        "CASE WHEN g % 3 = 0 THEN 10 + (g * 11) % 800 END, "
        "CASE WHEN g % 50 = 0 THEN 500 WHEN g % 97 = 0 THEN 429 ELSE 200 END, "
        "CASE WHEN g % 5 = 0 THEN 'hit' WHEN g % 11 = 0 THEN 'semantic-hit' "
        "ELSE 'miss' END "
        f"FROM {source}"
    )


async def grow(db: Database, have: int, want: int) -> tuple[float, float]:
    """Add rows up to ``want`` and rebuild the rollups; seconds spent on each. Secondary
    indexes are dropped for the bulk load and built again after it (the schema read is
    the production one)."""
    started = time.perf_counter()
    async with db.write() as conn:
        for index in usage.indexes:
            await conn.run_sync(lambda sync, index=index: index.drop(sync))
    for first in range(have + 1, want + 1, CHUNK):
        last = min(want, first + CHUNK - 1)
        async with db.write() as conn:
            await conn.execute(text(_generate_sql(db.dialect, first, last)))
    async with db.write() as conn:
        for index in usage.indexes:
            await conn.run_sync(lambda sync, index=index: index.create(sync))
    loaded = time.perf_counter()
    backfill = _migration().backfill_sql
    for table in _ORDER:
        async with db.write() as conn:
            if db.dialect == "postgresql":
                await conn.execute(text("SET LOCAL work_mem = '256MB'"))
            await conn.execute(table.delete())
            for index in table.indexes:
                await conn.run_sync(lambda sync, index=index: index.drop(sync))
            parent = _DERIVED.get(table.name)
            sql = backfill(table.name) if parent is None else _derive_sql(table, parent)
            await conn.execute(text(sql))
            for index in table.indexes:
                await conn.run_sync(lambda sync, index=index: index.create(sync))
    async with db.write() as conn:
        await conn.execute(text("ANALYZE"))
    return loaded - started, time.perf_counter() - loaded


_DERIVED = {
    "usage_daily": "usage_hourly",
    "usage_principals_hourly": "usage_hourly",
    "usage_principals_daily": "usage_principals_hourly",
    "usage_groups_daily": "usage_groups_hourly",
}
"""Rollups summed from a finer rollup rather than from the raw rows again: sums of sums
are exact for every column (histogram buckets are counts), and it saves passes over
ten million rows. Production never does this: it adds each batch to all six."""
_ORDER = [
    TABLES[(shape, grain)]
    for shape, grain in (
        ("full", "hour"),
        ("groups", "hour"),
        ("full", "day"),
        ("principals", "hour"),
        ("principals", "day"),
        ("groups", "day"),
    )
]


def _derive_sql(table: Table, parent_name: str) -> str:
    size = DAY_MS if table.name.endswith("_daily") else HOUR_MS
    dims = dimensions(table)
    keys = [f"(bucket_ms / {size}) * {size}", *dims]
    added = measures(table)
    columns = ", ".join(["bucket_ms", *dims, *added])
    picked = ", ".join([*keys, *(f"SUM({m})" for m in added)])
    return (
        f"INSERT INTO {table.name} ({columns}) SELECT {picked} FROM {parent_name} "
        f"GROUP BY {', '.join(keys)}"
    )


def _scenarios(db: Database, rng: random.Random, size: int) -> list[tuple[str, Any]]:
    team = f"{rng.randrange(TEAMS) + 200000:032x}"
    ids = list(range(1, size + 1))

    async def floor() -> object:
        async with db.read() as conn:
            return (
                await conn.execute(select(usage.c.cost_nusd).where(usage.c.id == rng.choice(ids)))
            ).first()

    def page(query: Query, limit: int = 100) -> Callable[[], Awaitable[object]]:
        return lambda: report(db, query, limit=limit, offset=0)

    month = NOW_MS - 30 * DAY_MS
    return [
        ("primary-key read of one usage row (floor)", floor),
        ("usage page: by day, last 30 days", page(Query("day", month, NOW_MS))),
        (
            "by key, last 30 days, top spenders",
            page(Query("key", month, NOW_MS, sort="cost")),
        ),
        (
            "by model group, last 7 days",
            page(Query("model_group", NOW_MS - 7 * DAY_MS, NOW_MS)),
        ),
        (
            "team admin: one team by day, last 30 days",
            page(Query("day", month, NOW_MS, (("team_id", team),))),
        ),
        ("by hour, last 24 hours", page(Query("hour", NOW_MS - DAY_MS, NOW_MS))),
        (
            "by user, 13:00 to 13:00, 29 days (whole days + hourly ends)",
            page(Query("user", month + 13 * HOUR_MS, NOW_MS - 11 * HOUR_MS)),
        ),
        ("overview, window day", lambda: overview(db, NOW_MS - DAY_MS, team_id=None)),
        (
            "overview, window week (daily series)",
            lambda: overview(db, NOW_MS - 7 * DAY_MS, team_id=None, series_grain="day"),
        ),
    ]


async def raw_scan(db: Database, repeats: int) -> list[object]:
    """The read before rollups: by day over the last 30 days, from the raw rows."""
    start = NOW_MS - 30 * DAY_MS
    day = (usage.c.time_ms / DAY_MS).label("day")
    query = (
        select(
            day,
            func.count(),
            func.sum(usage.c.prompt_tokens),
            func.sum(usage.c.completion_tokens),
            func.sum(usage.c.cost_nusd),
            func.sum(case((usage.c.status >= 400, 1), else_=0)),
        )
        .where(usage.c.time_ms >= start, usage.c.time_ms < NOW_MS)
        .group_by(day)
        .order_by(day)
    )

    async def scan() -> object:
        async with db.read() as conn:
            return (await conn.execute(query)).all()

    rows = await rows_against_floor([("raw rows, by day, last 30 days", scan)], repeats)
    return rows[0]


async def _counts(db: Database) -> str:
    counts = []
    async with db.read() as conn:
        for table in TABLES.values():
            found = await conn.scalar(select(func.count()).select_from(table))
            counts.append(f"{table.name} {found:,}")
    return "rollup rows: " + ", ".join(counts)


async def run_engine(
    url: str, sizes: list[int], repeats: int, raw_repeats: int
) -> dict[int, list[list[object]]]:
    db = Database(url)
    await migrate.upgrade(db)
    have = 0
    results: dict[int, list[list[object]]] = {}
    try:
        for size in sizes:
            load_s, rollup_s = await grow(db, have, size)
            have = size
            print(
                f"  {db.dialect} {size:,} rows: loaded in {load_s:.0f} s, rollups in "
                f"{rollup_s:.0f} s; {await _counts(db)}",
                flush=True,
            )
            rows = await rows_against_floor(_scenarios(db, random.Random(size), size), repeats)
            raw = await raw_scan(db, raw_repeats)
            raw[4] = float(raw[2]) / float(rows[0][2])  # type: ignore[arg-type]
            results[size] = [*rows, raw]
    finally:
        await db.close()
    return results


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--pg-name", default="parley_bench_usage")
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--raw-repeats", type=int, default=3)
    parser.add_argument("--tmp", default=None, help="where the SQLite file goes")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    engines = args.engines.split(",")
    results: dict[str, dict[int, list[list[object]]]] = {}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        if "sqlite" in engines:
            url = f"sqlite+aiosqlite:///{tmp}/usage.db"
            results["sqlite"] = asyncio.run(run_engine(url, sizes, args.repeats, args.raw_repeats))
    if "postgresql" in engines:
        base = args.postgres.rsplit("/", 1)[0]
        asyncio.run(_admin(args.postgres, f'DROP DATABASE IF EXISTS "{args.pg_name}"'))
        asyncio.run(_admin(args.postgres, f'CREATE DATABASE "{args.pg_name}"'))
        try:
            url = f"{base}/{args.pg_name}".replace("postgresql://", "postgresql+asyncpg://")
            results["postgresql"] = asyncio.run(
                run_engine(url, sizes, args.repeats, args.raw_repeats)
            )
        finally:
            asyncio.run(
                _admin(args.postgres, f'DROP DATABASE IF EXISTS "{args.pg_name}" WITH (FORCE)')
            )
    for engine, by_size in results.items():
        for size, rows in by_size.items():
            print(f"\n{engine}, {size:,} raw usage rows")
            print_table(["read", "repeats", *FLOOR_HEADERS], rows)


if __name__ == "__main__":
    main()
