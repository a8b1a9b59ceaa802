"""Admission: rate limits, concurrency limits, budgets and revocation, in one atomic call
to the shared state before a request goes upstream, and one reconciliation after it.

Scopes: the caller's key, user and team (limits stored on each), the client IP (process
settings) and the model group (config file). Token limits and budgets reserve an estimate
(prompt tokens plus ``max_tokens``, priced at the group's dearest deployment) and settle
to the real usage afterwards, so concurrent requests cannot overshoot a limit together.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from parley.errors import (
    AuthenticationFailed,
    BudgetExceeded,
    RateLimited,
    ServiceUnavailable,
    StateError,
)
from parley.gateway.accounting.budgets import current_period, has_budget
from parley.gateway.accounting.caller import Caller, Limits, Principal
from parley.observability.logging import get_logger
from parley.observability.metrics import Metrics
from parley.state import Absent, Check, Settle, Slot, Spend, StateBackend, Window
from parley.state import keys as state_keys

log = get_logger(__name__)

SpendLoader = Callable[[str, str, int], Awaitable[int]]
"""(scope, id, since_ms) -> nano-dollars already spent, read from the usage table."""

_UNLIMITED = 2**62
_SLOT_TTL_S = 3600.0
_REVOCATION_KINDS = {"key": "key_id", "session": "session_id"}


@dataclass(frozen=True, slots=True)
class LimitSettings:
    ip: Limits = field(default_factory=Limits)
    rate_fail_open: bool = True
    budget_fail_open: bool = False
    default_max_tokens: int = 1024
    revocation_ttl_s: float = 60.0


@dataclass(slots=True)
class _Meta:
    """What each check stands for, to explain a refusal and to settle afterwards."""

    kind: str  # "revoked", "rpm", "tpm", "parallel", "budget"
    principal: Principal | None = None
    soft_nusd: int | None = None
    since_ms: int = 0
    """Budget checks: spend since this instant counts (to initialise the counter)."""


@dataclass(slots=True)
class Ticket:
    """An admitted request's reservations, settled exactly once."""

    checks: list[Check] = field(default_factory=list)
    meta: list[_Meta] = field(default_factory=list)
    buckets: list[int] = field(default_factory=list)
    reserved_tokens: int = 0
    reserved_nusd: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False


