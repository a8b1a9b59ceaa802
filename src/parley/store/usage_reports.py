"""What the admin console reads about usage: reports and the overview, from the rollups.

Every query here reads a rollup (``store/rollups.py``), never the raw ``usage`` rows, so
a page view costs the same at ten million raw rows as at ten: its work grows with the
rollup rows in the range (buckets x the groups or principals it shows), not with
requests. A range is read from daily rows for the whole UTC days inside it and hourly
rows for the part days at its ends, so it is honoured to the hour at the cost of at
most 46 hourly buckets. ``bench/usage_read.py`` measures it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Subquery, and_, func, select, union_all

from parley.store.db import Database
from parley.store.histogram import quantile
from parley.store.rollups import DAY_MS, LAT, SUMS, TABLES, TTFT, Shape, shape_for

GroupBy = Literal["hour", "day", "key", "user", "team", "model_group"]
GROUP_BY: tuple[GroupBy, ...] = ("day", "hour", "key", "user", "team", "model_group")
Sort = Literal["bucket", "cost", "requests"]
SORTS: tuple[Sort, ...] = ("bucket", "cost", "requests")
FILTERS: tuple[str, ...] = ("key_id", "user_id", "team_id", "model_group")
_ROW_SUMS = ("requests", "prompt_tokens", "completion_tokens", "cached_tokens", "errors")


@dataclass(frozen=True, slots=True)
class Query:
    """One report: a grouping, a half-open time range, and exact-match filters."""

    group_by: GroupBy = "day"
    start_ms: int | None = None
    end_ms: int | None = None
    filters: tuple[tuple[str, str], ...] = ()
    sort: Sort = "bucket"

    @property
    def shape(self) -> Shape:
        """The narrowest rollup holding the grouping and the filters."""
        names = [name for name, _ in self.filters]
        if self.group_by not in ("hour", "day"):
            names.append(self.group_by if self.group_by == "model_group" else f"{self.group_by}_id")
        return shape_for(names)


def source(
    shape: Shape,
    start_ms: int | None,
    end_ms: int | None,
    filters: Sequence[tuple[str, str]],
    *,
    hourly: bool = False,
    columns: Sequence[str] | None = None,
) -> Subquery:
    """Rollup rows of ``shape`` covering ``start_ms``..``end_ms`` exactly to the hour:
    daily rows for the whole days inside, hourly rows for the ends (``hourly``: hourly
    rows throughout, for reports by hour). ``columns``: only these (PostgreSQL carries
    every column of a ``UNION ALL`` through its append, the histograms too)."""
    days, hours = TABLES[(shape, "day")], TABLES[(shape, "hour")]

    def rows(table: Any, start: int | None, end: int | None) -> Any:
        return _rows(table, start, end, filters, columns)

    if hourly:
        parts = [rows(hours, start_ms, end_ms)]
    else:
        first = None if start_ms is None else -(-start_ms // DAY_MS) * DAY_MS
        last = None if end_ms is None else end_ms // DAY_MS * DAY_MS
        if first is not None and last is not None and first >= last:
            parts = [rows(hours, start_ms, end_ms)]
        else:
            parts = [rows(days, first, last)]
            if start_ms is not None and first is not None and start_ms < first:
                parts.append(rows(hours, start_ms, first))
            if end_ms is not None and last is not None and last < end_ms:
                parts.append(rows(hours, last, end_ms))
    found: Subquery = parts[0].subquery() if len(parts) == 1 else union_all(*parts).subquery()
    return found


def _rows(
    table: Any,
    start_ms: int | None,
    end_ms: int | None,
    filters: Sequence[tuple[str, str]],
    columns: Sequence[str] | None = None,
) -> Any:
    clauses = [table.c[name] == value for name, value in filters]
    if start_ms is not None:
        clauses.append(table.c.bucket_ms >= start_ms)
    if end_ms is not None:
        clauses.append(table.c.bucket_ms < end_ms)
    picked = select(table) if columns is None else select(*(table.c[n] for n in columns))
    return picked.where(and_(*clauses)) if clauses else picked


def _dimension(group_by: GroupBy) -> str:
    """The rollup column a report by key, user, team or model group groups on."""
    return f"{group_by}_id" if group_by != "model_group" else group_by


def _bucket(rows: Subquery, group_by: GroupBy) -> ColumnElement[Any]:
    if group_by == "hour":
        return rows.c.bucket_ms
    if group_by == "day":
        return (rows.c.bucket_ms // DAY_MS) * DAY_MS
    return rows.c[_dimension(group_by)]


def _sums(rows: Subquery, names: Sequence[str]) -> list[ColumnElement[Any]]:
    return [func.coalesce(func.sum(rows.c[n]), 0).label(n) for n in names]


async def report(
    db: Database, query: Query, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of ``query`` grouped (up to ``limit`` from ``offset``) and the range's totals."""
    names = (*_ROW_SUMS, "cost_nusd", "cache_lookups", "cache_hits", "semantic_hits")
    grouping = [] if query.group_by in ("hour", "day") else [_dimension(query.group_by)]
    rows = source(
        query.shape,
        query.start_ms,
        query.end_ms,
        query.filters,
        hourly=query.group_by == "hour",
        columns=("bucket_ms", *grouping, *names),
    )
    bucket = _bucket(rows, query.group_by).label("bucket")
    grouped = select(bucket, *_sums(rows, names)).group_by(bucket)
    if query.sort == "cost":
        grouped = grouped.order_by(func.sum(rows.c.cost_nusd).desc(), bucket)
    elif query.sort == "requests":
        grouped = grouped.order_by(func.sum(rows.c.requests).desc(), bucket)
    else:
        grouped = grouped.order_by(bucket)
    async with db.read(lag_ok=True) as conn:
        found = [dict(r._mapping) for r in await conn.execute(grouped.limit(limit).offset(offset))]
        if offset == 0 and len(found) < limit:  # every group is here: they sum to the totals
            sums = {n: sum(int(r[n]) for r in found) for n in names}
        else:  # a page of many: one more pass over the same rows
            sums = dict((await conn.execute(select(*_sums(rows, names)))).one()._mapping)
    totals: dict[str, Any] = {n: int(sums[n]) for n in names if n != "cost_nusd"}
    totals["cost_usd"] = int(sums["cost_nusd"]) / 1e9
    return [_row(query.group_by, r) for r in found], totals


