"""Read replicas (``PARLEY_DATABASE_REPLICA_URLS``): where lag-tolerant reads go.

Only reads that tolerate a little lag are offered to replicas (conversation lists and pages,
search, usage reports, shared links: ``Database.read(lag_ok=True)``); writes and every other
read stay on the primary. Replicas are taken round-robin among the healthy ones. A health
check runs every ``check_s`` seconds: a replica that fails it, is not in recovery (a
promoted or misconfigured server), or lags the primary by more than ``max_lag_s`` is taken
out until a later check passes. Lag is zero when the replica has replayed everything the
primary has written (``pg_last_wal_replay_lsn() >= pg_current_wal_lsn()``), else the age of
the last transaction it replayed: an idle primary does not make a caught-up replica look
stale, and a stalled one is noticed even while its last replay was recent.

Read-your-writes: a user whose request wrote through this process (``acting_for`` names
the request's user; ``Database.write`` notes the time) reads from the primary for
``max_lag_s + check_s`` after, longer than any replica still in rotation can lag. So a
send or an edit is never missing from the list or page the same user loads next. The note
is per process: behind a load balancer without session affinity, another instance does not
know of the write (it still never serves a replica past the lag bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.observability.metrics import Metrics

_acting: ContextVar[str | None] = ContextVar("parley_acting_user", default=None)

_REPLICA_STATE = text(
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
    " EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8"
)
_PRIMARY_LSN = text("SELECT pg_current_wal_lsn()::text")
_BEHIND = text(
    "SELECT pg_wal_lsn_diff(CAST(:primary AS text)::pg_lsn, CAST(:replica AS text)::pg_lsn)::float8"
)


def acting_for(user_id: str | None) -> None:
    """Name the user the current request acts for (the API layer, once authenticated):
    their writes pin their lag-tolerant reads to the primary for a while."""
    _acting.set(user_id)


def acting_user() -> str | None:
    return _acting.get()


@dataclass(slots=True)
class Replica:
    url: str
    engine: AsyncEngine
    healthy: bool = False
    lag_s: float | None = None
    why: str = "not checked yet"

    @property
    def label(self) -> str:
        """``host:port``: the metrics label (no user, password or database name)."""
        url = self.engine.url
        return f"{url.host}:{url.port or 5432}"


@dataclass(slots=True)
class Replicas:
    """The replicas, their health, and the per-user read-your-writes pins."""

    replicas: list[Replica]
    max_lag_s: float = 5.0
    check_s: float = 2.0
    metrics: Metrics | None = None
    routed: Counter[str] = field(default_factory=Counter)
    """Lag-tolerant reads served, by ``primary`` or a replica's URL (for tests and logs)."""
    _pins: dict[str, float] = field(default_factory=dict)
    _turn: Iterator[int] = field(init=False)
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self._turn = itertools.cycle(range(len(self.replicas)))

    @property
    def pin_s(self) -> float:
        return self.max_lag_s + self.check_s

    def wrote(self) -> None:
        """A write committed: pin its user (if the request named one) to the primary."""
        user = _acting.get()
        if user is None:
            return
        now = time.monotonic()
        self._pins[user] = now + self.pin_s
        if len(self._pins) > 10_000:  # forget expired pins now and then
            self._pins = {u: t for u, t in self._pins.items() if t > now}

    def choose(self) -> Replica | None:
        """A healthy replica in turn, or None: the primary then serves the read."""
        user = _acting.get()
        if user is not None:
            until = self._pins.get(user)
            if until is not None:
                if until > time.monotonic():
                    return None
                del self._pins[user]
        for _ in range(len(self.replicas)):
            replica = self.replicas[next(self._turn)]
            if replica.healthy:
                return replica
        return None

    def note_read(self, replica: Replica | None) -> None:
        self.routed[replica.url if replica else "primary"] += 1
        if self.metrics is not None:
            target = replica.label if replica is not None else "primary"
            self.metrics.child(self.metrics.db_reads, target).inc()

    def failed(self, replica: Replica, error: BaseException) -> None:
        """A read on it failed: out until the next check passes."""
        replica.healthy = False
        replica.why = f"read failed: {type(error).__name__}"
        self._publish(replica)

    def _publish(self, replica: Replica) -> None:
        if self.metrics is None:
            return
        self.metrics.db_replica_up.labels(replica.label).set(1 if replica.healthy else 0)
        if replica.lag_s is not None and replica.lag_s != float("inf"):
            self.metrics.db_replica_lag.labels(replica.label).set(replica.lag_s)

    async def check(self, primary: AsyncEngine) -> None:
        """One round of health checks (also run once before the first read is served)."""
        try:
            async with primary.connect() as conn:
                primary_lsn = (await conn.execute(_PRIMARY_LSN)).scalar_one()
        except (SQLAlchemyError, OSError):
            primary_lsn = None  # the primary's own trouble: judge replicas on their own
        await asyncio.gather(*(self._check_one(r, primary_lsn) for r in self.replicas))
        for replica in self.replicas:
            self._publish(replica)

    async def _check_one(self, replica: Replica, primary_lsn: str | None) -> None:
        try:
            async with asyncio.timeout(max(1.0, self.check_s)):
                async with replica.engine.connect() as conn:
                    recovering, replayed, age = (await conn.execute(_REPLICA_STATE)).one()
                    behind = 0.0
                    if primary_lsn is not None and replayed is not None:
                        query = _BEHIND.bindparams(primary=primary_lsn, replica=replayed)
                        behind = float((await conn.execute(query)).scalar_one())
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            replica.healthy, replica.lag_s = False, None
            cause = getattr(exc, "orig", None) or exc
            replica.why = f"check failed: {type(cause).__name__}"
            return
        if not recovering:
            replica.healthy, replica.why = False, "not a replica (not in recovery)"
            return
        lag = 0.0 if behind <= 0 else float(age if age is not None else float("inf"))
        replica.lag_s = lag
        replica.healthy = lag <= self.max_lag_s
        replica.why = "" if replica.healthy else f"lagging {lag:.1f}s"

    def start(self, primary: AsyncEngine) -> None:
        async def forever() -> None:
            while True:
                await asyncio.sleep(self.check_s)
                await self.check(primary)

        self._task = asyncio.get_running_loop().create_task(forever(), name="parley-replicas")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(r.engine.dispose() for r in self.replicas))

    def status(self) -> Sequence[dict[str, Any]]:
        return [
            {"url": r.url, "healthy": r.healthy, "lag_s": r.lag_s, "why": r.why}
            for r in self.replicas
        ]
