"""A circuit breaker per deployment: closed, open, half-open.

Closed counts outcomes in one-second buckets over a rolling window; when at least
``min_requests`` calls in the window failed at ``failure_rate`` or more, it opens. Open
refuses every call for ``cooldown`` seconds, then turns half-open and lets
``half_open_probes`` calls through at once: a probe's success closes it (with a clean
window), a failure opens it again for another cooldown.

In-process, per instance: each instance learns from the traffic it sends, which is what
passive health wants; the state is cheap to rebuild after a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from parley.config.models import CircuitBreakerConfig


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


Listener = Callable[[BreakerState, BreakerState], None]


class CircuitBreaker:
    def __init__(
        self,
        config: CircuitBreakerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Listener | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._buckets: dict[int, list[int]] = {}  # second -> [calls, failures]
        self._opened_at = 0.0
        self._probes = 0

    @property
    def config(self) -> CircuitBreakerConfig:
        return self._config

    @property
    def cooldown(self) -> float:
        return self._config.cooldown

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._cooled():
            return BreakerState.HALF_OPEN
        return self._state

    def _cooled(self) -> bool:
        return self._clock() - self._opened_at >= self._config.cooldown

    def available(self) -> bool:
        """Whether a call could go through now (routing asks this without reserving)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN:
            return self._probes < self._config.half_open_probes
        return False

    def acquire(self) -> bool:
        """Reserve the right to call: always when closed, a probe slot when half-open."""
        if self._state is BreakerState.OPEN and self._cooled():
            self._move(BreakerState.HALF_OPEN)
            self._probes = 0
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.HALF_OPEN and self._probes < self._config.half_open_probes:
            self._probes += 1
            return True
        return False

    def release(self) -> None:
        """A call let through gave no verdict (cancelled: the client left): its probe slot,
        if it held one, is free again. Without this, cancelled probes would keep a
        half-open breaker from ever letting another call through."""
        if self._state is BreakerState.HALF_OPEN:
            self._probes = max(0, self._probes - 1)

    def record(self, ok: bool) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._probes = max(0, self._probes - 1)
            if ok:
                self._buckets.clear()
                self._move(BreakerState.CLOSED)
            else:
                self._open()
            return
        if self._state is BreakerState.OPEN:
            return  # a call admitted before the breaker opened; it has decided already
        now = self._clock()
        second = int(now)
        bucket = self._buckets.setdefault(second, [0, 0])
        bucket[0] += 1
        if not ok:
            bucket[1] += 1
        oldest = second - int(self._config.window) + 1
        for old in [s for s in self._buckets if s < oldest]:
            del self._buckets[old]
        calls = sum(b[0] for b in self._buckets.values())
        failures = sum(b[1] for b in self._buckets.values())
        if (
            not ok
            and calls >= self._config.min_requests
            and failures / calls >= self._config.failure_rate
        ):
            self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._probes = 0
        self._move(BreakerState.OPEN)

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is not new and self._on_change is not None:
            self._on_change(old, new)

    def force_open(self, seconds: float) -> None:
        """Another instance opened this deployment's breaker: stay open as long as it will
        (then probe independently). No listener call: the news must not echo back."""
        opened_at = self._clock() - self._config.cooldown + seconds
        if self._state is BreakerState.OPEN and opened_at <= self._opened_at:
            return
        self._state, self._opened_at, self._probes = BreakerState.OPEN, opened_at, 0

    def force_close(self) -> None:
        """Another instance's probe succeeded: the deployment is back."""
        if self._state is not BreakerState.CLOSED:
            self._buckets.clear()
            self._state, self._probes = BreakerState.CLOSED, 0

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._config.cooldown - (self._clock() - self._opened_at))
