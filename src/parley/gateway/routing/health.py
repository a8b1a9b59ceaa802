"""What the router knows about each deployment, learned from real traffic (passive
health): calls in flight, EWMA of time to first token and of total latency, recent success
rate, requests and tokens in the last minute (for headroom), and its circuit breaker."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from parley.config.loader import Deployment, ModelGroup
from parley.config.models import CircuitBreakerConfig
from parley.gateway.routing.breaker import BreakerState, CircuitBreaker

_ALPHA = 0.2  # EWMA weight of the newest sample
_MINUTE = 60.0


@dataclass(slots=True)
class DeploymentHealth:
    deployment: Deployment
    breaker: CircuitBreaker
    in_flight: int = 0
    ewma_latency: float | None = None
    ewma_ttft: float | None = None
    calls: int = 0
    failures: int = 0
    recent: deque[tuple[float, int, bool]] = field(default_factory=deque)
    """(time, tokens, ok) of calls in the last minute."""
    last_check: tuple[int, bool] | None = None
    """(time in ms, ok) of the last active health check, when they are on."""

    @property
    def label(self) -> str:
        return self.deployment.label

    def _trim(self, now: float) -> None:
        while self.recent and now - self.recent[0][0] > _MINUTE:
            self.recent.popleft()

    def success_rate(self) -> float:
        self._trim(time.monotonic())
        if not self.recent:
            return 1.0
        return sum(1 for _, _, ok in self.recent if ok) / len(self.recent)

    def headroom(self) -> float:
        """Fraction of the rpm/tpm capacity left this minute (1.0 with no capacity set)."""
        self._trim(time.monotonic())
        fractions = [1.0]
        dep = self.deployment
        if dep.rpm:
            fractions.append(1 - len(self.recent) / dep.rpm)
        if dep.tpm:
            fractions.append(1 - sum(t for _, t, _ in self.recent) / dep.tpm)
        return max(0.0, min(fractions))

    def has_capacity(self) -> bool:
        cap = self.deployment.max_concurrency
        return cap is None or self.in_flight < cap

    def started(self) -> None:
        self.in_flight += 1

    def finished(
        self, *, ok: bool, latency: float, ttft: float | None = None, tokens: int = 0
    ) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self.calls += 1
        if not ok:
            self.failures += 1
        now = time.monotonic()
        self.recent.append((now, tokens, ok))
        self._trim(now)
        if ok:
            self.ewma_latency = _ewma(self.ewma_latency, latency)
            if ttft is not None:
                self.ewma_ttft = _ewma(self.ewma_ttft, ttft)
        self.breaker.record(ok)

    def probed(self, ok: bool) -> None:
        """An active health check's result (``gateway/routing/probes.py``)."""
        self.last_check = (int(time.time() * 1000), ok)

    def abandon(self) -> None:
        """The call was cancelled (client gone): no verdict on the deployment."""
        self.in_flight = max(0, self.in_flight - 1)
        self.breaker.release()

    def snapshot(self) -> dict[str, object]:
        recent = len(self.recent)
        errors = sum(1 for _, _, ok in self.recent if not ok)
        return {
            "deployment": self.label,
            "group": self.deployment.group,
            "provider": self.deployment.provider,
            "model": self.deployment.model,
            "breaker": self.breaker.state.value,
            "in_flight": self.in_flight,
            "ewma_latency_ms": _ms(self.ewma_latency),
            "ewma_ttft_ms": _ms(self.ewma_ttft),
            "requests_last_minute": recent,
            "error_rate_last_minute": errors / recent if recent else 0.0,
            "calls": self.calls,
            "failures": self.failures,
            "last_health_check": None
            if self.last_check is None
            else {"at_ms": self.last_check[0], "ok": self.last_check[1]},
        }


def _ewma(current: float | None, sample: float) -> float:
    return sample if current is None else current + _ALPHA * (sample - current)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


BreakerListener = Callable[[str, BreakerState, BreakerState], None]


class HealthBook:
    """Every deployment's health, by label."""

    def __init__(self, groups: list[ModelGroup], on_breaker: BreakerListener | None = None) -> None:
        self._on_breaker = on_breaker
        self._by_label: dict[str, DeploymentHealth] = {}
        for group in groups:
            for dep in group.deployments:
                self._by_label[dep.label] = DeploymentHealth(dep, self._breaker(group, dep))

    def _breaker(self, group: ModelGroup, dep: Deployment) -> CircuitBreaker:
        on_breaker = self._on_breaker

        def changed(old: BreakerState, new: BreakerState, label: str = dep.label) -> None:
            if on_breaker is not None:
                on_breaker(label, old, new)

        return CircuitBreaker(group.circuit_breaker, on_change=changed)

    def rebuilt(self, groups: list[ModelGroup]) -> HealthBook:
        """The book for changed groups: a deployment that stays keeps what was learnt of
        it (its breaker, unless the group's breaker settings changed; its EWMAs; its calls
        in flight, which finish against this same object) and points at its new config."""
        fresh = HealthBook([], self._on_breaker)
        for group in groups:
            for dep in group.deployments:
                kept = self._by_label.get(dep.label)
                if kept is None:
                    fresh._by_label[dep.label] = DeploymentHealth(dep, self._breaker(group, dep))
                    continue
                kept.deployment = dep
                if kept.breaker.config != group.circuit_breaker:
                    kept.breaker = self._breaker(group, dep)
                fresh._by_label[dep.label] = kept
        return fresh

    def of(self, deployment: Deployment) -> DeploymentHealth:
        found = self._by_label.get(deployment.label)
        if found is None:  # a one-off deployment (client api_base): tracked on first use
            breaker = CircuitBreaker(CircuitBreakerConfig())
            found = self._by_label[deployment.label] = DeploymentHealth(deployment, breaker)
        return found

    def by_label(self, label: str) -> DeploymentHealth | None:
        return self._by_label.get(label)

    def all(self) -> list[DeploymentHealth]:
        return list(self._by_label.values())

    def is_open(self, deployment: Deployment) -> bool:
        return self.of(deployment).breaker.state is BreakerState.OPEN
