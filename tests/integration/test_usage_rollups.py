"""The usage rollups on SQLite and PostgreSQL: they equal the raw rows they summarise
(re-delivered batches, two writers at once, the migration's backfill, account erasure),
reports and the overview read them, the retention purge removes raw rows in bounded
batches and leaves them, and budget spend still adds up after it."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from sqlalchemy import event, func, insert, select

from parley.gateway.accounting.usage import USAGE_COLUMNS, UsageRecord
from parley.identity.audit import AuditQuery, audit, entries
from parley.store import migrate, rollups
from parley.store.db import Database
from parley.store.histogram import BOUNDS_MS, bucket_of, quantile
from parley.store.tables import api_keys, teams, usage, usage_daily
from parley.store.usage import insert_usage, purge_hourly, purge_raw, spend_since
from parley.store.usage_reports import Query, cache_rates, overview, report

HOUR, DAY = 3_600_000, 86_400_000
T0 = 1_764_000_000_000 // DAY * DAY  # a UTC midnight in late 2025
KEYS = ["k" * 31 + str(i) for i in range(3)]
TEAMS = ["t" * 31 + str(i) for i in range(2)]
USERS = ["u" * 31 + str(i) for i in range(2)]


def _record(i: int, rng: random.Random, *, start: int = T0) -> tuple[object, ...]:
    """A plausible usage row: keys, users and teams sometimes absent, some errors, cache
    outcomes of every kind, latencies across the histogram, TTFT only when streamed."""
    record = UsageRecord(
        request_id=f"r{i:06d}",
        time_ms=start + rng.randrange(0, 3 * DAY),
        model_group=rng.choice(["chat", "embed", "=cmd"]),
        status=rng.choice([200, 200, 200, 429, 500]),
        key_id=rng.choice([*KEYS, None]),
        user_id=rng.choice([*USERS, None]),
        team_id=rng.choice([*TEAMS, None]),
        prompt_tokens=rng.randrange(0, 500),
        completion_tokens=rng.randrange(0, 500),
        cached_tokens=rng.randrange(0, 50),
        cost_nusd=rng.randrange(0, 10**7),
        latency_ms=rng.choice([0, 3, 5, 6, 99, 100, 101, 2500, 119_999, 500_000]),
        ttft_ms=rng.choice([None, 4, 50, 1200]),
        cache=rng.choice([None, "hit", "semantic-hit", "miss", "bypass"]),
    )
    return msgspec.structs.astuple(record)


def _rows(count: int, seed: int = 7, **kwargs: Any) -> list[tuple[object, ...]]:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    return [_record(i, rng, **kwargs) for i in range(count)]


async def _raw(db: Database) -> list[dict[str, Any]]:
    async with db.read() as conn:
        return [dict(r) for r in (await conn.execute(select(usage))).mappings()]


def _expected(raw: Sequence[dict[str, Any]], table: Any) -> dict[tuple[Any, ...], dict[str, int]]:
    """A rollup table computed independently, straight from raw rows."""
    size = HOUR if table.name.endswith("_hourly") else DAY
    dims = rollups.dimensions(table)
    histograms = "lat_0" in table.c
    out: dict[tuple[Any, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in raw:
        key = (r["time_ms"] // size * size, *(r[d] or "" for d in dims))
        sums = out[key]
        sums["requests"] += 1
        sums["errors"] += r["status"] >= 400
        for name in ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_nusd"):
            sums[name] += r[name]
        sums["cache_lookups"] += r["cache"] in ("hit", "semantic-hit", "miss")
        sums["cache_hits"] += r["cache"] == "hit"
        sums["semantic_hits"] += r["cache"] == "semantic-hit"
        sums["latency_sum_ms"] += r["latency_ms"]
        if histograms:
            sums[f"lat_{bucket_of(r['latency_ms'])}"] += 1
            if r["ttft_ms"] is not None:
                sums[f"ttft_{bucket_of(r['ttft_ms'])}"] += 1
    return {k: {n: v for n, v in sums.items() if v} for k, sums in out.items()}


async def _stored(db: Database, table: Any) -> dict[tuple[Any, ...], dict[str, int]]:
    async with db.read() as conn:
        found = (await conn.execute(select(table))).mappings().all()
    keys = ("bucket_ms", *rollups.dimensions(table))
    return {
        tuple(row[d] for d in keys): {n: int(row[n]) for n in rollups.measures(table) if row[n]}
        for row in found
    }


async def _everything(db: Database) -> dict[str, Any]:
    return {t.name: await _stored(db, t) for t in rollups.TABLES.values()}


async def _assert_rollups_match_raw(db: Database) -> None:
    raw = await _raw(db)
    assert len(rollups.TABLES) == 6
    for table in rollups.TABLES.values():
        assert await _stored(db, table) == _expected(raw, table), table.name


async def test_rollups_equal_the_raw_rows_and_a_redelivered_batch_adds_nothing(
    db: Database,
) -> None:
    rows = _rows(400)
    assert await insert_usage(db, USAGE_COLUMNS, rows[:250]) == 250
    # Re-delivery after a crash: the first batch again, overlapping the next one.
    assert await insert_usage(db, USAGE_COLUMNS, rows[:250]) == 0
    assert await insert_usage(db, USAGE_COLUMNS, rows[200:]) == 150
    await _assert_rollups_match_raw(db)
    async with db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(usage)) == 400
        assert await conn.scalar(select(func.sum(usage_daily.c.requests))) == 400


async def test_a_batch_larger_than_one_sqlite_statement_is_counted_once(db: Database) -> None:
    rows = _rows(2_500, seed=3)  # 2,500 x 16 values: more than one statement's 32,000
    assert await insert_usage(db, USAGE_COLUMNS, rows) == 2_500
    assert await insert_usage(db, USAGE_COLUMNS, rows[::-1]) == 0
    await _assert_rollups_match_raw(db)


async def test_two_writers_with_overlapping_batches_leave_one_consistent_rollup(
    db: Database, database_url: str
) -> None:
    """Two instances (two engines, two pools) write at once, each also re-writing part of
    the other's batches, as a re-claimed Redis stream entry does."""
    other = Database(database_url)
    rows = _rows(1_200, seed=11)
    try:

        async def write(target: Database, picks: list[tuple[object, ...]]) -> int:
            total = 0
            for at in range(0, len(picks), 100):
                total += await insert_usage(target, USAGE_COLUMNS, picks[at : at + 100])
            return total

        first = rows[:800]
        second = rows[400:]
        written = await asyncio.gather(write(db, first), write(other, second))
    finally:
        await other.close()
    assert sum(written) == 1_200  # every row inserted by exactly one of them
    await _assert_rollups_match_raw(db)


