"""Budget periods in a configured time zone; alert signatures."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest

from parley.config.models import BudgetConfig
from parley.gateway.accounting.alerts import sign
from parley.gateway.accounting.budgets import current_period


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def test_a_daily_period_begins_at_local_midnight() -> None:
    # 23:30 UTC on 1 December is already 2 December in Paris (UTC+1)
    period = current_period("daily", ms("2026-12-01T23:30:00+00:00"), timezone="Europe/Paris")
    assert period.id == "d2026-12-02@Europe/Paris"
    assert period.start_ms == ms("2026-12-01T23:00:00+00:00")
    assert period.end_ms == ms("2026-12-02T23:00:00+00:00")
    utc = current_period("daily", ms("2026-12-01T23:30:00+00:00"))
    assert utc.id == "d2026-12-01"


def test_a_month_that_spans_a_dst_change_ends_at_local_midnight() -> None:
    # October 2026 in Paris starts at UTC+2 and ends at UTC+1
    period = current_period("monthly", ms("2026-10-15T12:00:00+00:00"), timezone="Europe/Paris")
    assert period.start_ms == ms("2026-09-30T22:00:00+00:00")
    assert period.end_ms == ms("2026-10-31T23:00:00+00:00")
    assert current_period("total", 0).end_ms is None


def test_budget_config_rejects_unknown_zones_and_empty_budgets() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        BudgetConfig(usd=1, timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="needs usd or soft_usd"):
        BudgetConfig(period="daily")


def test_signature_is_hmac_of_timestamp_and_body() -> None:
    expected = hmac.new(b"s", b"10.{}", hashlib.sha256).hexdigest()
    assert sign("s", 10, b"{}") == f"t=10,v1={expected}"
    assert sign("s", 10, b"{}") != sign("s", 11, b"{}")
    assert sign("s", 10, b"{}") != sign("t", 10, b"{}")
