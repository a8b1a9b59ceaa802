"""The gateway's per-request policies around an upstream call: model access, admission
(limits, budgets, revocation) before it; settlement, cost and the usage record after it.

``Policies.begin`` returns a ``Call``; exactly one ``finish`` follows, whatever happened
(success, upstream error, client gone), so reservations are always given back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from parley.config.loader import Deployment, ModelGroup
from parley.errors import PermissionDenied
from parley.gateway.accounting import cost
from parley.gateway.accounting.caller import Caller, Limits
from parley.gateway.accounting.limits import Admission, Ticket
from parley.gateway.accounting.usage import UsageRecord, UsageRecorder
from parley.observability.logging import get_logger
from parley.observability.metrics import Metrics
from parley.schema.chat import Usage

log = get_logger(__name__)


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

    @property
    def headers(self) -> dict[str, str]:
        headers = {**self.ticket.headers, **self.route_headers}
        if self.cache is not None:
            headers["x-parley-cache"] = self.cache
            if self.similarity is not None:
                headers["x-parley-cache-similarity"] = f"{self.similarity:.4f}"
        return headers

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

    def first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = int((time.perf_counter() - self.started) * 1000)


class Policies:
    def __init__(
        self,
        admission: Admission | None,
        usage: UsageRecorder | None,
        metrics: Metrics,
    ) -> None:
        self.admission = admission
        self.usage = usage
        self._metrics = metrics
        self._prices: dict[str, cost.Price] = {}
        self._terms: dict[str, tuple[cost.Ceiling, Limits]] = {}

    def price(self, deployment: Deployment) -> cost.Price:
        found = self._prices.get(deployment.label)
        if found is None:
            found = self._prices[deployment.label] = cost.price_of(deployment) or cost.FREE
        return found

    def _group_terms(self, group: ModelGroup) -> tuple[cost.Ceiling, Limits]:
        """A group's price ceiling (what reservations are priced at) and its own limits,
        derived once per group rather than on every request."""
        found = self._terms.get(group.name)
        if found is None:
            g = group.limits
            limits = Limits(rpm=g.rpm, tpm=g.tpm, max_parallel=g.max_parallel)
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
    ) -> Call:
        """``requested`` is the model the client asked for when it was virtual (tiered or
        an experiment): the key's allow-list names that, not the group serving it."""
        name = requested or group.name
        if not caller.may_use(name):
            raise PermissionDenied(
                f"this API key may not use model {name!r}", code="model_not_allowed"
            )
        ticket = Ticket(settled=True)
        if self.admission is not None:
            ceiling, group_limits = self._group_terms(group)
            ticket = await self.admission.admit(
                caller,
                group.name,
                group_limits,
                prompt_tokens=prompt_tokens,
                max_tokens=max_tokens,
                price_nusd=ceiling.estimate,
            )
        return Call(caller, group.name, request_id, ticket)

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
        if usage is not None and deployment is not None:
            charged = self.price(deployment).cost(usage)
            if charged:
                self._metrics.cost.labels(call.group).inc(charged / 1e9)
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
                    cost_nusd=charged,
                    latency_ms=latency_ms,
                    ttft_ms=call.ttft_ms,
                    cache=call.cache,
                )
            )
