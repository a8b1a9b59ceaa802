"""Strategies produce the distributions they promise (within binomial bounds), the breaker
walks closed -> open -> half-open -> closed, and the admission gate serves by priority."""

from __future__ import annotations

import asyncio
import collections
import math
import random
from typing import Any

import pytest

from parley.config.models import CircuitBreakerConfig, QueueConfig
from parley.errors import AllDeploymentsFailed, Overloaded, UpstreamStatusError
from parley.gateway.accounting.cost import FREE, price_of
from parley.gateway.routing.admission import Gate
from parley.gateway.routing.breaker import BreakerState, CircuitBreaker
from parley.gateway.routing.health import DeploymentHealth, HealthBook
from parley.gateway.routing.resilience import Resilience
from parley.gateway.routing.router import Router, RouteRequest
from parley.observability.metrics import Metrics
from parley.testing.servers import models_from


def group(strategy: str, *deps: dict[str, Any], **extra: Any) -> Any:
    base = {"provider": "openai_compatible", "api_base": "http://127.0.0.1:9/v1"}
    models = models_from(
        [
            {
                "name": "g",
                "strategy": strategy,
                "deployments": [{**base, **d} for d in deps],
                **extra,
            }
        ]
    )
    return models.groups[0]


def router_for(g: Any, seed: int = 7) -> tuple[Router, HealthBook]:
    health = HealthBook([g])
    rng = random.Random(seed)  # noqa: S311 - a seeded sequence makes the test repeatable
    return Router(health, lambda d: price_of(d) or FREE, rng), health


ROUTE = RouteRequest(prompt_tokens=lambda: 100, max_tokens=100)


def picks(router: Router, g: Any, n: int) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for _ in range(n):
        chosen = router.choose(g, ROUTE)
        assert chosen is not None
        counts[chosen.label] += 1
    return counts


