"""Per-request time spent waiting on upstreams, so ``x-parley-overhead-ms`` can exclude it.

A mutable holder in a contextvar: the middleware installs one per request, and the HTTP
layer adds to it from wherever the upstream call runs (child tasks share the same holder).
"""

from __future__ import annotations

from contextvars import ContextVar


class UpstreamTimer:
    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = 0.0


_current: ContextVar[UpstreamTimer | None] = ContextVar("parley_upstream_timer", default=None)


def start_request_timer() -> UpstreamTimer:
    timer = UpstreamTimer()
    _current.set(timer)
    return timer


def add_upstream_time(seconds: float) -> None:
    timer = _current.get()
    if timer is not None:
        timer.seconds += seconds
