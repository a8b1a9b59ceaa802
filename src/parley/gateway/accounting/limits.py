"""Admission: rate limits, concurrency limits, budgets and revocation, in one atomic call
to the shared state before a request goes upstream, and one reconciliation after it.

Scopes: the caller's key, user and team (limits stored on each), the client IP (process
settings), the model group, the whole installation and the user's tier (per member; all
three from the model file). A deployment's budget is reserved later, by ``reserve``, once
the router has picked the deployment: a spent one is passed over for another. Token
limits and budgets reserve an estimate (prompt tokens plus ``max_tokens``, priced at the
group's dearest deployment) and settle to the real usage afterwards, so concurrent
requests cannot overshoot a limit together.

The reservation rule: a request is admitted only if, for every budget that applies,
spend so far + reservations in flight + this request's reservation <= the budget, all
checked and reserved in one atomic step of the shared state. A request refused by one
budget reserves nothing anywhere. A per-request ceiling (``max_cost_nusd``, the lowest of
the key's, the tier's, the group's and the request header's) refuses a reservation above
it before any state is touched.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from parley.errors import (
    AuthenticationFailed,
    BudgetExceeded,
    CostCeilingExceeded,
    KeySuspended,
    RateLimited,
    ServiceUnavailable,
    StateError,
)
from parley.gateway.accounting.alerts import BudgetAlerts
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
    check_suspension: bool = False
    """Refuse keys suspended by anomaly detection (one more flag per request, so only
    when ``anomaly_suspend_keys`` can suspend any)."""


@dataclass(slots=True)
class _Meta:
    """What each check stands for, to explain a refusal and to settle afterwards."""

    kind: str  # "revoked", "suspended", "rpm", "tpm", "parallel", "budget"
    principal: Principal | None = None
    soft_nusd: int | None = None
    since_ms: int = 0
    """Budget checks: spend since this instant counts (to initialise the counter)."""
    end_ms: int | None = None
    """Budget checks: when the period resets (None: a total budget)."""
    period: str = ""
    """Budget checks: the period's id (alerts fire once per threshold per period)."""


