"""Who is asking: resolved by ``identity/`` in the API layer, consumed by the gateway's
policies (limits, budgets, model access, usage records). Framework-free and immutable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

BudgetPeriod = Literal["daily", "weekly", "monthly", "total"]
Scope = Literal["key", "user", "team", "ip", "model", "installation", "tier", "deployment"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Null fields mean "no limit". Money in nano-dollars (see ``store/tables.py``)."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_nusd: int | None = None
    budget_period: BudgetPeriod = "monthly"
    soft_budget_nusd: int | None = None
    budget_reset_ms: int | None = None
    budget_timezone: str = "UTC"
    max_cost_nusd: int | None = None
    """The most one request may cost (its reservation); a per-request ceiling."""
    alert_thresholds: tuple[float, ...] = ()
    """Percentages of ``budget_nusd`` at which an alert fires (config-file budgets)."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any], prefix: str = "") -> Limits:
        def get(name: str) -> Any:
            return row.get(prefix + name)

        return cls(
            rpm=get("rpm"),
            tpm=get("tpm"),
            max_parallel=get("max_parallel"),
            budget_nusd=get("budget_nusd"),
            budget_period=get("budget_period") or "monthly",
            soft_budget_nusd=get("soft_budget_nusd"),
            budget_reset_ms=get("budget_reset_ms"),
            max_cost_nusd=get("max_cost_nusd"),
        )

    @property
    def empty(self) -> bool:
        return (
            self.rpm is None
            and self.tpm is None
            and self.max_parallel is None
            and self.budget_nusd is None
            and self.soft_budget_nusd is None
            and self.max_cost_nusd is None
        )


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Principal:
    """One party whose limits apply to a request: ``key``/``user``/``team`` and their ids."""

    scope: Scope
    id: str
    limits: Limits
    label: str = ""
    """How errors name it (a key's visible prefix, never the key)."""


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    session_id: str | None = None
    ip: str | None = None
    models: frozenset[str] | None = None
    """Model groups this caller may use; None = all."""
    principals: tuple[Principal, ...] = ()
    is_admin: bool = False
    tier: str | None = None
    """The key's routing-tier cap (fast / balanced / premium)."""
    user_tier: str | None = None
    """The user's tier (``user_tiers`` in the model file): limits applied per member."""
    priority: int | None = None
    """The key's admission priority (1 first .. 5); None = the default."""

    def may_use(self, model_group: str) -> bool:
        return self.models is None or model_group in self.models


ANONYMOUS = Caller()