def within(observed: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    spread = sigmas * math.sqrt(n * p * (1 - p))
    return abs(observed - n * p) <= spread


def test_weighted_follows_weights() -> None:
    g = group(
        "weighted",
        {"model": "a", "name": "a", "weight": 3},
        {"model": "b", "name": "b", "weight": 1},
    )
    router, _ = router_for(g)
    counts = picks(router, g, 4000)
    assert within(counts["a"], 4000, 0.75)
    assert within(counts["b"], 4000, 0.25)


def test_ordered_takes_the_lowest_order_and_skips_open_breakers() -> None:
    g = group(
        "ordered",
        {"model": "a", "name": "a", "order": 2},
        {"model": "b", "name": "b", "order": 1},
    )
    router, health = router_for(g)
    assert picks(router, g, 50) == {"b": 50}
    for _ in range(5):
        health.of(g.deployments[1]).finished(ok=False, latency=0.1)
    assert health.of(g.deployments[1]).breaker.state is BreakerState.OPEN
    assert picks(router, g, 50) == {"a": 50}


def test_least_inflight_picks_the_idlest() -> None:
    g = group("least_inflight", *({"model": m, "name": m} for m in "abc"))
    router, health = router_for(g)
    health.of(g.deployments[0]).in_flight = 4
    health.of(g.deployments[1]).in_flight = 1
    health.of(g.deployments[2]).in_flight = 3
    assert picks(router, g, 100) == {"b": 100}


def test_least_inflight_spreads_ties_evenly() -> None:
    g = group("least_inflight", *({"model": m, "name": m} for m in "ab"))
    router, _ = router_for(g)
    counts = picks(router, g, 2000)
    assert within(counts["a"], 2000, 0.5)


def test_latency_prefers_the_fastest_and_keeps_exploring() -> None:
    g = group("latency", *({"model": m, "name": m} for m in "abc"))
    router, health = router_for(g)
    for dep, seconds in zip(g.deployments, (0.9, 0.1, 0.5), strict=True):
        health.of(dep).finished(ok=True, latency=seconds)
    counts = picks(router, g, 6000)
    # 95% exploit (b) + 5% explore uniformly over three
    assert within(counts["b"], 6000, 0.95 + 0.05 / 3)
    assert within(counts["a"], 6000, 0.05 / 3)
    assert counts["a"] > 0  # a recovered deployment still gets measured


def test_latency_tries_unmeasured_deployments_first() -> None:
    g = group("latency", *({"model": m, "name": m} for m in "ab"))
    router, health = router_for(g)
    health.of(g.deployments[0]).finished(ok=True, latency=0.01)
    assert picks(router, g, 20) == {"b": 20}


def test_cost_picks_the_cheapest_that_fits_the_context() -> None:
    g = group(
        "cost",
        {
            "model": "cheap",
            "name": "cheap",
            "max_context_tokens": 50,
            "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.1},
        },
        {"model": "mid", "name": "mid", "price": {"input_per_mtok": 1, "output_per_mtok": 2}},
        {"model": "dear", "name": "dear", "price": {"input_per_mtok": 5, "output_per_mtok": 9}},
    )
    router, _ = router_for(g)
    assert picks(router, g, 20) == {"mid": 20}  # cheap's window (50) is smaller than 100
    small = RouteRequest(prompt_tokens=lambda: 10, max_tokens=10)
    chosen = router.choose(g, small)
    assert chosen is not None
    assert chosen.label == "cheap"


def test_headroom_prefers_unused_capacity() -> None:
    g = group(
        "headroom",
        {"model": "a", "name": "a", "rpm": 10},
        {"model": "b", "name": "b", "rpm": 10},
    )
    router, health = router_for(g)
    for _ in range(6):
        health.of(g.deployments[0]).finished(ok=True, latency=0.1)
    for _ in range(2):
        health.of(g.deployments[1]).finished(ok=True, latency=0.1)
    assert picks(router, g, 30) == {"b": 30}


def test_balanced_weighs_latency_load_success_and_cost() -> None:
    g = group(
        "balanced",
        {"model": "fast", "name": "fast", "price": {"input_per_mtok": 1, "output_per_mtok": 1}},
        {"model": "slow", "name": "slow", "price": {"input_per_mtok": 1, "output_per_mtok": 1}},
    )
    router, health = router_for(g)
    health.of(g.deployments[0]).finished(ok=True, latency=0.1)
    health.of(g.deployments[1]).finished(ok=True, latency=1.0)
    assert picks(router, g, 20) == {"fast": 20}
    # load the fast one and make it fail: the score moves to the other
    fast = health.of(g.deployments[0])
    fast.in_flight = 10
    fast.finished(ok=False, latency=0.1)
    fast.in_flight = 10
    assert picks(router, g, 20) == {"slow": 20}


def test_breaker_state_machine() -> None:
    now = [1000.0]
    changes: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        CircuitBreakerConfig(failure_rate=0.5, window=10, min_requests=4, cooldown=5),
        clock=lambda: now[0],
        on_change=lambda old, new: changes.append((old.value, new.value)),
    )
    for ok in (True, True, False):
        breaker.record(ok)
    assert breaker.state is BreakerState.CLOSED  # 3 calls < min_requests
    breaker.record(False)  # 2 of 4 failed = 50%
    assert breaker.state is BreakerState.OPEN
    assert not breaker.acquire()
    now[0] += 5
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.acquire()  # the one probe
    assert not breaker.acquire()  # no second probe at once
    breaker.record(False)
    assert breaker.state is BreakerState.OPEN
    now[0] += 5
    assert breaker.acquire()
    breaker.record(True)
    assert breaker.state is BreakerState.CLOSED
    assert changes == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_a_cancelled_probe_frees_its_slot() -> None:
    """A half-open breaker's probe whose client left gives no verdict, but must not keep
    the slot: otherwise the deployment would never be probed again."""
    now = [0.0]
    breaker = CircuitBreaker(
        CircuitBreakerConfig(failure_rate=0.5, window=10, min_requests=1, cooldown=5),
        clock=lambda: now[0],
    )
    health = DeploymentHealth(group("ordered", {"name": "a", "model": "m"}).deployments[0], breaker)
    health.breaker.record(False)
    now[0] += 5
    assert health.breaker.acquire()
    health.started()
    health.abandon()  # the probe's client went away
    assert health.breaker.state is BreakerState.HALF_OPEN
    assert health.breaker.acquire()  # the next caller may probe


def test_old_failures_leave_the_window() -> None:
    now = [0.0]
    breaker = CircuitBreaker(
        CircuitBreakerConfig(failure_rate=0.5, window=10, min_requests=2, cooldown=5),
        clock=lambda: now[0],
    )
    breaker.record(False)
    now[0] = 20.0
    breaker.record(False)
    assert breaker.state is BreakerState.CLOSED  # the first failure is 20 s old


