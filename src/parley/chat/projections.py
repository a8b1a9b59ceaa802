"""Read models from events: ``conversations`` and ``messages`` rows. ``project`` runs in
the transaction that appended the event (so the read models are never behind the log), and
``rebuild`` replays the whole log into empty tables (``parley chat rebuild-projections``);
a test proves both give the same rows. ``project_many`` is ``project`` for an import's
batch in a handful of statements (``chat/imports.py``); the same test covers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from parley.chat import events as ev
from parley.chat.events import Event
from parley.chat.parts import text_of
from parley.errors import Conflict
from parley.store import search
from parley.store.tables import conversations, messages


async def project(conn: AsyncConnection, event: Event) -> None:
    handler = _HANDLERS.get(event.type)
    if handler is not None:
        await handler(conn, event)
    if event.type != ev.CREATED:
        await conn.execute(
            update(conversations)
            .where(conversations.c.id == event.stream_id)
            .values(version=event.version, updated_ms=event.time_ms)
        )


async def rebuild(conn: AsyncConnection) -> int:
    """Empty the read models and replay every event; returns the events replayed."""
    await conn.execute(delete(messages))
    await conn.execute(delete(conversations))
    await search.clear(conn)
    replayed = await ev.stream(conn)
    for event in replayed:
        await project(conn, event)
    return len(replayed)


async def _created(conn: AsyncConnection, event: Event) -> None:
    p = event.payload
    await conn.execute(
        conversations.insert().values(
            id=event.stream_id,
            owner_id=p["owner_id"],
            title=p["title"],
            model=p.get("model"),
            settings=p.get("settings") or {},
            current_leaf_id=None,
            archived=False,
            pinned=False,
            tags=[],
            message_count=0,
            version=event.version,
            created_ms=event.time_ms,
            updated_ms=event.time_ms,
            deleted_ms=hidden_ms(event),
        )
    )
    await _index_title(conn, event.stream_id, p["owner_id"], p["title"])


IMPORT_GRACE_MS = 86_400_000
"""How far ahead an import's hidden conversation is dated as deleted: the purge sweep
(even with ``PARLEY_CHAT_PURGE_AFTER_DAYS=0``) leaves an import being written alone, and
removes what an instance that died mid-import left a day later than it would a deleted
conversation."""


def hidden_ms(created: Event) -> int | None:
    """``deleted_ms`` of a new conversation: None, or an import's hidden one (shown by
    its ``conversation.imported``)."""
    return created.time_ms + IMPORT_GRACE_MS if created.payload.get("importing") else None


async def _index_title(conn: AsyncConnection, conversation_id: str, owner: str, title: str) -> None:
    await search.remove(conn, conversation_id, kind="title")
    await search.add(
        conn,
        owner_id=owner,
        conversation_id=conversation_id,
        message_id=None,
        kind="title",
        body=title,
    )


async def _owner(conn: AsyncConnection, conversation_id: str) -> str:
    owner = await conn.scalar(
        select(conversations.c.owner_id).where(conversations.c.id == conversation_id)
    )
    return str(owner)


async def _renamed(conn: AsyncConnection, event: Event) -> None:
    await _set(conn, event, title=event.payload["title"])
    owner = await _owner(conn, event.stream_id)
    await _index_title(conn, event.stream_id, owner, event.payload["title"])


async def _updated(conn: AsyncConnection, event: Event) -> None:
    allowed = {"archived", "pinned", "tags", "settings", "model"}
    await _set(conn, event, **{k: v for k, v in event.payload.items() if k in allowed})


async def _deleted(conn: AsyncConnection, event: Event) -> None:
    await _set(conn, event, deleted_ms=event.time_ms)
    await search.remove(conn, event.stream_id)


async def _message_added(conn: AsyncConnection, event: Event) -> None:
    p = event.payload
    # The conversation's message count is the new message's position: one read gives
    # both it and the owner the search row needs.
    c = conversations.c
    owner, seq = (
        await conn.execute(select(c.owner_id, c.message_count).where(c.id == event.stream_id))
    ).one()
    await conn.execute(
        messages.insert().values(
            id=p["id"],
            conversation_id=event.stream_id,
            parent_id=p.get("parent_id"),
            seq=seq,
            role=p["role"],
            content=p["content"],
            model=p.get("model"),
            status=p.get("status", "complete"),
            created_ms=event.time_ms,
        )
    )
    await conn.execute(
        update(conversations)
        .where(conversations.c.id == event.stream_id)
        .values(current_leaf_id=p["id"], message_count=conversations.c.message_count + 1)
    )
    await search.add(
        conn,
        owner_id=owner,
        conversation_id=event.stream_id,
        message_id=p["id"],
        kind="message",
        body=text_of(p["content"]),
    )


async def _branch_selected(conn: AsyncConnection, event: Event) -> None:
    await _set(conn, event, current_leaf_id=event.payload["leaf_id"])


async def _imported(conn: AsyncConnection, event: Event) -> None:
    await _set(conn, event, deleted_ms=None)


async def _set(conn: AsyncConnection, event: Event, **values: Any) -> None:
    await conn.execute(
        update(conversations).where(conversations.c.id == event.stream_id).values(**values)
    )


_HANDLERS = {
    ev.CREATED: _created,
    ev.RENAMED: _renamed,
    ev.UPDATED: _updated,
    ev.DELETED: _deleted,
    ev.MESSAGE_ADDED: _message_added,
    ev.BRANCH_SELECTED: _branch_selected,
    ev.IMPORTED: _imported,
}

_BULK = (ev.CREATED, ev.MESSAGE_ADDED, ev.BRANCH_SELECTED, ev.IMPORTED)
"""The events an import writes, which ``project_many`` projects."""
_FINAL = ("message_count", "current_leaf_id", "version", "updated_ms", "deleted_ms")
"""What a batch changes on a conversation it did not create."""


async def project_many(conn: AsyncConnection, batch: Sequence[Event]) -> None:
    """``project`` for each event of ``batch``, in one statement per table instead of
    several per event (one 2,000-message batch in ~10 statements, not ~10,000). Only for
    an import's events (``_BULK``), of conversations created in this batch or an earlier
    one; the rows are the ones ``project`` would write, event by event."""
    c = conversations.c
    new: dict[str, dict[str, Any]] = {}
    seen = {e.stream_id for e in batch if e.type != ev.CREATED}
    earlier = list(seen - {e.stream_id for e in batch if e.type == ev.CREATED})
    state: dict[str, dict[str, Any]] = {}
    if earlier:
        query = select(c.id, c.owner_id, *(c[name] for name in _FINAL)).where(c.id.in_(earlier))
        state = {r.id: dict(r._mapping) for r in await conn.execute(query)}
        if len(state) < len(earlier):
            raise Conflict("a conversation being imported was removed while it was written")
    added: list[dict[str, Any]] = []
    texts: list[search.Row] = []
    for event in batch:
        p = event.payload
        if event.type not in _BULK:
            raise ValueError(f"project_many does not project {event.type}")
        if event.type == ev.CREATED:
            row = new[event.stream_id] = state[event.stream_id] = {
                "id": event.stream_id,
                "owner_id": p["owner_id"],
                "title": p["title"],
                "model": p.get("model"),
                "settings": p.get("settings") or {},
                "current_leaf_id": None,
                "archived": False,
                "pinned": False,
                "tags": [],
                "message_count": 0,
                "version": event.version,
                "created_ms": event.time_ms,
                "updated_ms": event.time_ms,
                "deleted_ms": hidden_ms(event),
            }
            texts.append(search.Row(p["owner_id"], event.stream_id, None, "title", p["title"]))
            continue
        row = state[event.stream_id]
        if event.type == ev.MESSAGE_ADDED:
            added.append(
                {
                    "id": p["id"],
                    "conversation_id": event.stream_id,
                    "parent_id": p.get("parent_id"),
                    "seq": row["message_count"],
                    "role": p["role"],
                    "content": p["content"],
                    "model": p.get("model"),
                    "status": p.get("status", "complete"),
                    "created_ms": event.time_ms,
                }
            )
            row["message_count"] += 1
            row["current_leaf_id"] = p["id"]
            body = text_of(p["content"])
            texts.append(search.Row(row["owner_id"], event.stream_id, p["id"], "message", body))
        elif event.type == ev.BRANCH_SELECTED:
            row["current_leaf_id"] = p["leaf_id"]
        else:
            row["deleted_ms"] = None
        row["version"], row["updated_ms"] = event.version, event.time_ms
    if new:
        await conn.execute(conversations.insert(), list(new.values()))
    if added:
        await conn.execute(messages.insert(), added)
    await search.add_many(conn, texts)
    if earlier:
        changed = update(conversations).where(c.id == bindparam("cid"))
        values: dict[str, Any] = {name: bindparam(f"new_{name}") for name in _FINAL}
        await conn.execute(
            changed.values(**values),
            [
                {"cid": cid, **{f"new_{name}": state[cid][name] for name in _FINAL}}
                for cid in earlier
            ],
        )
