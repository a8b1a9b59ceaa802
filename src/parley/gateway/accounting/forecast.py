"""Spend forecasts per budget holder: spend so far in the current period and a projection
to its end at the recent rate (the last hour's, or the period's so far when younger).

Read from the usage table (the same source budget counters are initialised from), so a
forecast lags live spend by the usage writer's flush interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parley.gateway.accounting.budgets import current_period, has_budget
from parley.gateway.accounting.caller import Principal
from parley.gateway.accounting.limits import SpendLoader

WINDOW_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Forecast:
    scope: str
    holder: str
    period: str
    spent_nusd: int
    budget_nusd: int | None
    projected_nusd: int | None
    period_end_ms: int | None

    def view(self) -> dict[str, Any]:
        def usd(v: int | None) -> float | None:
            return None if v is None else v / 1e9

        return {
            "scope": self.scope,
            "holder": self.holder,
            "period": self.period,
            "spent_usd": usd(self.spent_nusd),
            "budget_usd": usd(self.budget_nusd),
            "projected_usd": usd(self.projected_nusd),
            "projected_share": None
            if self.projected_nusd is None or not self.budget_nusd
            else round(self.projected_nusd / self.budget_nusd, 4),
            "period_end": self.period_end_ms,
        }


async def forecast(
    holders: list[Principal], spend: SpendLoader, now_ms: int, window_ms: int = WINDOW_MS
) -> list[Forecast]:
    found: list[Forecast] = []
    for holder in holders:
        limits = holder.limits
        if not has_budget(limits):
            continue
        period = current_period(
            limits.budget_period, now_ms, limits.budget_reset_ms, limits.budget_timezone
        )
        spent = await spend(holder.scope, holder.id, period.start_ms)
        projected = None
        if period.end_ms is not None:
            since = max(period.start_ms, now_ms - window_ms)
            recent = (
                await spend(holder.scope, holder.id, since) if since > period.start_ms else spent
            )
            elapsed = max(1, now_ms - since)
            projected = spent + round(recent / elapsed * max(0, period.end_ms - now_ms))
        found.append(
            Forecast(
                holder.scope,
                holder.label or holder.id,
                period.id,
                spent,
                limits.budget_nusd,
                projected,
                period.end_ms,
            )
        )
    return found