class Admission:
    def __init__(
        self,
        state: StateBackend,
        settings: LimitSettings,
        spend_loader: SpendLoader,
        metrics: Metrics,
    ) -> None:
        self.state = state
        self._settings = settings
        self._load_spend = spend_loader
        self._metrics = metrics

    async def revoke(self, kind: str, ident: str) -> None:
        """Refuse ``kind`` (key or session) ``ident`` on every instance from now on."""
        await self.state.set_flag(state_keys.revoked(kind, ident), self._settings.revocation_ttl_s)

    def principals(self, caller: Caller, group: str, group_limits: Limits) -> list[Principal]:
        found = list(caller.principals)
        if caller.ip is not None and not self._settings.ip.empty:
            found.append(Principal("ip", caller.ip, self._settings.ip))
        if not group_limits.empty:
            found.append(Principal("model", group, group_limits))
        return found

    async def admit(
        self,
        caller: Caller,
        group: str,
        group_limits: Limits,
        *,
        prompt_tokens: Callable[[], int],
        max_tokens: int | None,
        price_nusd: Callable[[int, int], int],
    ) -> Ticket:
        """Raise the refusal, or return the reservations to settle after the call.
        ``prompt_tokens`` is only called (tokenising the prompt) when a token limit or a
        budget applies."""
        ticket = Ticket()
        principals = self.principals(caller, group, group_limits)
        if any(p.limits.tpm is not None or has_budget(p.limits) for p in principals):
            completion = max_tokens or self._settings.default_max_tokens
            prompt = prompt_tokens()
            ticket.reserved_tokens = prompt + completion
            ticket.reserved_nusd = price_nusd(prompt, completion)
        for kind, attr in _REVOCATION_KINDS.items():
            ident = getattr(caller, attr)
            if ident is not None:
                ticket.checks.append(Absent(state_keys.revoked(kind, ident)))
                ticket.meta.append(_Meta("revoked"))
        now_ms = int(time.time() * 1000)
        for principal in principals:
            self._add_checks(ticket, principal, now_ms)
        if not ticket.checks:
            return ticket
        try:
            await self._evaluate(ticket)
        except StateError as exc:
            return self._state_down(ticket, exc)
        return ticket

    def _add_checks(self, ticket: Ticket, principal: Principal, now_ms: int) -> None:
        limits, scope, ident = principal.limits, principal.scope, principal.id
        if limits.rpm is not None:
            ticket.checks.append(Window(state_keys.rate(scope, ident, "rpm"), limits.rpm, 1))
            ticket.meta.append(_Meta("rpm", principal))
        if limits.tpm is not None:
            key = state_keys.rate(scope, ident, "tpm")
            ticket.checks.append(Window(key, limits.tpm, ticket.reserved_tokens))
            ticket.meta.append(_Meta("tpm", principal))
        if limits.max_parallel is not None:
            key = state_keys.parallel(scope, ident)
            # The lease id is drawn only where a slot is taken (a system call otherwise
            # made on every request); settlement releases each slot by its own lease.
            lease = os.urandom(12).hex()
            ticket.checks.append(Slot(key, limits.max_parallel, lease, _SLOT_TTL_S))
            ticket.meta.append(_Meta("parallel", principal))
        if has_budget(limits) and scope in ("key", "user", "team"):
            period = current_period(limits.budget_period, now_ms, limits.budget_reset_ms)
            key = state_keys.spend(scope, ident, period.id)
            limit = limits.budget_nusd if limits.budget_nusd is not None else _UNLIMITED
            ticket.checks.append(Spend(key, limit, ticket.reserved_nusd, period.ttl_s))
            ticket.meta.append(
                _Meta("budget", principal, limits.soft_budget_nusd, since_ms=period.start_ms)
            )

    async def _evaluate(self, ticket: Ticket) -> None:
        for _ in range(3):
            verdict = await self.state.admit(ticket.checks)
            if not verdict.uninitialised:
                break
            for index in verdict.uninitialised:
                await self._initialise_spend(ticket, index)
        if verdict.uninitialised:
            raise ServiceUnavailable("budget counters could not be initialised; retry")
        if not verdict.allowed:
            assert verdict.failed is not None
            raise self._refusal(ticket, verdict.failed, verdict.retry_after)
        ticket.buckets = verdict.buckets
        ticket.headers = self._headers(ticket, verdict.remaining, verdict.reset)
        for index, meta in enumerate(ticket.meta):
            if meta.kind == "budget" and meta.soft_nusd is not None:
                check = ticket.checks[index]
                assert isinstance(check, Spend)
                spent = check.limit - verdict.remaining[index]
                if spent > meta.soft_nusd:
                    assert meta.principal is not None
                    log.warning(
                        "soft budget exceeded",
                        scope=meta.principal.scope,
                        id=meta.principal.id,
                        spent_usd=spent / 1e9,
                        soft_budget_usd=meta.soft_nusd / 1e9,
                    )
                    self._metrics.soft_budget_exceeded.labels(meta.principal.scope).inc()

    async def _initialise_spend(self, ticket: Ticket, index: int) -> None:
        meta = ticket.meta[index]
        check = ticket.checks[index]
        assert meta.principal is not None
        assert isinstance(check, Spend)
        spent = await self._load_spend(meta.principal.scope, meta.principal.id, meta.since_ms)
        await self.state.init_spend(check.key, spent, check.ttl_s)

    def _refusal(self, ticket: Ticket, index: int, retry_after: float) -> Exception:
        meta = ticket.meta[index]
        self._metrics.limit_refusals.labels(
            meta.kind, meta.principal.scope if meta.principal else ""
        ).inc()
        if meta.kind == "revoked":
            return AuthenticationFailed("invalid API key or session (revoked)")
        assert meta.principal is not None
        who = _describe(meta.principal)
        check = ticket.checks[index]
        if meta.kind == "budget":
            assert isinstance(check, Spend)
            return BudgetExceeded(
                f"{who} has reached its budget of ${check.limit / 1e9:.4f} for this period",
                code="budget_exceeded",
                retry_after=retry_after,
            )
        if meta.kind == "parallel":
            assert isinstance(check, Slot)
            return RateLimited(
                f"{who} already has {check.limit} requests in flight",
                code="parallel_limit_exceeded",
                retry_after=retry_after,
            )
        assert isinstance(check, Window)
        unit = "requests" if meta.kind == "rpm" else "tokens"
        message = f"{who} reached its limit of {check.limit} {unit} per minute"
        if check.cost > check.limit:
            message = (
                f"this request needs {check.cost} tokens, more than {who}'s limit of "
                f"{check.limit} tokens per minute"
            )
        return RateLimited(message, code=f"{meta.kind}_limit_exceeded", retry_after=retry_after)

    def _state_down(self, ticket: Ticket, exc: StateError) -> Ticket:
        kinds = {m.kind for m in ticket.meta}
        if "budget" in kinds and not self._settings.budget_fail_open:
            raise ServiceUnavailable("budgets cannot be checked right now; retry shortly") from exc
        if kinds - {"budget"} and not self._settings.rate_fail_open:
            raise ServiceUnavailable(
                "rate limits cannot be checked right now; retry shortly"
            ) from exc
        log.warning("shared state unavailable; admitting without limits", error=exc.message)
        self._metrics.limit_refusals.labels("state_down_open", "").inc()
        return Ticket(settled=True)

    def _headers(self, ticket: Ticket, remaining: list[int], reset: list[float]) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers, from the tightest requests and tokens windows."""
        headers: dict[str, str] = {}
        for kind, suffix in (("rpm", "requests"), ("tpm", "tokens")):
            best: tuple[int, int, float] | None = None
            for index, meta in enumerate(ticket.meta):
                if meta.kind != kind:
                    continue
                check = ticket.checks[index]
                assert isinstance(check, Window)
                left = max(0, remaining[index])
                if best is None or left < best[1]:
                    best = (check.limit, left, reset[index])
            if best is not None:
                headers[f"x-ratelimit-limit-{suffix}"] = str(best[0])
                headers[f"x-ratelimit-remaining-{suffix}"] = str(best[1])
                headers[f"x-ratelimit-reset-{suffix}"] = _duration(best[2])
        return headers

    async def settle(self, ticket: Ticket, *, tokens: int, cost_nusd: int) -> None:
        """Give back unused reservations, charge the real cost, free concurrency slots."""
        if ticket.settled:
            return
        ticket.settled = True
        items: list[Settle] = []
        for index, meta in enumerate(ticket.meta):
            check = ticket.checks[index]
            if meta.kind == "tpm" and tokens != ticket.reserved_tokens:
                items.append(
                    Settle(
                        check.key,
                        delta=tokens - ticket.reserved_tokens,
                        bucket=ticket.buckets[index],
                    )
                )
            elif meta.kind == "budget" and cost_nusd != ticket.reserved_nusd:
                items.append(Settle(check.key, delta=cost_nusd - ticket.reserved_nusd))
            elif isinstance(check, Slot):
                items.append(Settle(check.key, lease=check.lease))
        try:
            await self.state.settle(items)
        except StateError as exc:
            log.warning("could not settle limits", error=exc.message)


def _describe(principal: Principal) -> str:
    names = {
        "key": "API key",
        "user": "user",
        "team": "team",
        "ip": "client address",
        "model": "model group",
    }
    return f"{names[principal.scope]} {principal.label or principal.id}"


def _duration(seconds: float) -> str:
    """Go-style durations as OpenAI sends them: ``20ms``, ``1s``, ``6m0s``."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    whole = int(seconds + 0.999)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
