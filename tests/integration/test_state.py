"""The shared-state behaviour suite, run against the in-process backend and real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from parley.state import Absent, Settle, Slot, Spend, StateBackend, Window
from parley.state.memory import MemoryState
from parley.state.redis import RedisState
from tests.backends import redis_url


@pytest.fixture(params=["memory", "redis"])
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis_db() -> Iterator[str]:
    yield from redis_url()


@pytest.fixture
async def state(backend_name: str, request: pytest.FixtureRequest) -> AsyncIterator[StateBackend]:
    backend: StateBackend
    if backend_name == "redis":
        backend = RedisState(request.getfixturevalue("redis_db"))
    else:
        backend = MemoryState()
    yield backend
    await backend.close()


def k(name: str) -> str:
    return f"test:{uuid.uuid4().hex}:{name}"


async def test_window_admits_exactly_the_limit(state: StateBackend) -> None:
    key = k("rpm")
    results = [await state.admit([Window(key, 5, 1)]) for _ in range(8)]
    assert [r.allowed for r in results] == [True] * 5 + [False] * 3
    assert results[4].remaining == [0]
    refused = results[5]
    assert refused.failed == 0
    assert 0 < refused.retry_after <= 61


async def test_window_concurrent_callers_never_overshoot(state: StateBackend) -> None:
    key = k("rpm")
    results = await asyncio.gather(*(state.admit([Window(key, 20, 1)]) for _ in range(60)))
    assert sum(r.allowed for r in results) == 20


async def test_refused_request_consumes_nothing_anywhere(state: StateBackend) -> None:
    """All or none: a request refused by its second check leaves the first untouched."""
    first, second = k("a"), k("b")
    assert (await state.admit([Window(second, 1, 1)])).allowed
    refused = await state.admit([Window(first, 10, 1), Window(second, 1, 1)])
    assert not refused.allowed
    assert refused.failed == 1
    after = await state.admit([Window(first, 10, 1)])
    assert after.remaining == [9]


async def test_token_reservation_is_reconciled(state: StateBackend) -> None:
    key = k("tpm")
    verdict = await state.admit([Window(key, 1000, 800)])
    assert verdict.allowed
    assert not (await state.admit([Window(key, 1000, 300)])).allowed
    # the call used only 100 of the 800 reserved: give 700 back to the same bucket
    await state.settle([Settle(key, delta=-700, bucket=verdict.buckets[0])])
    assert (await state.admit([Window(key, 1000, 300)])).allowed


async def test_slots_limit_concurrency_and_release(state: StateBackend) -> None:
    key = k("par")
    held = [await state.admit([Slot(key, 2, f"lease-{i}", 60)]) for i in range(3)]
    assert [v.allowed for v in held] == [True, True, False]
    await state.settle([Settle(key, lease="lease-0")])
    assert (await state.admit([Slot(key, 2, "lease-3", 60)])).allowed


async def test_expired_slot_lease_frees_itself(state: StateBackend) -> None:
    key = k("par")
    assert (await state.admit([Slot(key, 1, "dead-holder", 0.2)])).allowed
    assert not (await state.admit([Slot(key, 1, "other", 60)])).allowed
    await asyncio.sleep(0.3)
    assert (await state.admit([Slot(key, 1, "other", 60)])).allowed


async def test_spend_needs_initialising_then_reserves(state: StateBackend) -> None:
    key = k("spend")
    first = await state.admit([Spend(key, 100, 30, 3600)])
    assert not first.allowed
    assert first.uninitialised == [0]
    await state.init_spend(key, 50, 3600)
    await state.init_spend(key, 0, 3600)  # a second initialiser does not reset it
    assert (await state.admit([Spend(key, 100, 30, 3600)])).allowed
    refused = await state.admit([Spend(key, 100, 30, 3600)])
    assert not refused.allowed
    assert refused.failed == 0
    await state.settle([Settle(key, delta=-20)])  # the call cost 10, not the 30 reserved
    assert await state.get_spend(key) == 60


async def test_revocation_flag_refuses_and_expires(state: StateBackend) -> None:
    flag = k("revoked")
    assert (await state.admit([Absent(flag)])).allowed
    await state.set_flag(flag, 0.3)
    assert await state.has_flag(flag)
    verdict = await state.admit([Absent(flag)])
    assert not verdict.allowed
    assert verdict.failed == 0
    await asyncio.sleep(0.4)
    assert not await state.has_flag(flag)


async def test_a_flag_is_taken_once_among_concurrent_takers_and_expires(
    state: StateBackend,
) -> None:
    """Single-use passkey challenges: of many instances taking one flag, exactly one
    gets it; an expired flag is taken by nobody."""
    flag = k("challenge")
    await state.set_flag(flag, 30)
    taken = await asyncio.gather(*(state.take_flag(flag) for _ in range(20)))
    assert sorted(taken) == [False] * 19 + [True]
    assert not await state.has_flag(flag)
    await state.set_flag(flag, 0.2)
    await asyncio.sleep(0.3)
    assert not await state.take_flag(flag)


async def test_failures_lock_out_with_doubling(state: StateBackend) -> None:
    key = k("fail")
    waits = [
        await state.record_failure(key, forget_s=3600, threshold=3, base_s=60, cap_s=200)
        for _ in range(6)
    ]
    assert waits == [0, 0, 60, 120, 200, 200]
    assert 190 < await state.locked_for(key) <= 200
    await state.clear(key)
    assert await state.locked_for(key) == 0
