"""A server whose event loop falls behind sheds new model calls at once, in each API's own
error shape with ``Retry-After``, and serves again the moment it catches up; health checks
are never shed. The overload is real: callbacks on the server's own loop that hold it, the
way a saturated core does, not a flag set by the test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from parley.testing.servers import LoopThread
from tests.conftest import ParleyFactory

CHAT = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "openai", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
KEY = {"Authorization": "Bearer fake-secret-key-123456"}
HOLD = 0.3  # seconds each blocking callback holds the loop: past the 100 ms threshold


@contextmanager
def loop_held(loop_thread: LoopThread, seconds: float) -> Iterator[None]:
    """Hold the server's loop in ``HOLD``-second slices for ``seconds``: between slices the
    loop runs its timers and I/O, late, as a loop with too much work does."""
    stop = time.monotonic() + seconds
    released = threading.Event()

    def slice_() -> None:
        time.sleep(HOLD)
        if time.monotonic() < stop:
            loop_thread.loop.call_soon(slice_)
        else:
            released.set()

    loop_thread.loop.call_soon_threadsafe(slice_)
    time.sleep(6 * HOLD)  # two late readings in a row have been taken by now
    yield
    assert released.wait(seconds + 5)
    time.sleep(0.1)  # a reading on time


def test_a_lagging_loop_sheds_model_calls_in_each_apis_shape(
    parley: ParleyFactory, loop_thread: LoopThread
) -> None:
    url = parley(shed_loop_lag_ms=100)
    with httpx.Client(base_url=url, headers=KEY, timeout=30) as client:
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
        with loop_held(loop_thread, 4.0):
            chat = client.post("/v1/chat/completions", json=CHAT)
            messages = client.post(
                "/v1/messages", json=MESSAGES, headers={"anthropic-version": "2023-06-01"}
            )
            live = client.get("/health/live")
        assert chat.status_code == 503
        assert chat.headers["retry-after"] == "1"
        assert chat.json()["error"]["type"] == "service_unavailable_error"
        assert chat.json()["error"]["code"] == "overloaded"
        assert messages.status_code == 529
        assert messages.headers["retry-after"] == "1"
        assert messages.json() == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": messages.json()["error"]["message"]},
        }
        assert live.status_code == 200  # an operator's probes still get through
        # Caught up: the same kept-alive connection is served again.
        again = client.post("/v1/chat/completions", json=CHAT)
        assert again.status_code == 200, again.text
        metrics = client.get("/metrics").text
    shed = next(line for line in metrics.splitlines() if line.startswith("parley_shed_requests"))
    assert float(shed.split()[-1]) >= 2


def test_shedding_turned_off_serves_a_lagging_loop(
    parley: ParleyFactory, loop_thread: LoopThread
) -> None:
    url = parley(shed_loop_lag_ms=0)
    with httpx.Client(base_url=url, headers=KEY, timeout=30) as client, loop_held(loop_thread, 2.0):
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
