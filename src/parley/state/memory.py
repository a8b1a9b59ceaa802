"""In-process shared state for the embedded tier: one event loop, so every method is
atomic by construction (no awaits inside). Entries expire lazily and in a periodic sweep,
so memory stays bounded by live keys."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from parley.state.base import (
    WINDOW_BUCKETS,
    Absent,
    Check,
    Settle,
    Slot,
    Spend,
    Verdict,
    Window,
    lockout_seconds,
)


@dataclass(slots=True)
class _Entry:
    expires: float
    buckets: dict[int, int] = field(default_factory=dict)
    leases: dict[str, float] = field(default_factory=dict)
    value: int = 0
    locked_until: float = 0.0


class MemoryState:
    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.time, sweep_every: int = 10_000) -> None:
        self._data: dict[str, _Entry] = {}
        self._ops = 0
        self._sweep_every = sweep_every
        self._now = clock

    def _get(self, key: str, now: float) -> _Entry | None:
        entry = self._data.get(key)
        if entry is not None and entry.expires <= now:
            del self._data[key]
            return None
        return entry

    def _sweep(self, now: float) -> None:
        self._ops += 1
        if self._ops % self._sweep_every:
            return
        for key in [k for k, e in self._data.items() if e.expires <= now]:
            del self._data[key]

    async def admit(self, checks: Sequence[Check]) -> Verdict:
        now = self._now()
        now_ms = int(now * 1000)
        self._sweep(now)
        verdict = Verdict(allowed=True)
        for index, check in enumerate(checks):
            remaining, reset, bucket = 0, 0.0, 0
            if isinstance(check, Window):
                bucket = now_ms // check.bucket_ms
                entry = self._get(check.key, now)
                live = _live_buckets(entry, bucket)
                used = sum(live.values())
                remaining = check.limit - used - check.cost
                reset = _reset_after(live, check.bucket_ms, now_ms)
                if remaining < 0 and verdict.allowed:
                    verdict.allowed, verdict.failed = False, index
                    verdict.retry_after = _window_retry(live, used, check, now_ms)
            elif isinstance(check, Slot):
                entry = self._get(check.key, now)
                held = sum(1 for exp in (entry.leases.values() if entry else ()) if exp > now)
                remaining = check.limit - held - 1
                if remaining < 0 and verdict.allowed:
                    verdict.allowed, verdict.failed, verdict.retry_after = False, index, 1.0
            elif isinstance(check, Spend):
                entry = self._get(check.key, now)
                if entry is None:
                    verdict.uninitialised.append(index)
                else:
                    remaining = check.limit - entry.value - check.cost
                    if remaining < 0 and verdict.allowed:
                        verdict.allowed, verdict.failed = False, index
                        verdict.retry_after = entry.expires - now
            elif self._get(check.key, now) is not None and verdict.allowed:
                verdict.allowed, verdict.failed = False, index
            verdict.remaining.append(remaining)
            verdict.reset.append(reset)
            verdict.buckets.append(bucket)
        if verdict.uninitialised:
            verdict.allowed = False
        if verdict.allowed:
            self._apply(checks, verdict, now)
        return verdict

    def _apply(self, checks: Sequence[Check], verdict: Verdict, now: float) -> None:
        for index, check in enumerate(checks):
            if isinstance(check, Window):
                window_s = check.window_s + check.bucket_ms / 1000
                entry = self._entry(check.key, now, window_s)
                bucket = verdict.buckets[index]
                entry.buckets[bucket] = entry.buckets.get(bucket, 0) + check.cost
                for old in [b for b in entry.buckets if b <= bucket - WINDOW_BUCKETS]:
                    del entry.buckets[old]
            elif isinstance(check, Slot):
                entry = self._entry(check.key, now, check.ttl_s)
                entry.leases = {k: v for k, v in entry.leases.items() if v > now}
                entry.leases[check.lease] = now + check.ttl_s
            elif isinstance(check, Spend):
                entry = self._data[check.key]
                entry.value += check.cost
            elif isinstance(check, Absent):
                pass

    def _entry(self, key: str, now: float, ttl_s: float) -> _Entry:
        entry = self._get(key, now)
        if entry is None:
            entry = self._data[key] = _Entry(expires=now + ttl_s)
        else:
            entry.expires = max(entry.expires, now + ttl_s)
        return entry

    async def settle(self, items: Sequence[Settle]) -> None:
        now = self._now()
        for item in items:
            entry = self._get(item.key, now)
            if entry is None:
                continue
            if item.lease is not None:
                entry.leases.pop(item.lease, None)
            elif item.bucket is not None:
                if item.bucket in entry.buckets:
                    entry.buckets[item.bucket] = max(0, entry.buckets[item.bucket] + item.delta)
            else:
                entry.value += item.delta

    async def init_spend(self, key: str, value: int, ttl_s: int) -> None:
        now = self._now()
        if self._get(key, now) is None:
            self._data[key] = _Entry(expires=now + ttl_s, value=value)

    async def get_spend(self, key: str) -> int | None:
        entry = self._get(key, self._now())
        return None if entry is None else entry.value

    async def set_flag(self, key: str, ttl_s: float) -> None:
        self._data[key] = _Entry(expires=self._now() + ttl_s)

    async def has_flag(self, key: str) -> bool:
        return self._get(key, self._now()) is not None

    async def take_flag(self, key: str) -> bool:
        live = self._get(key, self._now()) is not None
        self._data.pop(key, None)
        return live

    async def touch(self, key: str, ttl_s: float) -> bool:
        now = self._now()
        entry = self._get(key, now)
        if entry is None:
            return False
        entry.expires = now + ttl_s
        return True

    async def record_failure(
        self, key: str, *, forget_s: float, threshold: int, base_s: float, cap_s: float
    ) -> float:
        now = self._now()
        entry = self._entry(key, now, forget_s)
        entry.expires = now + forget_s
        entry.value += 1
        wait = lockout_seconds(entry.value, threshold=threshold, base_s=base_s, cap_s=cap_s)
        if wait:
            entry.locked_until = now + wait
        return wait

    async def locked_for(self, key: str) -> float:
        now = self._now()
        entry = self._get(key, now)
        return 0.0 if entry is None else max(0.0, entry.locked_until - now)

    async def failure_count(self, key: str) -> int:
        entry = self._get(key, self._now())
        return 0 if entry is None else int(entry.value)

    async def clear(self, key: str) -> None:
        self._data.pop(key, None)

    async def ping(self) -> str | None:
        return None

    async def close(self) -> None:
        self._data.clear()


def _live_buckets(entry: _Entry | None, bucket: int) -> dict[int, int]:
    if entry is None:
        return {}
    oldest = bucket - WINDOW_BUCKETS + 1
    return {b: c for b, c in entry.buckets.items() if b >= oldest}


def _reset_after(live: dict[int, int], bucket_ms: int, now_ms: int) -> float:
    if not live:
        return 0.0
    return max(0, (max(live) + WINDOW_BUCKETS) * bucket_ms - now_ms) / 1000


def _window_retry(live: dict[int, int], used: int, check: Window, now_ms: int) -> float:
    """Seconds until enough old buckets leave the window for this request to fit."""
    freed = 0
    for bucket in sorted(live):
        freed += live[bucket]
        if used - freed + check.cost <= check.limit:
            return max(0, (bucket + WINDOW_BUCKETS) * check.bucket_ms - now_ms) / 1000
    return float(check.window_s)  # the request alone exceeds the limit
