"""What the admin console reads about usage: reports and the overview, from the rollups.

Every query here reads ``usage_hourly`` or ``usage_daily`` (``store/rollups.py``), never
the raw ``usage`` rows, so a page view costs the same at ten million raw rows as at ten:
its work grows with the rollup rows in the range (buckets x distinct key, user, team and
group), not with requests. ``bench/usage_read.py`` measures it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Table, func, select

from parley.store.db import Database
from parley.store.histogram import quantile
from parley.store.rollups import DAY_MS, LAT, SUMS, TABLES, TTFT, range_clause

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
    def grain(self) -> Literal["hour", "day"]:
        """Daily rollups unless hours are asked for or the range does not fall on UTC
        days: the range is then honoured to the hour (rollups hold nothing finer)."""
        if self.group_by == "hour":
            return "hour"
        aligned = all(t is None or t % DAY_MS == 0 for t in (self.start_ms, self.end_ms))
        return "day" if aligned else "hour"


def _where(table: Table, query: Query) -> list[Any]:
    clauses = [table.c[name] == value for name, value in query.filters]
    in_range = range_clause(table, query.start_ms, query.end_ms)
    return clauses if in_range is None else [in_range, *clauses]


def _bucket(table: Table, group_by: GroupBy) -> ColumnElement[Any]:
    if group_by == "hour":
        return table.c.bucket_ms
    if group_by == "day":
        if table.name == TABLES["day"].name:
            return table.c.bucket_ms
        return (table.c.bucket_ms / DAY_MS) * DAY_MS
    return table.c[f"{group_by}_id" if group_by != "model_group" else group_by]


def _sums(table: Table, names: Sequence[str]) -> list[ColumnElement[Any]]:
    return [func.coalesce(func.sum(table.c[n]), 0).label(n) for n in names]


async def report(
    db: Database, query: Query, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of ``query`` grouped (up to ``limit`` from ``offset``) and the range's totals."""
    table = TABLES[query.grain]
    bucket = _bucket(table, query.group_by).label("bucket")
    names = (*_ROW_SUMS, "cost_nusd")
    grouped = select(bucket, *_sums(table, names)).where(*_where(table, query)).group_by(bucket)
    if query.sort == "cost":
        grouped = grouped.order_by(func.sum(table.c.cost_nusd).desc(), bucket)
    elif query.sort == "requests":
        grouped = grouped.order_by(func.sum(table.c.requests).desc(), bucket)
    else:
        grouped = grouped.order_by(bucket)
    total_names = (*names, "cache_lookups", "cache_hits", "semantic_hits")
    totals_query = select(*_sums(table, total_names)).where(*_where(table, query))
    async with db.read(lag_ok=True) as conn:
        rows = [dict(r._mapping) for r in await conn.execute(grouped.limit(limit).offset(offset))]
        found = (await conn.execute(totals_query)).one()._mapping
    data = []
    for row in rows:
        out: dict[str, Any] = {"bucket": _bucket_value(query.group_by, row["bucket"])}
        out.update({n: int(row[n]) for n in _ROW_SUMS})
        out["cost_usd"] = int(row["cost_nusd"]) / 1e9
        data.append(out)
    totals: dict[str, Any] = {n: int(found[n]) for n in total_names if n != "cost_nusd"}
    totals["cost_usd"] = int(found["cost_nusd"]) / 1e9
    return data, totals


def _bucket_value(group_by: GroupBy, value: Any) -> Any:
    if group_by in ("hour", "day"):
        return int(value)
    return value or None  # '' in a rollup: no key, user or team


async def overview(
    db: Database, start_ms: int, *, team_id: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per model group since ``start_ms`` (an hour boundary): counts, tokens, spend, cache
    hit rate and latency/TTFT percentiles; and an hourly series per group for charts."""
    table = TABLES["hour"]
    where = [table.c.bucket_ms >= start_ms]
    if team_id is not None:
        where.append(table.c.team_id == team_id)
    measures = _sums(table, (*SUMS, *LAT, *TTFT))
    per_group = (
        select(table.c.model_group, *measures)
        .where(*where)
        .group_by(table.c.model_group)
        .order_by(table.c.model_group)
    )
    per_bucket = (
        select(table.c.bucket_ms, table.c.model_group, *measures)
        .where(*where)
        .group_by(table.c.bucket_ms, table.c.model_group)
        .order_by(table.c.bucket_ms, table.c.model_group)
    )
    async with db.read(lag_ok=True) as conn:
        groups = [_stats(dict(r._mapping)) for r in await conn.execute(per_group)]
        series = [_stats(dict(r._mapping)) for r in await conn.execute(per_bucket)]
    for point in series:
        point["bucket"] = int(point.pop("bucket_ms"))
    return groups, series


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
