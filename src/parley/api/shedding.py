"""Load shedding on event-loop lag: past what one process can serve, new API requests get
an immediate 503 (Anthropic's 529 on ``/v1/messages``) with ``Retry-After`` instead of
queueing behind the work already admitted.

Admission control (``gateway/routing/admission.py``) bounds the requests *waiting for an
upstream*; it cannot see a process whose CPU is the bottleneck. There every request,
refused or not, waits its turn on the event loop, the loop's queue of ready callbacks grows
with the number of open connections, and every request slows down together, the ones
already admitted included: at twice what the core can serve, a closed-loop load of 3,000
connections saw waits of 5-10 s behind a 2 s queue timeout. A refusal made through the
whole pipeline (parse, authenticate, reserve limits, log, record) costs about what a served
request does, so refusing there barely helps.

So the HTTP protocol asks this monitor, as soon as a request's headers are in, whether the
loop is behind; when it is, the request is answered from bytes built once, before any of
that work (the connection stays open: a reconnect would cost both sides more than the
refusal). The monitor is one timer per event loop, every ``INTERVAL`` seconds,
that measures how late it ran: that delay is what a new request would wait for its first
turn. Shedding starts only when two readings in a row are past the threshold, so a single
stall (a collection, one slow callback) does not refuse anyone, and ends with the first
reading under it.
"""

from __future__ import annotations

import asyncio
import time
import weakref

import msgspec

from parley.observability.logging import get_logger

INTERVAL = 0.02
"""Seconds between readings when the loop keeps up (under load they are further apart)."""

LOG_EVERY = 10.0
"""Seconds between warnings while shedding lasts."""

log = get_logger("parley.shedding")


class LoopLag:
    """How far behind one event loop runs (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.lag = 0.0
        """The latest reading, in seconds."""
        self.sustained = 0.0
        """The lesser of the last two readings: past a threshold only when both were."""
        self.shed = 0
        """Requests refused while shedding, for the warning."""
        self._loop = loop
        self._warned = -LOG_EVERY
        self._due = loop.time() + INTERVAL
        self._handle = loop.call_at(self._due, self._tick)

    def shedding(self, threshold: float) -> bool:
        return self.sustained > threshold

    def refused(self, threshold: float) -> None:
        self.shed += 1
        now = time.monotonic()
        if now - self._warned >= LOG_EVERY:
            self._warned = now
            log.warning(
                "shedding load",
                loop_lag_ms=round(self.lag * 1000),
                threshold_ms=round(threshold * 1000),
                refused_so_far=self.shed,
            )

    def close(self) -> None:
        self._handle.cancel()

    def _tick(self) -> None:
        now = self._loop.time()
        lag = now - self._due
        self.sustained = min(lag, self.lag)
        self.lag = lag
        self._due = now + INTERVAL
        self._handle = self._loop.call_at(self._due, self._tick)


_MONITORS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopLag] = (
    weakref.WeakKeyDictionary()
)


def monitor(loop: asyncio.AbstractEventLoop) -> LoopLag:
    """The loop's monitor, made on first use; servers sharing a loop share its readings,
    each with its own threshold."""
    found = _MONITORS.get(loop)
    if found is None:
        found = _MONITORS[loop] = LoopLag(loop)
    return found


def _response(status: bytes, body: dict[str, object]) -> bytes:
    encoded = msgspec.json.encode(body)
    return b"".join(
        [
            b"HTTP/1.1 " + status + b"\r\n",
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(encoded)).encode() + b"\r\n",
            b"retry-after: 1\r\n\r\n",
            encoded,
        ]
    )


_MESSAGE = "this server is over capacity; retry after the Retry-After delay"
OPENAI_SHED = _response(
    b"503 Service Unavailable",
    {
        "error": {
            "message": _MESSAGE,
            "type": "service_unavailable_error",
            "param": None,
            "code": "overloaded",
        }
    },
)
ANTHROPIC_SHED = _response(
    b"529 Overloaded",
    {"type": "error", "error": {"type": "overloaded_error", "message": _MESSAGE}},
)


def shed_response(method: bytes, path: bytes) -> bytes | None:
    """The answer for a request shed at ``path``, or None when it is never shed: only
    model calls are (``POST /v1/...``); health checks, metrics, the web app, the console
    and the admin API stay answered, so an operator can see and act on the overload."""
    if method != b"POST" or not path.startswith(b"/v1/"):
        return None
    if path.startswith(b"/v1/messages"):
        return ANTHROPIC_SHED
    return OPENAI_SHED
