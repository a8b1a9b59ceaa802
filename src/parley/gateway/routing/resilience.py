"""The failover loop: deadlines, retries with full-jitter backoff, circuit breakers,
fallback groups, and admission control, around one "attempt" callable.

For each group in turn (the requested one, then its fallbacks): take a concurrency slot
(or be refused fast), then try up to ``1 + retries`` times, each time on the deployment the
router picks among those not yet tried (all tried: retry one after a backoff that honours
``Retry-After`` when it is short enough). A failure is classified:

- retryable (connection, timeout, 408, 429, 5xx, malformed response): next attempt;
- deployment fault (401, 403, 404): another deployment, never the same one again;
- prompt too long: jump to the group's ``context_window_fallbacks``;
- content refused on policy: jump to its ``content_policy_fallbacks``;
- anything else (the request itself is wrong): raised to the client at once.

When nothing is left, one ``AllDeploymentsFailed`` names every attempt and why it failed.
A successful attempt returns a ``Lease`` that the caller closes when the response is over
(streams run long): it releases the slot and feeds the deployment's health and breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Generic, Protocol, TypeVar

from parley.config.loader import Deployment, ModelGroup
from parley.errors import (
    AllDeploymentsFailed,
    DeploymentBudgetSpent,
    Overloaded,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from parley.gateway.routing.admission import DEFAULT_PRIORITY, Gate
from parley.gateway.routing.health import DeploymentHealth, HealthBook
from parley.gateway.routing.router import Router, RouteRequest
from parley.observability import tracing
from parley.observability.metrics import Metrics

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

_CONTEXT_CODES = {"context_length_exceeded", "string_above_max_length"}
_CONTEXT_WORDS = (
    "context length",
    "context window",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "exceeds the maximum number of tokens",
    "input is too long",
)
_POLICY_CODES = {"content_policy_violation", "content_filter", "content_filtered"}
_POLICY_WORDS = ("content management policy", "content policy", "flagged as potentially")


class Failure(Enum):
    RETRYABLE = "retryable"
    DEPLOYMENT = "deployment"
    CONTEXT_WINDOW = "context_window"
    CONTENT_POLICY = "content_policy"
    REQUEST = "request"


def classify(error: UpstreamError) -> Failure:
    if isinstance(error, UpstreamTimeout | UpstreamUnavailable | UpstreamProtocolError):
        return Failure.RETRYABLE
    status = error.status_code
    text = error.message.lower()
    code = (error.code or "").lower()
    if status in (400, 413, 422) and (
        code in _CONTEXT_CODES or any(w in text for w in _CONTEXT_WORDS)
    ):
        return Failure.CONTEXT_WINDOW
    if status in (400, 403, 451) and (
        code in _POLICY_CODES or any(w in text for w in _POLICY_WORDS)
    ):
        return Failure.CONTENT_POLICY
    if status in (408, 429) or status >= 500:
        return Failure.RETRYABLE
    if status in (401, 403, 404):
        return Failure.DEPLOYMENT
    return Failure.REQUEST


def counts_against_deployment(kind: Failure) -> bool:
    return kind in (Failure.RETRYABLE, Failure.DEPLOYMENT)


class Reservations(Protocol):
    """A deployment's own budget, reserved once the router has picked it and before the
    call, given back when the attempt fails (the winner's is settled by the caller)."""

    async def take(self, deployment: Deployment) -> None:
        """Reserve on ``deployment``, or raise ``DeploymentBudgetSpent``."""

    async def give_back(self, deployment: Deployment) -> None: ...


@dataclass(slots=True)
class Lease:
    """A successful attempt's hold on its deployment (and group slot) until ``close``."""

    deployment: Deployment
    health: DeploymentHealth
    started: float
    slot: contextlib.AsyncExitStack
    metrics: Metrics
    ttft: float | None = None
    closed: bool = False

    def first_byte(self) -> None:
        if self.ttft is None:
            self.ttft = time.perf_counter() - self.started

    async def close(self, *, ok: bool = True, tokens: int = 0) -> None:
        if self.closed:
            return
        self.closed = True
        self.health.finished(
            ok=ok, latency=time.perf_counter() - self.started, ttft=self.ttft, tokens=tokens
        )
        self.metrics.child(self.metrics.in_flight, self.deployment.label).set(self.health.in_flight)
        await self.slot.aclose()


@dataclass(slots=True)
class Outcome(Generic[T]):
    value: T
    lease: Lease
    group: str
    attempts: list[tuple[str, UpstreamError]] = field(default_factory=list)


class Resilience:
    def __init__(
        self,
        groups: dict[str, ModelGroup],
        router: Router,
        health: HealthBook,
        metrics: Metrics,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._groups = groups
        self._router = router
        self._health = health
        self._metrics = metrics
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self.gates = {
            name: Gate(name, group.concurrency, group.queue, metrics)
            for name, group in groups.items()
        }

    def check_room(self, group: ModelGroup) -> None:
        """Refuse a call to ``group`` at once when its gate is full and nothing else could
        take it (no fallback group, no budget downgrade): see ``Gate.check_room``."""
        if group.fallbacks or group.downgrade is not None:
            return
        gate = self.gates.get(group.name)
        if gate is not None:
            gate.check_room()

    def rebuilt(
        self, groups: dict[str, ModelGroup], router: Router, health: HealthBook
    ) -> Resilience:
        """The same policy over changed groups. A group whose concurrency and queue did
        not change keeps its gate (the slots in use and the queue carry over); requests
        already running keep the old object, and with it the groups they started with."""
        fresh = Resilience(groups, router, health, self._metrics, sleep=self._sleep, rng=self._rng)
        for name, gate in fresh.gates.items():
            old = self.gates.get(name)
            if old is not None and old.capacity == gate.capacity and old.queue == gate.queue:
                fresh.gates[name] = old
        return fresh

    async def run(
        self,
        group: ModelGroup,
        route: RouteRequest,
        attempt: Callable[[Deployment], Awaitable[T]],
        *,
        priority: int = DEFAULT_PRIORITY,
        deadline: float | None = None,
        reservations: Reservations | None = None,
    ) -> Outcome[T]:
        """``deadline`` is an absolute ``loop.time()`` for the whole request, retries and
        fallbacks included (the client's budget); None leaves it to per-call timeouts.
        ``reservations``: deployments' own budgets (None: no deployment has one)."""
        attempts: list[tuple[str, UpstreamError]] = []
        budget = _Budget(deadline)
        pending: deque[tuple[str, str]] = deque([(group.name, "")])
        seen = {group.name}
        overloaded: Overloaded | None = None
        while pending:
            name, reason = pending.popleft()
            current = group if name == group.name else self._groups.get(name)
            if current is None:
                continue  # a fallback group deleted since this request began
            if reason:
                self._metrics.fallbacks.labels(group.name, name, reason).inc()
            try:
                outcome, jump = await self._in_group(
                    current,
                    route,
                    attempt,
                    attempts,
                    priority=priority,
                    budget=budget,
                    via=reason,
                    reservations=reservations,
                )
            except Overloaded as exc:
                overloaded = exc
                outcome, jump = None, None
            if outcome is not None:
                return outcome
            if jump is not None:
                kind, error = jump
                targets = (
                    current.context_window_fallbacks
                    if kind is Failure.CONTEXT_WINDOW
                    else current.content_policy_fallbacks
                )
                fresh = [t for t in targets if t not in seen]
                if not fresh:
                    raise error  # nowhere bigger or more permissive to go: say it as it is
                pending = deque((t, kind.value) for t in fresh)
                seen.update(fresh)
                continue
            if budget.spent():
                break
            for target in current.fallbacks:
                if target not in seen:
                    seen.add(target)
                    pending.append((target, "failure"))
        if not attempts and overloaded is not None:
            raise overloaded
        if not attempts:
            raise AllDeploymentsFailed(
                group.name,
                [(group.name, UpstreamUnavailable("no healthy deployment (all circuits open)"))],
            )
        raise AllDeploymentsFailed(group.name, attempts, deadline_exceeded=budget.spent())

    async def _in_group(
        self,
        group: ModelGroup,
        route: RouteRequest,
        attempt: Callable[[Deployment], Awaitable[T]],
        attempts: list[tuple[str, UpstreamError]],
        *,
        priority: int,
        budget: _Budget,
        via: str = "",
        reservations: Reservations | None = None,
    ) -> tuple[Outcome[T] | None, tuple[Failure, UpstreamError] | None]:
        """``via``: why this group is tried (a fallback's reason), empty for the first. A
        deployment whose own budget is spent is passed over without using up an attempt."""
        slot = contextlib.AsyncExitStack()
        gate = self.gates.get(group.name)
        if gate is None:  # the group is new since this object was built
            gate = self.gates[group.name] = Gate(
                group.name, group.concurrency, group.queue, self._metrics
            )
        admit = slot.enter_async_context(gate.slot(priority))
        if tracing.ON:
            await tracing.within(
                "parley.admission",
                admit,
                {"parley.model_group": group.name, "parley.priority": priority},
            )
        else:
            await admit
        try:
            tried: set[str] = set()
            last_error: dict[str, UpstreamError] = {}
            number = -1
            while number < group.retries:
                number += 1
                dep = self._router.choose(group, route, frozenset(tried))
                if dep is None:
                    dep = self._router.choose(group, route)  # every one tried: retry one
                    if dep is None:
                        break  # nothing eligible: breakers open or all at capacity
                    if not await self._back_off(group, number, last_error.get(dep.label), budget):
                        break
                if reservations is not None and dep.budget is not None:
                    try:
                        await reservations.take(dep)
                    except DeploymentBudgetSpent as spent:
                        attempts.append((dep.label, spent))
                        tried.add(dep.label)
                        group = _without(group, dep.label)
                        number -= 1  # not an attempt: nothing was sent
                        continue
                if number:
                    self._metrics.retries.labels(group.name).inc()
                health = self._health.of(dep)
                if not health.breaker.acquire():
                    tried.add(dep.label)
                    await self._give_back(reservations, dep)
                    continue
                health.started()
                self._metrics.child(self._metrics.in_flight, dep.label).set(health.in_flight)
                started = time.perf_counter()
                call = self._timed(attempt(dep), budget.deadline, dep)
                if tracing.ON:
                    call = tracing.within(
                        f"upstream {dep.label}", call, _attempt_attributes(group, dep, number, via)
                    )
                try:
                    value = await call
                except UpstreamError as error:
                    await self._give_back(reservations, dep)
                    kind = classify(error)
                    health.finished(
                        ok=not counts_against_deployment(kind),
                        latency=time.perf_counter() - started,
                    )
                    self._metrics.child(self._metrics.in_flight, dep.label).set(health.in_flight)
                    if kind is Failure.REQUEST:
                        raise
                    attempts.append((dep.label, error))
                    last_error[dep.label] = error
                    if kind in (Failure.CONTEXT_WINDOW, Failure.CONTENT_POLICY):
                        return None, (kind, error)
                    tried.add(dep.label)
                    if kind is Failure.DEPLOYMENT:
                        group = _without(group, dep.label)
                    if budget.spent():
                        break
                    continue
                except BaseException:
                    health.abandon()
                    self._metrics.child(self._metrics.in_flight, dep.label).set(health.in_flight)
                    await self._give_back(reservations, dep)
                    raise
                lease = Lease(dep, health, started, slot, self._metrics)
                slot = contextlib.AsyncExitStack()  # ownership moved to the lease
                return Outcome(value, lease, group.name, attempts), None
            return None, None
        finally:
            await slot.aclose()

    @staticmethod
    async def _give_back(reservations: Reservations | None, dep: Deployment) -> None:
        if reservations is not None and dep.budget is not None:
            await reservations.give_back(dep)

    async def _timed(self, call: Awaitable[T], deadline: float | None, dep: Deployment) -> T:
        if deadline is None:
            return await call
        try:
            async with asyncio.timeout_at(deadline):
                return await call
        except TimeoutError:
            raise UpstreamTimeout(
                f"upstream {dep.label} did not finish within the request's deadline",
                deployment=dep.label,
                code="deadline_exceeded",
            ) from None

    async def _back_off(
        self, group: ModelGroup, number: int, error: UpstreamError | None, budget: _Budget
    ) -> bool:
        """Wait before retrying a deployment already tried: full jitter, at least its
        ``Retry-After`` when that is within ``backoff.max``. False when it is not worth it."""
        cap = min(group.backoff.max, group.backoff.base * 2**number)
        delay = self._rng.uniform(0, cap)
        retry_after = _retry_after(error)
        if retry_after is not None:
            if retry_after > group.backoff.max:
                return False  # the upstream asks for longer than we will hold a client
            delay = max(delay, retry_after)
        if not budget.allows(delay):
            return False
        await self._sleep(delay)
        return True


def _attempt_attributes(
    group: ModelGroup, dep: Deployment, number: int, via: str
) -> dict[str, str | int]:
    """One upstream attempt's span: which deployment, which try in its group, and whether
    it is a fallback (``parley.fallback_reason``: failure, context_window, content_policy)."""
    attributes: dict[str, str | int] = {
        "gen_ai.provider.name": genai_provider(dep.provider),
        "gen_ai.request.model": dep.model,
        "parley.model_group": group.name,
        "parley.deployment": dep.label,
        "parley.attempt": number + 1,
    }
    if via:
        attributes["parley.fallback_reason"] = via
    return attributes


def genai_provider(provider: str) -> str:
    """The GenAI semantic conventions' ``gen_ai.provider.name`` for a Parley provider."""
    return _GENAI_PROVIDERS.get(provider, provider)


_GENAI_PROVIDERS = {
    "azure": "azure.ai.openai",
    "gemini": "gcp.gemini",
    "bedrock": "aws.bedrock",
}


def _without(group: ModelGroup, label: str) -> ModelGroup:
    """The group minus a deployment that proved misconfigured for this request."""
    return replace(group, deployments=tuple(d for d in group.deployments if d.label != label))


def _retry_after(error: UpstreamError | None) -> float | None:
    if not isinstance(error, UpstreamStatusError) or not error.retry_after:
        return None
    try:
        return max(0.0, float(error.retry_after))
    except ValueError:
        return None  # an HTTP date: rare from LLM APIs; fall back to jitter


@dataclass(slots=True)
class _Budget:
    """The client's deadline, and whether it is what stopped us."""

    deadline: float | None
    exhausted: bool = False

    def spent(self) -> bool:
        if self.deadline is not None and asyncio.get_running_loop().time() >= self.deadline:
            self.exhausted = True
        return self.exhausted

    def allows(self, delay: float) -> bool:
        """Whether waiting ``delay`` seconds still leaves time to try; marks the budget
        exhausted when it does not."""
        if self.deadline is not None and asyncio.get_running_loop().time() + delay >= self.deadline:
            self.exhausted = True
            return False
        return True
