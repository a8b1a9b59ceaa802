"""The gateway's per-request policies around an upstream call: model access, admission
(limits, budgets, revocation) before it; settlement, cost and the usage record after it.

``Policies.begin`` returns a ``Call``; exactly one ``finish`` follows, whatever happened
(success, upstream error, client gone), so reservations are always given back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from parley.config.loader import Deployment, ModelGroup
from parley.config.models import BudgetConfig, UserTierConfig
from parley.errors import BudgetExceeded, DeploymentBudgetSpent, PermissionDenied
from parley.gateway.accounting import cost
from parley.gateway.accounting.caller import NO_LIMITS, Caller, Limits, Principal
from parley.gateway.accounting.limits import Admission, Ticket
from parley.gateway.accounting.usage import UsageRecord, UsageRecorder
from parley.observability.logging import get_logger
from parley.observability.metrics import Metrics
from parley.schema.chat import Usage

log = get_logger(__name__)


def budget_limits(
    budget: BudgetConfig | None, max_cost_usd: float | None = None, base: Limits = NO_LIMITS
) -> Limits:
    """A model-file budget (and per-request ceiling) as admission ``Limits``."""
    if budget is None and max_cost_usd is None:
        return base
    return Limits(
        rpm=base.rpm,
        tpm=base.tpm,
        max_parallel=base.max_parallel,
        budget_nusd=None if budget is None or budget.usd is None else cost.nusd(budget.usd),
        budget_period=budget.period if budget is not None else "monthly",
        soft_budget_nusd=None
        if budget is None or budget.soft_usd is None
        else cost.nusd(budget.soft_usd),
        budget_timezone=budget.timezone if budget is not None else "UTC",
        max_cost_nusd=None if max_cost_usd is None else cost.nusd(max_cost_usd),
        alert_thresholds=tuple(budget.alert_thresholds) if budget is not None else (),
    )


@dataclass(frozen=True, slots=True)
class BudgetBook:
    """The model file's budgets beyond a group's own: the installation's and each user
    tier's (applied to every member separately)."""

    installation: Limits = NO_LIMITS
    tiers: dict[str, Limits] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, budget: BudgetConfig | None, user_tiers: list[UserTierConfig]
    ) -> BudgetBook:
        return cls(
            budget_limits(budget),
            {t.name: budget_limits(t.budget, t.max_cost_usd) for t in user_tiers},
        )

    def principals(self, caller: Caller) -> list[Principal]:
        found: list[Principal] = []
        if not self.installation.empty:
            found.append(Principal("installation", "all", self.installation))
        tier = self.tiers.get(caller.user_tier or "")
        if tier is not None and caller.user_id is not None and not tier.empty:
            # One counter per member: the tier's budget is each member's, not a shared pot.
            found.append(
                Principal(
                    "tier",
                    f"{caller.user_tier}:{caller.user_id}",
                    tier,
                    label=f"{caller.user_tier} (member {caller.user_id})",
                )
            )
        return found


@dataclass(slots=True)
class Call:
    caller: Caller
    group: str
    request_id: str
    ticket: Ticket
    started: float = field(default_factory=time.perf_counter)
    ttft_ms: int | None = None
    finished: bool = False
    route_tier: str | None = None
    route_headers: dict[str, str] = field(default_factory=dict)
    cache: str | None = None
    """The cache's verdict: hit, semantic-hit, miss or bypass (None: no cache)."""
    similarity: float | None = None
    prompt_tokens: Callable[[], int] = lambda: 0
    """The prompt's token count, counted at most once (admission and deployments share it)."""
    max_tokens: int | None = None
    deployment_tickets: dict[str, Ticket] = field(default_factory=dict)
    """Reservations on the budgets of the deployments tried, by label."""
    cost_nusd: int | None = None
    """What the answer cost, once ``finish`` priced its usage (None: not priced)."""
    cached_tokens: int = 0

    @property
    def headers(self) -> dict[str, str]:
        headers = {**self.ticket.headers, **self.route_headers}
        if self.cache is not None:
            headers["x-parley-cache"] = self.cache
            if self.similarity is not None:
                headers["x-parley-cache-similarity"] = f"{self.similarity:.4f}"
        return headers

    @property
    def cost(self) -> dict[str, Any] | None:
        """What ``x-parley-cost-usd`` and ``x-parley-cached-tokens`` say, for the end of a
        stream (whose headers left before its usage was known); None until priced."""
        if self.cost_nusd is None:
            return None
        return {"cost_usd": self.cost_nusd / 1e9, "cached_tokens": self.cached_tokens}

    @property
    def served_from_cache(self) -> bool:
        return self.cache is not None and self.cache.endswith("hit")

    def route(self, tier: str | None, variant: str | None, reason: str) -> None:
        """Record a tiered or experiment decision: response headers and the usage record."""
        if tier is not None:
            self.route_tier = tier
            self.route_headers["x-parley-route-tier"] = tier
            self.route_headers["x-parley-route-reason"] = reason
        if variant is not None:
            self.route_tier = f"variant:{variant}"
            self.route_headers["x-parley-variant"] = variant
        self.route_headers["x-parley-model-group"] = self.group

    def downgraded(self, original: str, reason: str) -> None:
        """Record that a budget sent this request to a cheaper group than it asked for."""
        self.route_tier = f"downgrade:{original}"[:32]
        self.route_headers["x-parley-downgraded-from"] = original
        self.route_headers["x-parley-downgrade-reason"] = reason
        self.route_headers["x-parley-model-group"] = self.group

    def first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = int((time.perf_counter() - self.started) * 1000)


