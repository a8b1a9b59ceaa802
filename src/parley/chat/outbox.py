"""The outbox relay: conversation events reach the bus exactly when they were stored.

``chat/events.append`` writes each event's outbox row in the event's own transaction. The
relay publishes rows in id order, waits until the bus holds them, then deletes them. A
crash between the two republishes the rows on restart (at least once); JetStream drops a
republished message id inside its duplicate window and consumers drop an event whose
(conversation, version) they have seen, so a duplicate changes nothing.

Rows are deleted rather than tracked by a high-water mark: under PostgreSQL, ids are
handed out before commit, so a transaction can commit a smaller id after a larger one has
been seen; a mark would skip it for good, a delete cannot. On PostgreSQL one relay works at
a time (a transaction-scoped advisory lock), which also keeps each conversation's events
in order on the bus.

The relay runs when a local write commits (``kick``) and every ``poll_s`` otherwise, so
rows another instance left behind when it died are published too.
"""

from __future__ import annotations

import contextlib
import time

from sqlalchemy import delete, func, select, text

from parley.bus import Bus, Subjects
from parley.chat.worker import Worker
from parley.store.db import Database
from parley.store.tables import outbox

_LOCK = text("SELECT pg_try_advisory_xact_lock(7046, 1)")
"""PostgreSQL: one relay at a time (7046 = Parley's advisory lock class, 1 = the relay)."""


class Relay(Worker):
    name = "parley-outbox"

    def __init__(
        self,
        db: Database,
        bus: Bus,
        subjects: Subjects,
        *,
        batch: int = 500,
        poll_s: float = 1.0,
        max_backoff_s: float = 5.0,
    ) -> None:
        super().__init__(poll_s=poll_s, max_backoff_s=max_backoff_s)
        self._db = db
        self._bus = bus
        self._subjects = subjects
        self._batch = batch

    async def backlog(self) -> tuple[int, float]:
        """(rows not yet on the bus, seconds the oldest has waited): the bus lag an
        operator sees, whichever instance's relay is behind or down."""
        async with self._db.read() as conn:
            count, oldest = (
                await conn.execute(select(func.count(), func.min(outbox.c.created_ms)))
            ).one()
        waited = 0.0 if oldest is None else max(0.0, time.time() - oldest / 1000)
        return int(count), waited

    async def stop(self) -> None:
        """Stop, then publish what is pending (best effort)."""
        await super().stop()
        with contextlib.suppress(Exception):
            await self.drain()

    async def step(self) -> int:
        """One batch: the number published, 0 when there was none, -1 when another relay
        holds the lock."""
        async with self._db.write() as conn:
            if self._db.dialect == "postgresql" and not await conn.scalar(_LOCK):
                return -1
            rows = (
                await conn.execute(
                    select(
                        outbox.c.id,
                        outbox.c.owner_id,
                        outbox.c.stream_id,
                        outbox.c.version,
                        outbox.c.data,
                    )
                    .order_by(outbox.c.id)
                    .limit(self._batch)
                )
            ).all()
            if not rows:
                return 0
            await self._bus.publish(
                [
                    (
                        self._subjects.event(r.owner_id, r.stream_id),
                        bytes(r.data),
                        f"{r.stream_id}:{r.version}",
                    )
                    for r in rows
                ]
            )
            await conn.execute(delete(outbox).where(outbox.c.id.in_([r.id for r in rows])))
        return len(rows)
