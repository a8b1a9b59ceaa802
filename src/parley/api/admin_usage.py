"""``/admin/usage``, ``/admin/overview``, ``/admin/cache/hit-rates`` and ``/admin/audit``:
what the console reads.

Rights (``admin.actor``): global admins and the admin key see everything; a team's owners
and admins see only that team (``?team_id=``, or their one team when they manage one),
and the team filter is part of every query, so no total, count or chart point includes
another team's traffic; anyone else is refused before any query runs.

Usage comes from the rollups (``store/usage_reports.py``), never from raw rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from starlette.responses import Response

from parley.api.admin import Actor, actor
from parley.api.deps import int_param, json_response, services
from parley.errors import InvalidRequest, PermissionDenied
from parley.identity.audit import AuditQuery, entries
from parley.store.rollups import HOUR_MS
from parley.store.usage_reports import FILTERS, GROUP_BY, SORTS, Query, cache_rates, report
from parley.store.usage_reports import overview as read_overview

router = APIRouter(prefix="/admin", tags=["admin"])
CSV_MAX_ROWS = 100_000
_WINDOWS = {"hour": 1, "day": 24, "week": 24 * 7}
_CSV_COLUMNS = (
    "bucket",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "errors",
    "cost_usd",
)


def team_scope(who: Actor, requested: str | None) -> str | None:
    """The team a read is confined to: what a global admin asked for (None: everything);
    for a team admin the team they named, or their only team. Never None for them."""
    if who.is_admin:
        return requested
    if requested is None:
        if len(who.admin_of) == 1:
            return next(iter(who.admin_of))
        raise PermissionDenied("you administer several teams: pass ?team_id=")
    who.require_team(requested, "only a global admin or the team's admins may read this team")
    return requested


def _query(request: Request, who: Actor) -> tuple[Query, str | None]:
    q = request.query_params
    group_by = q.get("group_by", "day")
    if group_by not in GROUP_BY:
        raise InvalidRequest(f"group_by must be one of {', '.join(GROUP_BY)}", param="group_by")
    sort = q.get("sort", "bucket")
    if sort not in SORTS:
        raise InvalidRequest(f"sort must be one of {', '.join(SORTS)}", param="sort")
    team_id = team_scope(who, q.get("team_id"))
    filters = [(name, q[name]) for name in FILTERS if name != "team_id" and q.get(name)]
    if team_id is not None:
        filters.append(("team_id", team_id))
    start, end = parse_time(q.get("start"), "start"), parse_time(q.get("end"), "end")
    if start is not None and end is not None and end <= start:
        raise InvalidRequest("end must be after start", param="end")
    query = Query(
        group_by=group_by,
        start_ms=start,
        end_ms=end,
        filters=tuple(filters),
        sort=sort,
    )
    return query, team_id


@router.get("/usage")
async def usage(request: Request) -> Response:
    """Usage grouped by day, hour, key, user, team or model group over ``start``..``end``
    (half open), with totals; ``?format=csv`` is the same as ``/admin/usage.csv``."""
    if request.query_params.get("format") == "csv":
        return await usage_csv(request)
    if request.query_params.get("format") not in (None, "json"):
        raise InvalidRequest("format must be json or csv", param="format")
    who = await actor(request)
    query, team_id = _query(request, who)
    q = request.query_params
    limit = int_param(q.get("limit"), "limit", 100, 1, 1000)
    offset = int_param(q.get("offset"), "offset", 0, 0, 10**9)
    rows, totals = await report(services(request).db, query, limit=limit + 1, offset=offset)
    more = len(rows) > limit
    return json_response(
        {
            "object": "list",
            "group_by": query.group_by,
            "team_id": team_id,
            "start": query.start_ms,
            "end": query.end_ms,
            "data": rows[:limit],
            "totals": totals,
            "next_offset": offset + limit if more else None,
        }
    )


@router.get("/usage.csv")
async def usage_csv(request: Request) -> Response:
    """Every row of the report (up to ``CSV_MAX_ROWS``) as CSV, for a spreadsheet."""
    who = await actor(request)
    query, _ = _query(request, who)
    rows, _totals = await report(services(request).db, query, limit=CSV_MAX_ROWS, offset=0)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    timed = query.group_by in ("hour", "day")
    writer.writerow(("bucket_start", *_CSV_COLUMNS[1:]) if timed else _CSV_COLUMNS)
    for row in rows:
        bucket = _iso(row["bucket"]) if timed else _cell(row["bucket"])
        writer.writerow((bucket, *(row[name] for name in _CSV_COLUMNS[1:])))
    name = f"parley-usage-by-{query.group_by}.csv"
    return Response(
        out.getvalue().encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(value: str | None) -> str:
    """A name as a spreadsheet cell: never read as a formula (CSV injection)."""
    if value is None:
        return ""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@router.get("/overview")
async def overview(request: Request) -> Response:
    """The console's first page: per model group over the last hour, day or week (whole
    hours: the window starts at the top of the hour it reaches back to), a series for
    charts (hourly; daily for a week), and (for global admins) deployments whose breaker
    is not closed."""
    who = await actor(request)
    q = request.query_params
    team_id = team_scope(who, q.get("team_id"))
    window, start, now = _window(q.get("window", "day"))
    grain: Literal["hour", "day"] = "day" if window == "week" else "hour"
    groups, series, totals = await read_overview(
        services(request).db, start, team_id=team_id, series_grain=grain
    )
    breakers = _breakers(request) if who.is_admin else None
    return json_response(
        {
            "object": "overview",
            "window": window,
            "start": start,
            "end": now,
            "team_id": team_id,
            "series_grain": grain,
            "groups": groups,
            "totals": totals,
            "series": series,
            "breakers": breakers,
        }
    )


@router.get("/cache/hit-rates")
async def cache_hit_rates(request: Request) -> Response:
    """Exact and semantic cache hit rates per model group over the last hour, day or week,
    from the usage rollups (every instance's lookups, not this process's counters)."""
    who = await actor(request)
    q = request.query_params
    team_id = team_scope(who, q.get("team_id"))
    window, start, now = _window(q.get("window", "day"))
    groups, totals = await cache_rates(services(request).db, start, team_id=team_id)
    return json_response(
        {
            "object": "cache.hit_rates",
            "window": window,
            "start": start,
            "end": now,
            "team_id": team_id,
            "data": groups,
            "totals": totals,
        }
    )


def _window(window: str) -> tuple[str, int, int]:
    """A window's name, its start (the top of the hour it reaches back to) and now."""
    if window not in _WINDOWS:
        raise InvalidRequest("window must be hour, day or week", param="window")
    now = int(time.time() * 1000)
    return window, (now - _WINDOWS[window] * HOUR_MS) // HOUR_MS * HOUR_MS, now