@dataclass(slots=True)
class Ticket:
    """An admitted request's reservations, settled exactly once."""

    checks: list[Check] = field(default_factory=list)
    meta: list[_Meta] = field(default_factory=list)
    buckets: list[int] = field(default_factory=list)
    reserved_tokens: int = 0
    reserved_nusd: int = 0
    estimated_completion: bool = False
    """The request set no ``max_tokens``: the reservation used the default estimate."""
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False
    budget_use: list[tuple[Principal, int, int]] = field(default_factory=list)
    """(holder, spent including this reservation, hard budget) for each hard budget."""

    def highest_use(self) -> float:
        """The largest share of a hard budget spent once this request is reserved."""
        return max((spent / limit for _, spent, limit in self.budget_use if limit), default=0.0)


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
        self.alerts: BudgetAlerts | None = None
        """Set by the services once the database is open: budget threshold webhooks."""

    async def spent_since(self, scope: str, ident: str, since_ms: int) -> int:
        """What a budget holder has spent since an instant (from the usage table)."""
        return await self._load_spend(scope, ident, since_ms)

    async def revoke(self, kind: str, ident: str) -> None:
        """Refuse ``kind`` (key or session) ``ident`` on every instance from now on."""
        await self.state.set_flag(state_keys.revoked(kind, ident), self._settings.revocation_ttl_s)

    async def suspend_key(self, key_id: str) -> None:
        """Refuse the key on every instance from now on; the database's ``suspended_ms``
        keeps it refused once the flag (outliving every key cache) has expired."""
        await self.state.set_flag(state_keys.suspended_key(key_id), self._settings.revocation_ttl_s)

    async def lift_suspension(self, key_id: str) -> None:
        await self.state.clear(state_keys.suspended_key(key_id))

    def principals(
        self,
        caller: Caller,
        group: str,
        group_limits: Limits,
        extra: Sequence[Principal] = (),
    ) -> list[Principal]:
        found = list(caller.principals)
        if caller.ip is not None and not self._settings.ip.empty:
            found.append(Principal("ip", caller.ip, self._settings.ip))
        if not group_limits.empty:
            found.append(Principal("model", group, group_limits))
        found.extend(p for p in extra if not p.limits.empty)
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
        extra: Sequence[Principal] = (),
        max_cost_nusd: int | None = None,
    ) -> Ticket:
        """Raise the refusal, or return the reservations to settle after the call.
        ``prompt_tokens`` is only called (tokenising the prompt) when a token limit, a
        budget or a cost ceiling applies. ``extra``: the installation's and the tier's
        principals; ``max_cost_nusd``: the request header's ceiling."""
        ticket = Ticket()
        principals = self.principals(caller, group, group_limits, extra)
        ceilings = [p.limits.max_cost_nusd for p in principals if p.limits.max_cost_nusd]
        if max_cost_nusd is not None:
            ceilings.append(max_cost_nusd)
        if ceilings or any(p.limits.tpm is not None or has_budget(p.limits) for p in principals):
            completion = max_tokens or self._settings.default_max_tokens
            ticket.estimated_completion = not max_tokens
            prompt = prompt_tokens()
            ticket.reserved_tokens = prompt + completion
            ticket.reserved_nusd = price_nusd(prompt, completion)
        if ceilings and ticket.reserved_nusd > min(ceilings):
            raise self._over_ceiling(ticket, principals, min(ceilings), max_cost_nusd)
        for kind, attr in _REVOCATION_KINDS.items():
            ident = getattr(caller, attr)
            if ident is not None:
                ticket.checks.append(Absent(state_keys.revoked(kind, ident)))
                ticket.meta.append(_Meta("revoked"))
        if self._settings.check_suspension and caller.key_id is not None:
            ticket.checks.append(Absent(state_keys.suspended_key(caller.key_id)))
            ticket.meta.append(_Meta("suspended"))
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

    async def reserve(
        self,
        principal: Principal,
        *,
        prompt_tokens: Callable[[], int],
        max_tokens: int | None,
        price_nusd: Callable[[int, int], int],
    ) -> Ticket:
        """One more holder's limits, reserved after ``admit`` by the same atomic rule: a
        deployment's budget, known only once the router has picked the deployment. Raises
        the refusal (``BudgetExceeded``) or returns the reservation to settle."""
        completion = max_tokens or self._settings.default_max_tokens
        prompt = prompt_tokens()
        ticket = Ticket(
            reserved_tokens=prompt + completion,
            reserved_nusd=price_nusd(prompt, completion),
            estimated_completion=not max_tokens,
        )
        self._add_checks(ticket, principal, int(time.time() * 1000))
        if not ticket.checks:
            ticket.settled = True
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
        if has_budget(limits) and scope != "ip":
            period = current_period(
                limits.budget_period, now_ms, limits.budget_reset_ms, limits.budget_timezone
            )
            key = state_keys.spend(scope, ident, period.id)
            limit = limits.budget_nusd if limits.budget_nusd is not None else _UNLIMITED
            ticket.checks.append(Spend(key, limit, ticket.reserved_nusd, period.ttl_s))
            ticket.meta.append(
                _Meta(
                    "budget",
                    principal,
                    limits.soft_budget_nusd,
                    since_ms=period.start_ms,
                    end_ms=period.end_ms,
                    period=period.id,
                )
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
            raise self._refusal(ticket, verdict.failed, verdict.retry_after, verdict.remaining)
        ticket.buckets = verdict.buckets
        ticket.headers = self._headers(ticket, verdict.remaining, verdict.reset)
        for index, meta in enumerate(ticket.meta):
            if meta.kind != "budget":
                continue
            check = ticket.checks[index]
            assert isinstance(check, Spend)
            assert meta.principal is not None
            spent = check.limit - verdict.remaining[index]
            if check.limit != _UNLIMITED:
                ticket.budget_use.append((meta.principal, spent, check.limit))
                if self.alerts is not None:
                    self.alerts.observe(meta.principal, meta.period, spent, check.limit)
            if meta.soft_nusd is not None and spent > meta.soft_nusd:
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

    def _over_ceiling(
        self,
        ticket: Ticket,
        principals: Sequence[Principal],
        ceiling: int,
        header: int | None,
    ) -> CostCeilingExceeded:
        """Names the ceiling that refused (the lowest) and what the reservation was."""
        self._metrics.limit_refusals.labels("max_cost", "").inc()
        if header is not None and header == ceiling:
            who = "the request's x-parley-max-cost-usd header"
        else:
            holder = next(p for p in principals if p.limits.max_cost_nusd == ceiling)
            who = f"{_describe(holder)}'s max_cost_usd"
        message = (
            f"this request's reservation of ${ticket.reserved_nusd / 1e9:.6f} is above "
            f"{who} of ${ceiling / 1e9:.6f} per request"
        )
        return CostCeilingExceeded(message + _estimate_hint(ticket), param="max_tokens")

    def _refusal(
        self, ticket: Ticket, index: int, retry_after: float, remaining: Sequence[int] = ()
    ) -> Exception:
        meta = ticket.meta[index]
        self._metrics.limit_refusals.labels(
            meta.kind, meta.principal.scope if meta.principal else ""
        ).inc()
        if meta.kind == "revoked":
            return AuthenticationFailed("invalid API key or session (revoked)")
        if meta.kind == "suspended":
            return KeySuspended()
        assert meta.principal is not None
        who = _describe(meta.principal)
        check = ticket.checks[index]
        if meta.kind == "budget":
            assert isinstance(check, Spend)
            left = check.limit
            if index < len(remaining):
                left = max(0, remaining[index] + check.cost)
            if self.alerts is not None and check.limit != _UNLIMITED:
                spent = check.limit - left
                self.alerts.observe(meta.principal, meta.period, spent, check.limit)
            period = meta.principal.limits.budget_period
            message = (
                f"{who} has reached its {period} budget of ${check.limit / 1e9:.4f}: "
                f"${left / 1e9:.6f} left, this request reserves ${check.cost / 1e9:.6f}"
            )
            if meta.end_ms is not None:
                now_ms = int(time.time() * 1000)
                retry_after = max(1.0, (meta.end_ms - now_ms) / 1000)
                reset = dt.datetime.fromtimestamp(meta.end_ms / 1000, tz=dt.UTC)
                message += f"; the period resets at {reset:%Y-%m-%dT%H:%M:%SZ}"
            else:
                message += "; a total budget never resets"
            return BudgetExceeded(
                message + _estimate_hint(ticket),
                code="budget_exceeded",
                retry_after=retry_after,
                scope=meta.principal.scope,
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
    if principal.scope == "installation":
        return "the installation"
    names = {
        "key": "API key",
        "user": "user",
        "team": "team",
        "ip": "client address",
        "model": "model group",
        "tier": "user tier",
        "deployment": "deployment",
    }
    return f"{names[principal.scope]} {principal.label or principal.id}"


def _estimate_hint(ticket: Ticket) -> str:
    """When no ``max_tokens`` was sent, say the reservation was a default estimate."""
    if not ticket.estimated_completion:
        return ""
    return (
        " (the request set no max_tokens, so the reservation was priced at the default "
        "estimate of completion tokens; set max_tokens to reserve less)"
    )


def _duration(seconds: float) -> str:
    """Go-style durations as OpenAI sends them: ``20ms``, ``1s``, ``6m0s``."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    whole = int(seconds + 0.999)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
