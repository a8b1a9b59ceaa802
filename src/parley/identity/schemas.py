"""Validated input for admin operations, shared by the HTTP API and the CLI so both accept
exactly the same fields with the same errors."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from parley.errors import InvalidRequest
from parley.identity.keys import KeySpec

MAX_COUNT = 2**31 - 1
"""The largest rpm, tpm or max_parallel: the columns are 32-bit integers."""
MAX_USD = 1e9
"""The largest budget: a billion dollars, 1e18 nano-dollars, inside the 64-bit column."""


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    team_id: str | None = None
    user_id: str | None = None
    models: list[str] | None = None
    rpm: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    tpm: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    max_parallel: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    budget_usd: float | None = Field(default=None, ge=0, le=MAX_USD)
    soft_budget_usd: float | None = Field(default=None, ge=0, le=MAX_USD)
    budget_period: Literal["daily", "weekly", "monthly", "total"] = "monthly"
    expires_in_days: float | None = Field(default=None, gt=0)
    tier: str | None = None
    priority: int | None = Field(default=None, ge=1, le=5)
    max_cost_usd: float | None = Field(default=None, gt=0, le=MAX_USD)
    """The most one request with this key may cost (its reservation, priced beforehand)."""
    metadata: dict[str, Any] | None = None

    def spec(self) -> KeySpec:
        expires = None
        if self.expires_in_days is not None:
            expires = int((time.time() + self.expires_in_days * 86400) * 1000)
        return KeySpec(
            name=self.name,
            team_id=self.team_id,
            user_id=self.user_id,
            models=self.models,
            rpm=self.rpm,
            tpm=self.tpm,
            max_parallel=self.max_parallel,
            budget_nusd=_nusd(self.budget_usd),
            soft_budget_nusd=_nusd(self.soft_budget_usd),
            budget_period=self.budget_period,
            expires_ms=expires,
            tier=self.tier,
            priority=self.priority,
            max_cost_nusd=_nusd(self.max_cost_usd),
            metadata=self.metadata,
        )


class _LimitFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    tpm: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    max_parallel: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    budget_usd: float | None = Field(default=None, ge=0, le=MAX_USD)
    soft_budget_usd: float | None = Field(default=None, ge=0, le=MAX_USD)
    budget_period: Literal["daily", "weekly", "monthly", "total"] | None = None
    reset_budget: bool | None = None
    """True starts the current budget period's spend again from zero, now."""

    def values(self) -> dict[str, Any]:
        """Only the fields the request set (null clears a limit)."""
        out: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if value is None and name in ("mfa_required", "is_admin", "disabled", "budget_period"):
                continue  # not nullable: null means "leave as is"
            if name == "reset_budget":
                if value:
                    out["budget_reset_ms"] = int(time.time() * 1000)
            elif name in ("budget_usd", "soft_budget_usd"):
                out[name.replace("_usd", "_nusd")] = _nusd(value)
            else:
                out[name] = value
        if not out:
            raise InvalidRequest("nothing to change: send at least one field")
        return out


class TeamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    owner_id: str | None = None


class TeamUpdate(_LimitFields):
    mfa_required: bool | None = None


class UserUpdate(_LimitFields):
    is_admin: bool | None = None
    disabled: bool | None = None
    tier: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    """A user tier of the model file (``user_tiers``); null takes the user out of it."""


class PasswordReset(BaseModel):
    """An admin's reset: ``password`` sets it now; without it, a one-time link comes back
    (for deployments without SMTP). Either way every session of the account ends."""

    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(default=None, max_length=1024)


class AnomalyReview(BaseModel):
    """An admin's verdict on a usage anomaly: ``dismissed`` (a false alarm: a suspended
    key works again) or ``confirmed`` (the key stays suspended)."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["dismissed", "confirmed"]
    note: str | None = Field(default=None, max_length=500)


class AnomalyScan(BaseModel):
    """Score the window ending now at once; ``retrain`` first refits the model."""

    model_config = ConfigDict(extra="forbid")

    retrain: bool = False


class MemberSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["owner", "admin", "member", "viewer"]


class InvitationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320)
    role: Literal["owner", "admin", "member", "viewer"] = "member"


def _nusd(usd: float | None) -> int | None:
    return None if usd is None else round(usd * 1e9)


def validated(model: type[BaseModel], data: Any) -> Any:
    """Validate ``data``; the first problem becomes a 400 naming its field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequest(str(first["msg"]), param=param) from None


def key_spec(data: dict[str, Any]) -> KeySpec:
    clean = {k: v for k, v in data.items() if v is not None}
    created: KeyCreate = validated(KeyCreate, clean)
    return created.spec()