async def test_gate_serves_waiters_by_priority_then_arrival() -> None:
    gate = Gate("g", 1, QueueConfig(max_size=10, timeout=5), Metrics())
    order: list[str] = []

    async def job(name: str, priority: int, hold: float = 0.0) -> None:
        async with gate.slot(priority):
            order.append(name)
            await asyncio.sleep(hold)

    first = asyncio.create_task(job("holder", 3, 0.05))
    await asyncio.sleep(0.01)
    waiters = [
        asyncio.create_task(job(name, prio))
        for name, prio in (("low", 5), ("normal-1", 3), ("urgent", 1), ("normal-2", 3))
    ]
    await asyncio.gather(first, *waiters)
    assert order == ["holder", "urgent", "normal-1", "normal-2", "low"]
    assert gate.in_use == 0


async def test_gate_refuses_when_the_queue_is_full_or_the_wait_too_long() -> None:
    gate = Gate("g", 1, QueueConfig(max_size=1, timeout=0.05), Metrics())
    async with gate.slot():
        waiter = asyncio.create_task(gate.slot().__aenter__())
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as full:
            async with gate.slot():
                pass
        assert full.value.code == "overloaded"
        with pytest.raises(Overloaded) as slow:
            await waiter
        assert slow.value.code == "queue_timeout"
        assert slow.value.headers["Retry-After"] == "1"
    assert gate.in_use == 0


def resilience_for(g: Any) -> tuple[Resilience, list[float]]:
    """A resilience loop over ``g`` whose sleeps are recorded instead of slept."""
    health = HealthBook([g])
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    rng = random.Random(3)  # noqa: S311 - jitter, seeded for repeatability
    router = Router(health, lambda d: FREE)
    return Resilience({"g": g}, router, health, Metrics(), sleep=sleep, rng=rng), slept


async def test_retry_after_sets_the_backoff_before_retrying_the_same_deployment() -> None:
    """The wait is asserted through an injected sleep, not a clock."""
    g = group("ordered", {"model": "only", "name": "only"}, retries=1)
    resilience, slept = resilience_for(g)
    calls: list[str] = []

    async def attempt(deployment: Any) -> str:
        calls.append(deployment.label)
        if len(calls) == 1:
            raise UpstreamStatusError(429, "slow down", deployment="only", retry_after="1")
        return "answer"

    outcome = await resilience.run(g, ROUTE, attempt)
    await outcome.lease.close()
    assert outcome.value == "answer"
    assert calls == ["only", "only"]
    assert len(slept) == 1
    assert slept[0] >= 1.0  # at least what the upstream asked for


async def test_retry_after_beyond_backoff_max_is_not_waited_for() -> None:
    g = group("ordered", {"model": "only", "name": "only"}, retries=2)
    health = HealthBook([g])
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    resilience = Resilience(
        {"g": g}, Router(health, lambda d: FREE), health, Metrics(), sleep=sleep
    )

    async def attempt(deployment: Any) -> str:
        raise UpstreamStatusError(429, "slow down", deployment="only", retry_after="7")

    with pytest.raises(AllDeploymentsFailed) as failed:
        await resilience.run(g, ROUTE, attempt)
    assert slept == []
    assert failed.value.status_code == 429
    assert failed.value.headers["Retry-After"] == "7"


async def test_waiters_that_leave_stop_counting_and_free_their_queue_places() -> None:
    """A waiter that times out or is cancelled (its client went away) leaves the queue at
    once: ``waiting`` drops and a newcomer gets its place instead of a queue-full refusal."""
    gate = Gate("g", 1, QueueConfig(max_size=2, timeout=0.05), Metrics())
    async with gate.slot():
        timed_out = asyncio.create_task(gate.slot().__aenter__())
        gone = asyncio.create_task(gate.slot().__aenter__())
        await asyncio.sleep(0)
        assert gate.waiting == 2
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert gate.waiting == 1
        with pytest.raises(Overloaded):
            await timed_out
        assert gate.waiting == 0
        newcomer = asyncio.create_task(gate.slot().__aenter__())
        await asyncio.sleep(0)
        assert gate.waiting == 1
    await newcomer  # the holder's slot passed over the two dead entries to the newcomer
    assert (gate.in_use, gate.waiting) == (1, 0)
