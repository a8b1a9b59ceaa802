"""A user's chat data, exported whole or erased for good (account deletion).

Erasure goes further than a conversation's purge (``purge.py``): every conversation the
user owns, deleted or not, with its event log (so no rebuild brings it back), read
models, search rows, vectors, outbox rows, share snapshots and the records of answers
being generated; and the user's presets.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from parley.chat.conversations import Conversations
from parley.chat.semantic_search import forget
from parley.store import search
from parley.store.db import Database
from parley.store.tables import (
    conversations,
    events,
    message_vectors,
    messages,
    outbox,
    presets,
    running_generations,
    shares,
    vector_pending,
)

BATCH = 200


async def export_chat(db: Database, chat: Conversations, user_id: str) -> dict[str, Any]:
    """Every live conversation (as ``GET .../export`` gives it), the presets and the share
    links (their metadata: the snapshot is a copy of a conversation already exported)."""
    async with db.read() as conn:
        ids = list(
            (
                await conn.execute(
                    select(conversations.c.id)
                    .where(
                        conversations.c.owner_id == user_id, conversations.c.deleted_ms.is_(None)
                    )
                    .order_by(conversations.c.created_ms)
                )
            ).scalars()
        )
        preset_rows = [
            dict(r._mapping)
            for r in await conn.execute(
                select(presets).where(presets.c.owner_id == user_id).order_by(presets.c.name)
            )
        ]
        share_rows = [
            dict(r._mapping)
            for r in await conn.execute(
                select(
                    shares.c.id,
                    shares.c.conversation_id,
                    shares.c.display_name,
                    shares.c.created_ms,
                    shares.c.expires_ms,
                    shares.c.revoked_ms,
                ).where(shares.c.owner_id == user_id)
            )
        ]
    return {
        "conversations": [await chat.export(user_id, i) for i in ids],
        "presets": preset_rows,
        "shares": share_rows,
    }


async def erase_chat(db: Database, user_id: str) -> int:
    """Remove everything chat holds of ``user_id``; returns how many conversations went.
    Batched like the purge, so one large account never holds one long lock."""
    total = 0
    while True:
        async with db.write() as conn:
            ids = list(
                (
                    await conn.execute(
                        select(conversations.c.id)
                        .where(conversations.c.owner_id == user_id)
                        .limit(BATCH)
                    )
                ).scalars()
            )
            if ids:
                await search.remove_many(conn, ids)
                await forget(conn, ids)
                await conn.execute(delete(messages).where(messages.c.conversation_id.in_(ids)))
                await conn.execute(delete(events).where(events.c.stream_id.in_(ids)))
                await conn.execute(delete(outbox).where(outbox.c.stream_id.in_(ids)))
                await conn.execute(delete(conversations).where(conversations.c.id.in_(ids)))
                total += len(ids)
                continue
            # what is not under a live conversation row: shares (no foreign key), vectors
            # or outbox rows written by a batch racing the deletion, presets, the records
            # of answers being generated (their saves then find no conversation)
            for table in (
                shares,
                outbox,
                presets,
                message_vectors,
                vector_pending,
                running_generations,
            ):
                await conn.execute(delete(table).where(table.c.owner_id == user_id))
            await search.compact(conn)
            return total
