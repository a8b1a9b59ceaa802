"""Budget periods, in UTC or a configured time zone: which counter a request charges,
and since when spend counts.

A period's counter key carries the period's id (``d2026-11-22``, ``w2026-47``, ``m2026-11``,
``total``) and the last reset time, so a new period or an admin reset starts a fresh
counter instead of rewriting a shared one.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from functools import cache

from parley.gateway.accounting.caller import BudgetPeriod, Limits

_DAY = dt.timedelta(days=1)
TOTAL_TTL_S = 400 * 86400  # a "total" counter is re-read from the database at most yearly


@dataclass(frozen=True, slots=True)
class Period:
    id: str
    start_ms: int
    """Spend since this instant counts (the period start, or a later reset)."""
    ttl_s: int
    """How long the counter must live: past the period end, with a day to spare."""
    end_ms: int | None = None
    """When the period ends and a fresh one begins (None: a ``total`` budget never resets)."""


@cache
def _zone(name: str) -> dt.tzinfo:
    return dt.UTC if name == "UTC" else zoneinfo.ZoneInfo(name)


def current_period(
    period: BudgetPeriod, now_ms: int, reset_ms: int | None = None, timezone: str = "UTC"
) -> Period:
    """Periods begin at local midnight in ``timezone`` (weeks on Monday, months on the 1st);
    the id names the zone when it is not UTC, so two zones never share a counter."""
    tz = _zone(timezone)
    now = dt.datetime.fromtimestamp(now_ms / 1000, tz=tz)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        start, end, ident = day, day + _DAY, f"d{day:%Y-%m-%d}"
    elif period == "weekly":
        start = day - dt.timedelta(days=day.weekday())
        year, week, _ = start.isocalendar()
        end, ident = start + 7 * _DAY, f"w{year}-{week:02d}"
    elif period == "monthly":
        start = day.replace(day=1)
        end = (start + 32 * _DAY).replace(day=1)
        ident = f"m{start:%Y-%m}"
    else:
        start, end, ident = dt.datetime(1970, 1, 1, tzinfo=dt.UTC), None, "total"
    start = _local_midnight(start, tz)
    if end is not None:
        end = _local_midnight(end, tz)
    if timezone != "UTC" and end is not None:
        ident = f"{ident}@{timezone}"
    start_ms = int(start.timestamp() * 1000)
    if reset_ms is not None and reset_ms > start_ms:
        start_ms = reset_ms
        ident = f"{ident}:r{reset_ms}"
    ttl = TOTAL_TTL_S if end is None else int((end - now).total_seconds()) + 86400
    end_ms = None if end is None else int(end.timestamp() * 1000)
    return Period(ident, start_ms, ttl, end_ms)


def _local_midnight(moment: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """Date arithmetic on aware datetimes keeps the UTC offset of the start; re-localise
    so a period that spans a DST change still ends at local midnight."""
    if tz is dt.UTC:
        return moment
    naive = moment.replace(tzinfo=None)
    return naive.replace(tzinfo=tz)


def has_budget(limits: Limits) -> bool:
    return limits.budget_nusd is not None or limits.soft_budget_nusd is not None