async def test_the_migration_backfills_rollups_from_rows_already_stored(
    empty_database_url: str,
) -> None:
    db = Database(empty_database_url)
    try:
        await migrate.upgrade(db, "0013")
        rows = _rows(300, seed=5)
        async with db.write() as conn:
            # client_ip came with 0022: the rows of a 0013 database have none
            values = [
                {c: v for c, v in zip(USAGE_COLUMNS, r, strict=True) if c != "client_ip"}
                for r in rows
            ]
            await conn.execute(insert(usage), values)
        await migrate.upgrade(db)
        await _assert_rollups_match_raw(db)
    finally:
        await db.close()


async def test_reports_read_the_rollups_with_ranges_and_filters(db: Database) -> None:
    rows = _rows(600, seed=9)
    await insert_usage(db, USAGE_COLUMNS, rows)
    raw = await _raw(db)
    start, end = T0 + DAY, T0 + 2 * DAY
    by_day, totals = await report(
        db, Query("day", start, end, (("team_id", TEAMS[0]),)), limit=100, offset=0
    )
    picked = [r for r in raw if start <= r["time_ms"] < end and r["team_id"] == TEAMS[0]]
    assert by_day == [
        {
            "bucket": start,
            "requests": len(picked),
            "prompt_tokens": sum(r["prompt_tokens"] for r in picked),
            "completion_tokens": sum(r["completion_tokens"] for r in picked),
            "cached_tokens": sum(r["cached_tokens"] for r in picked),
            "errors": sum(r["status"] >= 400 for r in picked),
            "cost_usd": sum(r["cost_nusd"] for r in picked) / 1e9,
        }
    ]
    assert totals["requests"] == len(picked)
    assert totals["cache_hits"] == sum(r["cache"] == "hit" for r in picked)
    # A range off the day boundaries is honoured to the hour: whole days from the daily
    # rollup, the ends from the hourly one.
    odd = Query("key", T0 + 5 * HOUR, T0 + 30 * HOUR, sort="cost")
    by_key, _ = await report(db, odd, limit=100, offset=0)
    spent: dict[str | None, int] = defaultdict(int)
    for r in raw:
        if odd.start_ms <= r["time_ms"] < odd.end_ms:  # type: ignore[operator]
            spent[r["key_id"]] += r["cost_nusd"]
    assert {r["bucket"]: r["cost_usd"] for r in by_key} == {k: v / 1e9 for k, v in spent.items()}
    assert [r["cost_usd"] for r in by_key] == sorted(spent[k] / 1e9 for k in spent)[::-1]
    # Each report reads the narrowest rollup holding what it groups and filters by.
    assert Query("day", start, end, (("team_id", TEAMS[0]),)).shape == "groups"
    assert odd.shape == "principals"
    mixed = Query("model_group", filters=(("key_id", KEYS[0]), ("user_id", USERS[1])))
    assert mixed.shape == "full"
    by_group, _ = await report(db, mixed, limit=100, offset=0)
    counted: dict[str, int] = defaultdict(int)
    for r in raw:
        if r["key_id"] == KEYS[0] and r["user_id"] == USERS[1]:
            counted[r["model_group"]] += 1
    assert {r["bucket"]: r["requests"] for r in by_group} == counted
    # Whole days inside, part days at both ends: each day's bucket sums exactly its rows.
    spread = Query("day", T0 + 5 * HOUR, T0 + 2 * DAY + 3 * HOUR, (("model_group", "chat"),))
    days, _ = await report(db, spread, limit=10, offset=0)
    per_day: dict[int, int] = defaultdict(int)
    for r in raw:
        if spread.start_ms <= r["time_ms"] < spread.end_ms and r["model_group"] == "chat":  # type: ignore[operator]
            per_day[r["time_ms"] // DAY * DAY] += r["cost_nusd"]
    assert [(d["bucket"], d["cost_usd"]) for d in days] == [
        (day, cost / 1e9) for day, cost in sorted(per_day.items())
    ]
    assert len(days) == 3
    hours, _ = await report(db, Query("hour", T0, T0 + 2 * HOUR), limit=10, offset=0)
    assert [h["bucket"] for h in hours] == [T0, T0 + HOUR]
    page, paged_totals = await report(db, Query("day"), limit=2, offset=1)
    assert [p["bucket"] for p in page] == [T0 + DAY, T0 + 2 * DAY]
    whole, all_totals = await report(db, Query("day"), limit=100, offset=0)
    assert len(whole) == 3
    assert paged_totals == all_totals  # a page's totals are the whole range's
    assert all_totals["requests"] == len(raw)
    assert all_totals["semantic_hits"] == sum(r["cache"] == "semantic-hit" for r in raw)


async def test_the_overview_gives_percentiles_from_the_histograms(db: Database) -> None:
    now = T0 + 10 * HOUR
    rows = []
    for i in range(100):  # latencies 1..100 ms; TTFT on every other request
        record = UsageRecord(
            request_id=f"o{i}",
            time_ms=now + i,
            model_group="chat",
            status=500 if i < 5 else 200,
            team_id=TEAMS[0] if i % 4 else TEAMS[1],
            latency_ms=i + 1,
            ttft_ms=(i + 1) if i % 2 else None,
            cache="hit" if i < 20 else "miss",
            cost_nusd=10,
        )
        rows.append(msgspec.structs.astuple(record))
    await insert_usage(db, USAGE_COLUMNS, rows)
    groups, series, everything = await overview(db, T0, team_id=None)
    assert len(groups) == 1
    chat = groups[0]
    assert chat["model_group"] == "chat"
    assert (chat["requests"], chat["errors"], chat["error_rate"]) == (100, 5, 0.05)
    assert chat["cache_hit_rate"] == 0.2
    assert chat["cost_usd"] == 1000 / 1e9
    # p50 of 1..100 ms is 50; the histogram holds it in the (30, 50] bucket.
    assert 30 <= chat["latency_ms"]["p50"] <= 50
    assert 75 < chat["latency_ms"]["p99"] <= 100
    assert chat["ttft_ms"]["count"] == 50
    assert [p["bucket"] for p in series] == [now // HOUR * HOUR]
    assert everything["requests"] == 100
    assert everything["latency_ms"] == chat["latency_ms"]  # one group: the same histogram
    scoped, _, scoped_total = await overview(db, T0, team_id=TEAMS[1])
    assert scoped[0]["requests"] == 25
    assert scoped_total["requests"] == 25


async def test_the_overview_totals_sum_the_groups_histograms(db: Database) -> None:
    """Over several groups, the totals' percentiles come from the summed histograms (the
    mean of two groups' p50s would be wrong): 90 fast requests in one, 10 slow in another."""
    now = T0 + 10 * HOUR + 1_234
    rows = []
    for i in range(100):
        fast = i < 90
        record = UsageRecord(
            request_id=f"mix{i:03d}",
            time_ms=now,
            model_group="fast" if fast else "slow",
            status=200,
            latency_ms=8 if fast else 9_000,
            cost_nusd=1,
        )
        rows.append(msgspec.structs.astuple(record))
    await insert_usage(db, USAGE_COLUMNS, rows)
    groups, _, everything = await overview(db, now // HOUR * HOUR, team_id=None)
    assert [g["model_group"] for g in groups] == ["fast", "slow"]
    assert everything["requests"] == 100
    assert 5 <= everything["latency_ms"]["p50"] <= 10
    assert 7_500 <= everything["latency_ms"]["p99"] <= 10_000


async def test_cache_hit_rates_per_group_count_exact_and_semantic_hits(db: Database) -> None:
    """Lookups are hits, semantic hits and misses (a bypass is not a lookup); a group
    with no lookups is left out; a team sees only its own requests' outcomes."""
    now = T0 + 10 * HOUR + 1_234
    outcomes = {
        "faq": ["hit"] * 6 + ["semantic-hit"] * 2 + ["miss"] * 2 + ["bypass"] * 5,
        "code": ["miss"] * 3 + ["hit"],
        "plain": [None] * 4,
    }
    rows = []
    for group, cached in outcomes.items():
        for i, outcome in enumerate(cached):
            record = UsageRecord(
                request_id=f"c-{group}-{i}",
                time_ms=now,
                model_group=group,
                status=200,
                team_id=TEAMS[0] if group == "faq" else TEAMS[1],
                cache=outcome,
            )
            rows.append(msgspec.structs.astuple(record))
    await insert_usage(db, USAGE_COLUMNS, rows)
    since = now // HOUR * HOUR
    groups, totals = await cache_rates(db, since, team_id=None)
    assert [g["model_group"] for g in groups] == ["code", "faq"]
    faq = groups[1]
    assert (faq["lookups"], faq["hits"], faq["semantic_hits"], faq["misses"]) == (10, 6, 2, 2)
    assert (faq["hit_rate"], faq["exact_hit_rate"], faq["semantic_hit_rate"]) == (0.8, 0.6, 0.2)
    assert groups[0]["hit_rate"] == 0.25
    assert (totals["lookups"], totals["hits"], totals["semantic_hits"]) == (14, 7, 2)
    assert "model_group" not in totals
    theirs, their_totals = await cache_rates(db, since, team_id=TEAMS[1])
    assert [g["model_group"] for g in theirs] == ["code"]
    assert their_totals["lookups"] == 4
    none, empty = await cache_rates(db, since, team_id="no-such-team")
    assert none == []
    assert (empty["lookups"], empty["hit_rate"]) == (0, None)


def test_quantiles_interpolate_inside_a_bucket() -> None:
    counts = [0] * (len(BOUNDS_MS) + 1)
    counts[bucket_of(40)] = 10  # all in (30, 50]
    assert quantile(counts, 0.5) == 40.0
    assert quantile([0] * len(counts), 0.5) is None
    counts[-1] = 10_000
    tail = quantile(counts, 0.99)  # in the open last bucket: read up to twice its floor
    assert tail is not None
    assert BOUNDS_MS[-1] < tail <= BOUNDS_MS[-1] * 2


async def test_retention_purges_raw_rows_in_bounded_batches_and_keeps_rollups(
    db: Database,
) -> None:
    rows = _rows(90, seed=13)
    await insert_usage(db, USAGE_COLUMNS, rows)
    cutoff = T0 + DAY + 7 * HOUR
    before = await _everything(db)
    raw = await _raw(db)
    old = sum(r["time_ms"] < cutoff for r in raw)
    assert 14 < old < 90
    deletes: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        assert await purge_raw(db, cutoff, batch=7) == old
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert len(deletes) == old // 7 + 1  # full batches, then the one that came up short
    left = await _raw(db)
    assert len(left) == 90 - old
    assert all(r["time_ms"] >= cutoff for r in left)
    assert await _everything(db) == before
    assert await purge_raw(db, cutoff, batch=7) == 0


async def test_budget_spend_adds_up_from_rollups_after_the_raw_rows_are_purged(
    db: Database,
) -> None:
    rows = _rows(300, seed=17)
    await insert_usage(db, USAGE_COLUMNS, rows)
    raw = await _raw(db)
    since = T0 + 5 * HOUR + 1_234  # off the hour: the first part hour comes from raw rows

    def spent(column: str | None, ident: str, rows_: Sequence[dict[str, Any]]) -> int:
        return sum(
            r["cost_nusd"]
            for r in rows_
            if r["time_ms"] >= since and (column is None or r[column] == ident)
        )

    cases = [(None, "all"), ("key_id", KEYS[0]), ("team_id", TEAMS[1]), ("model_group", "chat")]
    for column, ident in cases:
        assert await spend_since(db, column, ident, since) == spent(column, ident, raw)
    # A period starting on the hour (midnight: every UTC period) is all rollup, so the
    # spend stays whole when retention removed the raw rows it was made from.
    since = T0 + 5 * HOUR
    full = {case: spent(*case, raw) for case in cases}
    await purge_raw(db, T0 + 2 * DAY)
    assert len(await _raw(db)) < len(raw) / 2
    for column, ident in cases:
        assert await spend_since(db, column, ident, since) == full[(column, ident)]


async def test_hourly_rollups_are_purged_in_bounded_batches_and_daily_ones_kept(
    db: Database,
) -> None:
    """Hourly rollup rows of buckets before the cut go, a batch per transaction; the
    daily rows stay whole, and budgets (daily rows for whole days) still add up."""
    rows = _rows(300, seed=23)
    await insert_usage(db, USAGE_COLUMNS, rows)
    raw = await _raw(db)
    cutoff = T0 + 2 * DAY
    daily_before = {
        t.name: await _stored(db, t) for t in rollups.TABLES.values() if "daily" in t.name
    }
    hourly_old = 0
    for table in rollups.hourly_tables():
        stored = await _stored(db, table)
        hourly_old += sum(key[0] < cutoff for key in stored)
    assert hourly_old > 20
    deletes: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        assert await purge_hourly(db, cutoff, batch=10) == hourly_old
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    # each of the three tables: its full batches, then the one that came up short
    assert len(deletes) >= hourly_old // 10 + 1
    assert len(deletes) <= hourly_old // 10 + 3
    for table in rollups.hourly_tables():
        assert all(key[0] >= cutoff for key in await _stored(db, table))
        assert await _stored(db, table)  # the recent hours are still there
    for name, before in daily_before.items():
        assert await _stored(db, rollups._BY_NAME[name]) == before
    assert await purge_hourly(db, cutoff, batch=10) == 0

    # A period starting at midnight before the cut: whole days from the daily rows.
    since = T0
    for column, ident in [(None, "all"), ("key_id", KEYS[1]), ("model_group", "embed")]:
        expected = sum(
            r["cost_nusd"]
            for r in raw
            if r["time_ms"] >= since and (column is None or r[column] == ident)
        )
        assert await spend_since(db, column, ident, since) == expected
    # Reports by day and by key still cover the purged hours (daily rows); by hour, not.
    by_day = await report(db, Query(group_by="day", start_ms=T0), limit=100, offset=0)
    assert by_day[1]["requests"] == len(raw)
    by_hour = await report(db, Query(group_by="hour", start_ms=T0), limit=1000, offset=0)
    assert by_hour[1]["requests"] == sum(r["time_ms"] >= cutoff for r in raw)


async def test_forgetting_an_account_folds_its_rollup_rows_into_nameless_ones(
    db: Database,
) -> None:
    rows = _rows(300, seed=19)
    await insert_usage(db, USAGE_COLUMNS, rows)
    totals = {}
    named = [t for t in rollups.TABLES.values() if "user_id" in t.c]
    assert len(named) == 4
    for table in named:
        async with db.read() as conn:
            totals[table.name] = await conn.scalar(select(func.sum(table.c.cost_nusd)))
    async with db.write() as conn:
        await rollups.forget(conn, USERS[0], [KEYS[1]])
    for table in named:
        async with db.read() as conn:
            left = await conn.scalar(
                select(func.count())
                .select_from(table)
                .where((table.c.user_id == USERS[0]) | (table.c.key_id == KEYS[1]))
            )
            assert left == 0
            assert await conn.scalar(select(func.sum(table.c.cost_nusd))) == totals[table.name]
            others = await conn.scalar(
                select(func.count()).select_from(table).where(table.c.key_id == KEYS[0])
            )
            assert others > 0


async def test_audit_entries_filter_and_page_newest_first(db: Database) -> None:
    team, other = "c" * 32, "d" * 32
    async with db.write() as conn:
        for tid in (team, other):
            await conn.execute(insert(teams).values(id=tid, name=tid, created_ms=0))
        await conn.execute(
            insert(api_keys).values(
                id="e" * 32, key_hash="h" * 64, prefix="pk-x", team_id=team, created_ms=0
            )
        )
    written = [
        ("admin-key", "team.create", team),
        ("admin-key", "team.create", other),
        ("u1", "team.member_set", f"{team}/u2"),
        ("u1", "team.member_set", f"{other}/u2"),
        ("admin-key", "key.create", "e" * 32),
        ("anonymous", "auth.login_failed", None),
        ("u1", "cache.invalidate", f"team.{team}/*"),
    ]
    for actor, action, target in written:
        await audit(db, actor=actor, action=action, target=target, ip="10.0.0.1")
    everything = await entries(db, AuditQuery(), 100)
    assert [(e["actor"], e["action"], e["target"]) for e in everything] == written[::-1]
    pages, cursor = [], None
    while True:
        page = await entries(db, AuditQuery(before_id=cursor), 3)
        pages.append([e["id"] for e in page])
        if len(page) < 3:
            break
        cursor = page[-1]["id"]
    assert [i for page in pages for i in page] == [e["id"] for e in everything]
    assert len(await entries(db, AuditQuery(action="team.*"), 100)) == 4
    assert len(await entries(db, AuditQuery(action="team."), 100)) == 0
    assert len(await entries(db, AuditQuery(actor="u1"), 100)) == 3
    assert len(await entries(db, AuditQuery(target=team), 100)) == 1
    failed = await entries(db, AuditQuery(action="auth.login_failed"), 100)
    assert [e["actor"] for e in failed] == ["anonymous"]
    newest = everything[0]["time_ms"]
    assert await entries(db, AuditQuery(start_ms=newest + 1), 100) == []
    ours = await entries(db, AuditQuery(team_id=team), 100)
    assert [(e["action"], e["target"]) for e in ours] == [
        ("cache.invalidate", f"team.{team}/*"),
        ("key.create", "e" * 32),
        ("team.member_set", f"{team}/u2"),
        ("team.create", team),
    ]


@pytest.mark.parametrize("latency", [0, 5, 6, 120_000, 120_001])
def test_bucket_bounds_are_inclusive_above(latency: int) -> None:
    index = bucket_of(latency)
    low = BOUNDS_MS[index - 1] if index else -1
    high = BOUNDS_MS[index] if index < len(BOUNDS_MS) else float("inf")
    assert low < latency <= high