def _row(group_by: GroupBy, row: dict[str, Any]) -> dict[str, Any]:
    bucket = row["bucket"]
    out: dict[str, Any] = {
        # '' in a rollup: no key, user or team
        "bucket": int(bucket) if group_by in ("hour", "day") else (bucket or None)
    }
    out.update({n: int(row[n]) for n in _ROW_SUMS})
    out["cost_usd"] = int(row["cost_nusd"]) / 1e9
    return out


async def overview(
    db: Database,
    start_ms: int,
    *,
    team_id: str | None,
    series_grain: Literal["hour", "day"] = "hour",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Per model group since ``start_ms`` (an hour boundary): counts, tokens, spend, cache
    hit rate and latency/TTFT percentiles; a series per hour or day and group; and the
    same figures over every group."""
    filters = [] if team_id is None else [("team_id", team_id)]
    rows = source("groups", start_ms, None, filters, hourly=series_grain == "hour")
    names = (*SUMS, *LAT, *TTFT)
    bucket = _bucket(rows, series_grain).label("bucket")
    per_bucket = (
        select(bucket, rows.c.model_group, *_sums(rows, names))
        .group_by(bucket, rows.c.model_group)
        .order_by(bucket, rows.c.model_group)
    )
    async with db.read(lag_ok=True) as conn:
        points = [dict(r._mapping) for r in await conn.execute(per_bucket)]
    by_group: dict[str, dict[str, int]] = {}
    for point in points:  # the groups' totals are their points summed: one query, not two
        into = by_group.setdefault(point["model_group"], dict.fromkeys(names, 0))
        for name in names:
            into[name] += int(point[name])
    groups = [_stats({"model_group": g, **by_group[g]}) for g in sorted(by_group)]
    series = [_stats(point) for point in points]
    for point in series:
        point["bucket"] = int(point["bucket"])
    # every group's histograms summed: the percentiles of all traffic, which the groups'
    # own percentiles cannot give
    everything = {n: sum(g[n] for g in by_group.values()) for n in names}
    return groups, series, _stats(everything)


def _stats(row: dict[str, Any]) -> dict[str, Any]:
    """Summed rollup columns as the overview shows them."""
    lat = [int(row.pop(n)) for n in LAT]
    ttft = [int(row.pop(n)) for n in TTFT]
    sums = {n: int(row.pop(n)) for n in SUMS}
    requests, lookups = sums["requests"], sums["cache_lookups"]
    hits = sums["cache_hits"] + sums["semantic_hits"]
    return {
        **row,
        "requests": requests,
        "errors": sums["errors"],
        "error_rate": sums["errors"] / requests if requests else 0.0,
        "prompt_tokens": sums["prompt_tokens"],
        "completion_tokens": sums["completion_tokens"],
        "cached_tokens": sums["cached_tokens"],
        "cost_usd": sums["cost_nusd"] / 1e9,
        "cache_lookups": lookups,
        "cache_hits": sums["cache_hits"],
        "semantic_hits": sums["semantic_hits"],
        "cache_hit_rate": hits / lookups if lookups else None,
        "latency_ms": {
            "mean": round(sums["latency_sum_ms"] / requests, 1) if requests else None,
            "p50": quantile(lat, 0.5),
            "p99": quantile(lat, 0.99),
        },
        "ttft_ms": {"count": sum(ttft), "p50": quantile(ttft, 0.5), "p99": quantile(ttft, 0.99)},
    }


async def cache_rates(
    db: Database, start_ms: int, *, team_id: str | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Cache outcomes per model group since ``start_ms``, and over every group: lookups
    (hits, semantic hits and misses; bypasses are not lookups) and the share of each.
    From the rollups, which every instance writes, so the rates are the fleet's, not one
    process's counters."""
    filters = [] if team_id is None else [("team_id", team_id)]
    rows = source("groups", start_ms, None, filters)
    names = ("cache_lookups", "cache_hits", "semantic_hits")
    grouped = (
        select(rows.c.model_group, *_sums(rows, names))
        .group_by(rows.c.model_group)
        .having(func.sum(rows.c.cache_lookups) > 0)
        .order_by(rows.c.model_group)
    )
    async with db.read(lag_ok=True) as conn:
        found = [dict(r._mapping) for r in await conn.execute(grouped)]
    groups = [_rates(row["model_group"], row) for row in found]
    total = {n: sum(int(r[n]) for r in found) for n in names}
    return groups, _rates(None, total)


def _rates(group: str | None, row: dict[str, Any]) -> dict[str, Any]:
    lookups, exact, semantic = (
        int(row[n]) for n in ("cache_lookups", "cache_hits", "semantic_hits")
    )
    share = (lambda n: n / lookups) if lookups else (lambda _n: None)
    return {
        **({"model_group": group} if group is not None else {}),
        "lookups": lookups,
        "hits": exact,
        "semantic_hits": semantic,
        "misses": lookups - exact - semantic,
        "hit_rate": share(exact + semantic),
        "exact_hit_rate": share(exact),
        "semantic_hit_rate": share(semantic),
    }
