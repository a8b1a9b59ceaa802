"""The conversation event log: every change to a conversation is an event appended to its
stream with the next version number. The unique (stream, version) index is the
concurrency control: a writer that read version N and appends N+1 after another writer
did gets a ``Conflict`` (409) and nothing of its change is written.

Events are small JSON payloads named in the past tense. ``chat/projections.py`` turns
them into the read models, in the same transaction as the append.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from parley.errors import Conflict
from parley.store.tables import events, outbox

CREATED = "conversation.created"
RENAMED = "conversation.renamed"
UPDATED = "conversation.updated"
"""Archived, pinned or tags changed (the payload names which)."""
DELETED = "conversation.deleted"
MESSAGE_ADDED = "message.added"
BRANCH_SELECTED = "branch.selected"
IMPORTED = "conversation.imported"
"""An import finished: the conversation, hidden while its batches were written (its
``conversation.created`` says ``importing``), is shown (``chat/imports.py``)."""


@dataclass(frozen=True, slots=True)
class Event:
    stream_id: str
    version: int
    type: str
    payload: dict[str, Any]
    time_ms: int
    metadata: dict[str, Any] = field(default_factory=dict)


class ConcurrentChange(Conflict):
    code = "conversation_changed"


class Published(msgspec.Struct, frozen=True):
    """An event as the bus carries it (``chat/outbox.py`` publishes, ``chat/live.py``
    forwards it to the owner's sessions)."""

    conversation_id: str
    version: int
    type: str
    payload: dict[str, Any]
    time_ms: int


async def append(
    conn: AsyncConnection, new: list[Event], owner_id: str, *, publish: bool = True
) -> None:
    """Append events (versions already numbered by the caller from what it read), and
    their outbox rows in the same transaction: an event is published if and only if it
    was stored. ``publish=False``: an import's batches, of a conversation nobody can see
    yet (only its ``conversation.imported`` is published)."""
    try:
        await conn.execute(
            events.insert(),
            [
                {
                    "stream_id": e.stream_id,
                    "version": e.version,
                    "type": e.type,
                    "payload": e.payload,
                    "metadata": e.metadata,
                    "time_ms": e.time_ms,
                }
                for e in new
            ],
        )
    except IntegrityError:
        raise ConcurrentChange(
            "the conversation changed while this request was being handled; reload it and try again"
        ) from None
    if not publish:
        return
    now = int(time.time() * 1000)
    await conn.execute(
        outbox.insert(),
        [
            {
                "owner_id": owner_id,
                "stream_id": e.stream_id,
                "version": e.version,
                "data": msgspec.json.encode(
                    Published(e.stream_id, e.version, e.type, e.payload, e.time_ms)
                ),
                "created_ms": now,
            }
            for e in new
        ],
    )


async def stream(conn: AsyncConnection, stream_id: str | None = None) -> list[Event]:
    """Events in append order: one stream's, or every stream's (for rebuilding)."""
    query = select(events).order_by(events.c.id)
    if stream_id is not None:
        query = query.where(events.c.stream_id == stream_id)
    rows = await conn.execute(query)
    return [Event(r.stream_id, r.version, r.type, r.payload, r.time_ms, r.metadata) for r in rows]