@dataclass(slots=True)
class DeploymentBudgets:
    """One call's deployment-budget reservations, in the shape the failover loop takes
    (``routing/resilience.py`` ``Reservations``)."""

    policies: Policies
    call: Call

    async def take(self, deployment: Deployment) -> None:
        await self.policies.reserve_deployment(self.call, deployment)

    async def give_back(self, deployment: Deployment) -> None:
        await self.policies.release_deployment(self.call, deployment)


def _once(count: Callable[[], int]) -> Callable[[], int]:
    """``count`` called at most once: a prompt is tokenised for admission and again for
    a deployment's budget only if both apply, and then only the first time."""
    found: list[int] = []

    def counted() -> int:
        if not found:
            found.append(count())
        return found[0]

    return counted


class Policies:
    def __init__(
        self,
        admission: Admission | None,
        usage: UsageRecorder | None,
        metrics: Metrics,
        budgets: BudgetBook | None = None,
    ) -> None:
        self.admission = admission
        self.usage = usage
        self._metrics = metrics
        self.budgets = budgets or BudgetBook()
        self._prices: dict[str, cost.Price] = {}
        self._terms: dict[str, tuple[cost.Ceiling, Limits]] = {}

    def forget_groups(self) -> None:
        """Drop what was derived from the model groups (prices, group limits): they
        changed (``Gateway.swap``)."""
        self._prices = {}
        self._terms = {}

    def price(self, deployment: Deployment) -> cost.Price:
        found = self._prices.get(deployment.label)
        if found is None:
            found = self._prices[deployment.label] = cost.price_of(deployment) or cost.FREE
        return found

    def group_limits(self, group: ModelGroup) -> Limits:
        """The group's own limits, budget and ceiling as admission applies them."""
        return self._group_terms(group)[1]

    def _group_terms(self, group: ModelGroup) -> tuple[cost.Ceiling, Limits]:
        """A group's price ceiling (what reservations are priced at) and its own limits,
        derived once per group rather than on every request."""
        found = self._terms.get(group.name)
        if found is None:
            g = group.limits
            limits = budget_limits(
                group.budget,
                group.max_cost_usd,
                Limits(rpm=g.rpm, tpm=g.tpm, max_parallel=g.max_parallel),
            )
            found = self._terms[group.name] = (cost.group_ceiling(group), limits)
        return found

    async def begin(
        self,
        caller: Caller,
        group: ModelGroup,
        request_id: str,
        *,
        prompt_tokens: Callable[[], int],
        max_tokens: int | None,
        requested: str | None = None,
        max_cost_nusd: int | None = None,
    ) -> Call:
        """``requested`` is the model the client asked for when it was virtual (tiered or
        an experiment) or downgraded: the key's allow-list names that, not the group
        serving it. ``max_cost_nusd``: the request's own ceiling (a header)."""
        name = requested or group.name
        if not caller.may_use(name):
            raise PermissionDenied(
                f"this API key may not use model {name!r}", code="model_not_allowed"
            )
        counted = _once(prompt_tokens)
        ticket = Ticket(settled=True)
        if self.admission is not None:
            ceiling, group_limits = self._group_terms(group)
            ticket = await self.admission.admit(
                caller,
                group.name,
                group_limits,
                prompt_tokens=counted,
                max_tokens=max_tokens,
                price_nusd=ceiling.estimate,
                extra=self.budgets.principals(caller),
                max_cost_nusd=max_cost_nusd,
            )
        return Call(
            caller, group.name, request_id, ticket, prompt_tokens=counted, max_tokens=max_tokens
        )

    def reservations(self, call: Call) -> DeploymentBudgets | None:
        """What the failover loop reserves deployments' budgets through (None: admission
        is off, so there are no budgets to hold)."""
        return None if self.admission is None else DeploymentBudgets(self, call)

    async def reserve_deployment(self, call: Call, deployment: Deployment) -> None:
        """Reserve this call on ``deployment``'s own budget, priced at its own rates, or
        raise ``DeploymentBudgetSpent`` so the router passes it over."""
        if self.admission is None or deployment.budget is None:
            return
        principal = Principal("deployment", deployment.label, budget_limits(deployment.budget))
        try:
            ticket = await self.admission.reserve(
                principal,
                prompt_tokens=call.prompt_tokens,
                max_tokens=call.max_tokens,
                price_nusd=self.price(deployment).estimate,
            )
        except BudgetExceeded as refusal:
            raise DeploymentBudgetSpent(refusal, deployment=deployment.label) from None
        call.deployment_tickets[deployment.label] = ticket

    async def release_deployment(self, call: Call, deployment: Deployment) -> None:
        """Give back a failed attempt's reservation on its deployment's budget."""
        ticket = call.deployment_tickets.pop(deployment.label, None)
        if ticket is not None and self.admission is not None:
            await self.admission.settle(ticket, tokens=0, cost_nusd=0)

    async def release(self, call: Call) -> None:
        """Give back an admitted call's reservations without a usage record (the request
        is being served by another group instead)."""
        call.finished = True
        if self.admission is not None:
            await self.admission.settle(call.ticket, tokens=0, cost_nusd=0)
            await self._settle_deployments(call, None, 0)

    async def _settle_deployments(
        self, call: Call, deployment: Deployment | None, charged: int
    ) -> None:
        """The serving deployment's reservation settles to the real cost; any other left
        (none normally: failed attempts give theirs back at once) is released."""
        assert self.admission is not None
        tickets, call.deployment_tickets = call.deployment_tickets, {}
        for label, ticket in tickets.items():
            served = deployment is not None and label == deployment.label
            await self.admission.settle(ticket, tokens=0, cost_nusd=charged if served else 0)

    async def finish(
        self,
        call: Call,
        *,
        status: int,
        deployment: Deployment | None = None,
        usage: Usage | None = None,
    ) -> None:
        if call.finished:
            return
        call.finished = True
        charged = 0
        cached_read = 0
        if usage is not None and deployment is not None:
            counts = cost.TokenCounts.from_usage(usage)
            cached_read = counts.cached_read
            charged = self.price(deployment).charge(counts)
            if charged:
                self._metrics.cost.labels(call.group).inc(charged / 1e9)
            # Known once the answer is complete: a non-streamed answer's headers carry
            # them (a stream's headers left before its usage arrived).
            call.cost_nusd, call.cached_tokens = charged, cached_read
            call.route_headers["x-parley-cost-usd"] = f"{charged / 1e9:.9f}"
            call.route_headers["x-parley-cached-tokens"] = str(cached_read)
        latency_ms = int((time.perf_counter() - call.started) * 1000)
        # One line per gateway request; request_id comes from the middleware's context.
        log.info(
            "llm request",
            model_group=call.group,
            deployment=deployment.label if deployment is not None else None,
            key_id=call.caller.key_id,
            user_id=call.caller.user_id,
            status=status,
            outcome="ok" if status < 400 else "error",
            latency_ms=latency_ms,
            ttft_ms=call.ttft_ms,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cost_usd=charged / 1e9,
            cache=call.cache,
        )
        if self.admission is not None:
            # An answer from the cache spent no upstream tokens: it counts as a request
            # against rate limits, not against token limits.
            cached = call.served_from_cache
            used = usage.total_tokens if usage is not None and not cached else 0
            await self.admission.settle(call.ticket, tokens=used, cost_nusd=charged)
            if call.deployment_tickets:
                await self._settle_deployments(call, deployment, charged)
        if self.usage is not None:
            await self.usage.record(
                UsageRecord(
                    request_id=call.request_id,
                    time_ms=int(time.time() * 1000),
                    model_group=call.group,
                    status=status,
                    key_id=call.caller.key_id,
                    user_id=call.caller.user_id,
                    team_id=call.caller.team_id,
                    deployment=deployment.label if deployment is not None else None,
                    route_tier=call.route_tier,
                    prompt_tokens=usage.prompt_tokens if usage else 0,
                    completion_tokens=usage.completion_tokens if usage else 0,
                    cached_tokens=cached_read,
                    cost_nusd=charged,
                    latency_ms=latency_ms,
                    ttft_ms=call.ttft_ms,
                    cache=call.cache,
                    client_ip=call.caller.ip,
                )
            )
