"""Routing is data: a model group's deployments plus a strategy pick the next deployment.

Every strategy sees only eligible deployments: breaker not open (or half-open with a probe
free), below their concurrency cap, and whose context window fits the prompt. Strategies:

- ``ordered``: lowest ``order`` first (ties keep file order): plain failover.
- ``weighted``: random, in proportion to ``weight``.
- ``least_inflight``: fewest calls in flight (ties at random).
- ``latency``: lowest EWMA latency; unmeasured deployments first, and 5% of picks at random
  so a deployment that recovered gets measured again.
- ``cost``: cheapest estimated cost of this request (prompt + max_tokens at its prices).
- ``headroom``: most rpm/tpm capacity left this minute.
- ``balanced``: highest weighted score of latency, load, success rate and cost, each
  normalised over the eligible deployments.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from parley.config.loader import Deployment, ModelGroup
from parley.config.models import Strategy
from parley.gateway.accounting.cost import Price
from parley.gateway.routing.health import DeploymentHealth, HealthBook

EXPLORE_SHARE = 0.05
STRATEGIES: tuple[Strategy, ...] = (
    "ordered",
    "weighted",
    "least_inflight",
    "latency",
    "cost",
    "headroom",
    "balanced",
)


@dataclass(slots=True)
class RouteRequest:
    """What the router needs to know about one request."""

    prompt_tokens: Callable[[], int]
    max_tokens: int
    strategy: Strategy | None = None
    _prompt: int | None = None

    def prompt(self) -> int:
        if self._prompt is None:
            self._prompt = self.prompt_tokens()
        return self._prompt


class Router:
    def __init__(
        self,
        health: HealthBook,
        price: Callable[[Deployment], Price],
        rng: random.Random | None = None,
    ) -> None:
        self._health = health
        self._price = price
        self._rng = rng or random.Random()  # noqa: S311 - load spreading, not secrets

    def eligible(
        self, group: ModelGroup, route: RouteRequest, exclude: frozenset[str] = frozenset()
    ) -> list[DeploymentHealth]:
        found = []
        for dep in group.deployments:
            if dep.label in exclude:
                continue
            health = self._health.of(dep)
            if not health.breaker.available() or not health.has_capacity():
                continue
            if dep.max_context_tokens is not None and route.prompt() > dep.max_context_tokens:
                continue
            found.append(health)
        return found

    def choose(
        self, group: ModelGroup, route: RouteRequest, exclude: frozenset[str] = frozenset()
    ) -> Deployment | None:
        candidates = self.eligible(group, route, exclude)
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0].deployment
        strategy = route.strategy or group.strategy
        pick = getattr(self, f"_{strategy}")
        chosen: DeploymentHealth = pick(candidates, group, route)
        return chosen.deployment

    # --- strategies -----------------------------------------------------------------------

    def _ordered(self, c: Sequence[DeploymentHealth], *_: object) -> DeploymentHealth:
        return min(c, key=lambda h: h.deployment.order)  # min() keeps the first of equals

    def _weighted(self, c: Sequence[DeploymentHealth], *_: object) -> DeploymentHealth:
        weights = [h.deployment.weight for h in c]
        if not any(weights):
            return self._rng.choice(list(c))
        return self._rng.choices(list(c), weights=weights)[0]

    def _least_inflight(self, c: Sequence[DeploymentHealth], *_: object) -> DeploymentHealth:
        fewest = min(h.in_flight for h in c)
        return self._rng.choice([h for h in c if h.in_flight == fewest])

    def _latency(self, c: Sequence[DeploymentHealth], *_: object) -> DeploymentHealth:
        unmeasured = [h for h in c if h.ewma_latency is None]
        if unmeasured:
            return self._rng.choice(unmeasured)
        if self._rng.random() < EXPLORE_SHARE:
            return self._rng.choice(list(c))
        return min(c, key=lambda h: h.ewma_latency or 0.0)

    def _estimate(self, health: DeploymentHealth, route: RouteRequest) -> int:
        return self._price(health.deployment).estimate(route.prompt(), route.max_tokens)

    def _cost(
        self, c: Sequence[DeploymentHealth], _group: ModelGroup, route: RouteRequest
    ) -> DeploymentHealth:
        return min(c, key=lambda h: (self._estimate(h, route), h.deployment.order))

    def _headroom(self, c: Sequence[DeploymentHealth], *_: object) -> DeploymentHealth:
        best = max(h.headroom() for h in c)
        return self._rng.choice([h for h in c if h.headroom() == best])

    def _balanced(
        self, c: Sequence[DeploymentHealth], group: ModelGroup, route: RouteRequest
    ) -> DeploymentHealth:
        w = group.strategy_weights
        latencies = [h.ewma_latency for h in c if h.ewma_latency is not None]
        slowest = max(latencies, default=0.0) or 1.0
        busiest = max(h.in_flight for h in c) or 1
        costs = [self._estimate(h, route) for h in c]
        dearest = max(costs) or 1

        def score(index: int) -> float:
            h = c[index]
            # an unmeasured deployment scores as fast as the fastest: it gets tried
            latency = 1 - (h.ewma_latency / slowest if h.ewma_latency is not None else 0.0)
            load = 1 - h.in_flight / busiest
            cost = 1 - costs[index] / dearest
            return (
                w.latency * latency + w.load * load + w.success * h.success_rate() + w.cost * cost
            )

        scores = [score(i) for i in range(len(c))]
        best = max(scores)
        return self._rng.choice([h for h, s in zip(c, scores, strict=True) if s == best])
