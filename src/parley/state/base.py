"""The shared-state interface. Two implementations keep the same behaviour: in-process
(``memory.py``, the embedded tier) and Redis (``redis.py``, atomic Lua), and the same test
suite runs against both.

One ``admit`` call evaluates every check a request needs (rate windows, concurrency slots,
budget reservations, revocation flags) and applies them all or none: a request refused by
its team's budget must not have consumed its key's RPM. ``settle`` later reconciles
reservations with what really happened, also in one round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

WINDOW_BUCKETS = 60
"""A window is counted in 60 buckets (one second each for a minute): memory stays bounded
and the window slides in steps of 1/60 of its length."""


@dataclass(frozen=True, slots=True)
class Window:
    """Consume ``cost`` from ``limit`` per sliding ``window_s`` (requests or tokens)."""

    key: str
    limit: int
    cost: int
    window_s: int = 60

    @property
    def bucket_ms(self) -> int:
        return self.window_s * 1000 // WINDOW_BUCKETS


@dataclass(frozen=True, slots=True)
class Slot:
    """Hold one of ``limit`` concurrent slots until released; ``ttl_s`` frees it if the
    holder dies without releasing."""

    key: str
    limit: int
    lease: str
    ttl_s: float


@dataclass(frozen=True, slots=True)
class Spend:
    """Reserve ``cost`` against ``limit`` on a counter that must be initialised first (from
    the database) when absent; ``ttl_s`` outlives the budget period."""

    key: str
    limit: int
    cost: int
    ttl_s: int


@dataclass(frozen=True, slots=True)
class Absent:
    """Refuse when the flag ``key`` is set (a revoked key or session)."""

    key: str


Check = Window | Slot | Spend | Absent


@dataclass(slots=True)
class Verdict:
    allowed: bool
    failed: int | None = None
    """Index of the first check that refused."""
    retry_after: float = 0.0
    remaining: list[int] = field(default_factory=list)
    """Per check, what is left after this request (windows and spends; slots: free slots)."""
    reset: list[float] = field(default_factory=list)
    """Per window, seconds until everything counted has left the window."""
    buckets: list[int] = field(default_factory=list)
    """Per window, the bucket charged: reconciliation adjusts that same bucket."""
    uninitialised: list[int] = field(default_factory=list)
    """Spend checks whose counter is absent: initialise them and ask again."""


@dataclass(frozen=True, slots=True)
class Settle:
    """One reconciliation: adjust a window bucket or a spend counter by ``delta``, or
    release the slot ``lease`` (when set)."""

    key: str
    delta: int = 0
    bucket: int | None = None
    lease: str | None = None


class StateBackend(Protocol):
    name: str

    async def admit(self, checks: Sequence[Check]) -> Verdict: ...

    async def settle(self, items: Sequence[Settle]) -> None: ...

    async def init_spend(self, key: str, value: int, ttl_s: int) -> None:
        """Set the counter if absent (another instance may have done it first)."""

    async def get_spend(self, key: str) -> int | None: ...

    async def set_flag(self, key: str, ttl_s: float) -> None: ...

    async def has_flag(self, key: str) -> bool: ...

    async def take_flag(self, key: str) -> bool:
        """Remove the flag; True for exactly one caller, whichever instance asks first
        (single-use challenges)."""

    async def touch(self, key: str, ttl_s: float) -> bool:
        """Give a live flag ``ttl_s`` more; False (and nothing set) when it has expired.
        One atomic step (Redis ``PEXPIRE``): the idle timeout of a session on every
        instance at once."""

    async def record_failure(
        self, key: str, *, forget_s: float, threshold: int, base_s: float, cap_s: float
    ) -> float:
        """Count a failure; returns seconds the subject is now locked out (0 if not)."""

    async def locked_for(self, key: str) -> float: ...

    async def failure_count(self, key: str) -> int:
        """Failures counted under ``key`` and not yet forgotten (0 when none)."""

    async def clear(self, key: str) -> None: ...

    async def ping(self) -> str | None: ...

    async def close(self) -> None: ...


BreakerApply = Callable[[str, str, float], None]
"""(deployment label, "open" | "closed", seconds the open state lasts)."""


class BreakerSync(Protocol):
    """Shares circuit-breaker transitions between instances."""

    async def publish(self, label: str, state: str, seconds: float) -> None: ...

    async def open_now(self, labels: Sequence[str]) -> dict[str, float]:
        """Which of these deployments are open somewhere, and for how much longer."""

    async def listen(self, apply: BreakerApply) -> None:
        """Apply other instances' transitions until cancelled."""


Invalidate = Callable[[str | None, str | None], None]
"""Drop cached answers of a namespace and/or a model group (None: any)."""


class ResponseStore(Protocol):
    """The shared tier (L2) of the response cache; the in-process tier sits in front of it.
    Entries expire by themselves after their TTL."""

    async def get(self, address: str) -> bytes | None: ...

    async def put(self, address: str, data: bytes, ttl_ms: int) -> None: ...

    async def drop(self, namespace: str | None, group: str | None) -> int:
        """Delete matching entries and tell every instance to drop its own copies."""

    async def listen(self, apply: Invalidate) -> None:
        """Apply other instances' invalidations until cancelled."""


class SharedEntries(Protocol):
    """An append-only log every instance reads from the start and then follows: how the
    semantic cache's questions reach every instance's in-process index."""

    async def append(self, data: bytes) -> None: ...

    async def follow(self, apply: Callable[[bytes], None]) -> None:
        """Apply every entry (oldest first, then new ones as they come) until cancelled."""


def lockout_seconds(count: int, *, threshold: int, base_s: float, cap_s: float) -> float:
    """After ``threshold`` failures: base, doubling per further failure, capped."""
    if count < threshold:
        return 0.0
    return float(min(cap_s, base_s * 2 ** (count - threshold)))
