"""The durable record of chat answers being generated (``running_generations``).

An answer is generated in the memory of one instance and saved only when it ends; if that
instance dies first, nothing else knows the answer existed. So its start is written here,
the instance refreshes the heartbeat of all its running answers with one statement per
interval, and the transaction that saves an answer deletes its row. A row whose heartbeat
stopped is an answer whose instance died: ``chat/lost.py`` claims it (``claim``, inside the
transaction that saves the answer as lost) so exactly one instance saves it.

Times are the instances' clocks (milliseconds since the epoch), so the staleness limit must
exceed the clock skew between instances as well as a heartbeat's delay.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from parley.store.db import Database
from parley.store.tables import running_generations

_t = running_generations.c


@dataclass(frozen=True, slots=True)
class Running:
    message_id: str
    conversation_id: str
    owner_id: str
    user_message_id: str
    model: str
    instance_id: str
    started_ms: int
    heartbeat_ms: int
    so_far: str | None = None
    """The text as of the last heartbeat, where the bus keeps none (``beat``)."""


async def record(db: Database, running: Running) -> None:
    """An answer starts (its question is already saved)."""
    async with db.write() as conn:
        await conn.execute(
            running_generations.insert().values(
                message_id=running.message_id,
                conversation_id=running.conversation_id,
                owner_id=running.owner_id,
                user_message_id=running.user_message_id,
                model=running.model,
                instance_id=running.instance_id,
                started_ms=running.started_ms,
                heartbeat_ms=running.heartbeat_ms,
            )
        )


async def beat(
    db: Database,
    instance_id: str,
    message_ids: Collection[str],
    now_ms: int,
    *,
    texts: Mapping[str, str] | None = None,
) -> int:
    """Refresh the heartbeat of the answers ``instance_id`` is running (``message_ids``):
    one statement however many there are. Named, not all of the instance's rows: an
    answer whose save failed is no longer running, and its row must go stale. With
    ``texts`` (message id -> text so far; the bus keeps no frames to recover it from),
    each row also keeps its text: one statement per answer, in one transaction. Returns
    the rows refreshed (a row another instance already saved as lost is gone, and stays
    gone)."""
    async with db.write() as conn:
        if texts is None:
            done = await conn.execute(
                update(running_generations)
                .where(_t.instance_id == instance_id, _t.message_id.in_(list(message_ids)))
                .values(heartbeat_ms=now_ms)
            )
            return int(done.rowcount)
        refreshed = 0
        for message_id in message_ids:
            done = await conn.execute(
                update(running_generations)
                .where(_t.instance_id == instance_id, _t.message_id == message_id)
                .values(heartbeat_ms=now_ms, so_far=texts.get(message_id, ""))
            )
            refreshed += int(done.rowcount)
    return refreshed


async def forget(conn: AsyncConnection, message_id: str) -> None:
    """In the transaction that saves the answer: it no longer needs sweeping."""
    await conn.execute(delete(running_generations).where(_t.message_id == message_id))


async def stale(db: Database, before_ms: int, limit: int) -> list[Running]:
    """Rows whose heartbeat is older than ``before_ms``, oldest first."""
    query = (
        select(running_generations)
        .where(_t.heartbeat_ms < before_ms)
        .order_by(_t.heartbeat_ms)
        .limit(limit)
    )
    async with db.read() as conn:
        return [Running(**r._mapping) for r in await conn.execute(query)]


async def claim(conn: AsyncConnection, message_id: str, before_ms: int) -> bool:
    """Take a stale row, in the transaction that saves its answer: True for exactly one
    claimant. A conditional DELETE: on PostgreSQL a second claimant waits on the row lock
    and then finds it gone (or, if the first rolled back, takes it); on SQLite writers are
    serialised. A row whose heartbeat was refreshed meanwhile is not taken."""
    done = await conn.execute(
        delete(running_generations).where(_t.message_id == message_id, _t.heartbeat_ms < before_ms)
    )
    return bool(done.rowcount == 1)
