"""The loop-lag monitor behind load shedding (``api/shedding.py``): readings on a real
event loop held by blocking callbacks."""

from __future__ import annotations

import asyncio
import time

from parley.api import shedding


async def _readings(monitor: shedding.LoopLag, count: int) -> None:
    """Wait until ``count`` more readings have been taken."""
    for _ in range(count):
        due = monitor._due
        while monitor._due == due:  # noqa: ASYNC110 - polling the monitor's own clock
            await asyncio.sleep(0.005)


async def test_one_stall_is_read_but_not_overload() -> None:
    monitor = shedding.LoopLag(asyncio.get_running_loop())
    try:
        await _readings(monitor, 2)
        time.sleep(0.3)  # noqa: ASYNC251 - one slow callback, holding the loop
        await _readings(monitor, 1)
        assert monitor.lag > 0.25  # the reading saw it...
        assert not monitor.shedding(0.1)  # ...and one late reading sheds nobody
        await _readings(monitor, 1)
        assert not monitor.shedding(0.1)
    finally:
        monitor.close()


async def test_two_late_readings_in_a_row_shed_until_one_is_on_time() -> None:
    loop = asyncio.get_running_loop()
    monitor = shedding.LoopLag(loop)
    try:
        await _readings(monitor, 1)
        for _ in range(2):
            time.sleep(0.3)  # noqa: ASYNC251 - holding the loop on purpose
            await _readings(monitor, 1)
        assert monitor.shedding(0.1)
        assert not monitor.shedding(0.5)  # each server judges by its own threshold
        await _readings(monitor, 1)  # on time again
        assert not monitor.shedding(0.1)
    finally:
        monitor.close()


def test_only_model_calls_are_shed_in_their_apis_shape() -> None:
    assert shedding.shed_response(b"POST", b"/v1/chat/completions") is shedding.OPENAI_SHED
    assert shedding.shed_response(b"POST", b"/v1/responses") is shedding.OPENAI_SHED
    assert shedding.shed_response(b"POST", b"/v1/messages") is shedding.ANTHROPIC_SHED
    assert shedding.shed_response(b"POST", b"/v1/messages/count_tokens") is shedding.ANTHROPIC_SHED
    for method, path in [
        (b"GET", b"/v1/models"),
        (b"GET", b"/health/live"),
        (b"POST", b"/api/conversations"),
        (b"POST", b"/admin/keys"),
        (b"POST", b"/auth/login"),
    ]:
        assert shedding.shed_response(method, path) is None
    assert shedding.ANTHROPIC_SHED.startswith(b"HTTP/1.1 529 ")
    assert b"\r\nretry-after: 1\r\n" in shedding.OPENAI_SHED
