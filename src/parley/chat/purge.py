"""Purging: a deleted conversation disappears for good after a grace period.

``DELETE /api/conversations/{id}`` is soft (an event; the conversation leaves every
query but can be recovered from the log). ``purge`` removes, for conversations deleted
before a cutoff, everything Parley holds of them: the event log (so rebuilding the read
models cannot bring them back), read models, search rows (and, on SQLite, the words
the full-text index keeps after a delete: ``search.compact``), share snapshots and outbox
rows. It runs every hour in each instance (deletes are idempotent, so instances racing
each other is harmless), and from ``parley chat purge``.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import delete, select

from parley.chat.semantic_search import forget
from parley.observability.logging import get_logger
from parley.store import search
from parley.store.db import Database
from parley.store.tables import conversations, events, messages, outbox, shares

log = get_logger(__name__)
BATCH = 200
SWEEP_S = 3600.0


async def purge(db: Database, deleted_before_ms: int, *, conversation_id: str | None = None) -> int:
    """Remove conversations soft-deleted before ``deleted_before_ms`` (or just the one
    named, if it is deleted); returns how many went. Batches of ``BATCH``, one transaction
    each, so a large purge never holds one long lock."""
    total = 0
    c = conversations.c
    while True:
        query = select(c.id).where(c.deleted_ms.is_not(None), c.deleted_ms <= deleted_before_ms)
        if conversation_id is not None:
            query = query.where(c.id == conversation_id)
        async with db.write() as conn:
            ids = list((await conn.execute(query.limit(BATCH))).scalars())
            if not ids:
                if total:  # SQLite's full-text index still holds the words until compacted
                    await search.compact(conn)
                return total
            # search rows went with the deletion's projection (not those of an import whose
            # instance died while it was hidden); vectors did too, but an indexer batch read
            # before the deletion may have written some since
            await search.remove_many(conn, ids)
            await forget(conn, ids)
            await conn.execute(delete(shares).where(shares.c.conversation_id.in_(ids)))
            await conn.execute(delete(messages).where(messages.c.conversation_id.in_(ids)))
            await conn.execute(delete(outbox).where(outbox.c.stream_id.in_(ids)))
            await conn.execute(delete(events).where(events.c.stream_id.in_(ids)))
            await conn.execute(delete(conversations).where(c.id.in_(ids)))
        total += len(ids)


async def sweep_forever(db: Database, after_days: float, every_s: float = SWEEP_S) -> None:
    """The background purge of one instance."""
    while True:
        try:
            purged = await purge(db, int((time.time() - after_days * 86400) * 1000))
            if purged:
                log.info("purged deleted conversations", count=purged)
        except Exception as exc:  # the database is away: the next sweep tries again
            log.warning("purge failed", error=str(exc))
        await asyncio.sleep(every_s)