def _breakers(request: Request) -> list[dict[str, Any]]:
    """Deployments whose breaker is open or half open on this instance (as in
    ``/admin/deployments``; shared breakers make every instance agree)."""
    health = request.app.state.gateway.health.all()
    found = [h.snapshot() for h in health]
    return [s for s in found if s["breaker"] != "closed"]


@router.get("/audit")
async def audit_log(request: Request) -> Response:
    """The audit log, newest first, filtered and cursor-paged (``?cursor=`` from the
    previous page's ``next_cursor``). Read only: there is no route that edits it."""
    who = await actor(request)
    q = request.query_params
    team_id = team_scope(who, q.get("team_id"))
    limit = int_param(q.get("limit"), "limit", 100, 1, 1000)
    cursor = q.get("cursor")
    before = int_param(cursor, "cursor", 0, 1, 2**62) if cursor is not None else None
    query = AuditQuery(
        actor=q.get("actor"),
        action=q.get("action"),
        target=q.get("target"),
        start_ms=parse_time(q.get("start"), "start"),
        end_ms=parse_time(q.get("end"), "end"),
        before_id=before,
        team_id=team_id,
    )
    rows = await entries(services(request).db, query, limit + 1)
    more = len(rows) > limit
    page = rows[:limit]
    return json_response(
        {
            "object": "list",
            "team_id": team_id,
            "data": page,
            "next_cursor": str(page[-1]["id"]) if more and page else None,
        }
    )


def parse_time(raw: str | None, name: str) -> int | None:
    """Milliseconds since the epoch, or an ISO date/time (UTC when no offset is given)."""
    if raw is None:
        return None
    if raw.isdigit():
        return int(raw)
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(
            f"{name} must be epoch milliseconds or an ISO date such as 2026-11-01", param=name
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)
