"""Conversations as a service: commands append events (``events.py``) and project them
(``projections.py``) in one transaction; queries read the projected rows.

Every method takes the acting user's id and answers ``NotFound`` for a conversation that
does not exist, was deleted, or belongs to someone else: never 403, so an id reveals
nothing about whether it exists (the bug LibreChat and Open WebUI both shipped).

Writes are optimistic: a command is numbered from the version the caller saw (its
``expected_version``, else the version read when the command started); if another write
landed in between, the append fails with 409 and nothing is written.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from sqlalchemy import and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from parley.chat import events as ev
from parley.chat import semantic_search, tree
from parley.chat.events import ConcurrentChange, Event
from parley.chat.projections import project, rebuild
from parley.chat.semantic_search import SemanticSearch
from parley.errors import InvalidRequest, NotFound
from parley.store import search
from parley.store.db import Database
from parley.store.tables import conversations, messages

DEFAULT_TITLE = "New conversation"
EXPORT_FORMAT = "parley.conversation.v1"
FORK_LIMIT = 10_000
"""Messages a fork copies at most (the newest of the branch)."""
STATUSES = ("complete", "stopped", "error")
Within = Callable[[AsyncConnection], Awaitable[None]]
"""Work done first in a command's own transaction (``add_message``'s ``within``)."""
_PUBLIC = (
    "id",
    "title",
    "model",
    "settings",
    "current_leaf_id",
    "archived",
    "pinned",
    "tags",
    "message_count",
    "version",
    "created_ms",
    "updated_ms",
)


_CHAIN = text(
    """
    WITH RECURSIVE chain(id, depth) AS (
        SELECT id, 1 FROM messages WHERE id = :start AND conversation_id = :conversation
        UNION ALL
        SELECT m.parent_id, chain.depth + 1
        FROM chain JOIN messages m ON m.id = chain.id
        WHERE m.parent_id IS NOT NULL AND chain.depth < :limit
    )
    SELECT messages.* FROM chain JOIN messages ON messages.id = chain.id
    WHERE messages.conversation_id = :conversation
    ORDER BY chain.depth
    """
).columns(*messages.c)  # typed results: JSON content decoded as in any other query
"""A page of a branch: from ``start`` up its parent links, at most ``limit`` messages."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in _PUBLIC}


class Cursor(msgspec.Struct, array_like=True):
    """Where a page of the list ended: last activity, then id (ties)."""

    updated_ms: int
    id: str

    def encode(self) -> str:
        return base64.urlsafe_b64encode(msgspec.json.encode(self)).decode().rstrip("=")

    @classmethod
    def decode(cls, raw: str) -> Cursor:
        try:
            padded = raw + "=" * (-len(raw) % 4)
            return msgspec.json.decode(base64.urlsafe_b64decode(padded), type=cls)
        except (ValueError, msgspec.DecodeError):
            raise InvalidRequest("cursor is not one this API returned", param="cursor") from None


class Conversations:
    def __init__(self, db: Database) -> None:
        self._db = db
        self.committed: list[Callable[[], None]] = []
        """Called after each committed change (the outbox relay's and the semantic
        indexer's wake-ups)."""
        self.semantic: SemanticSearch | None = None
        """Semantic search, when configured: new messages are queued for embedding."""

    # --- commands --------------------------------------------------------------------

    async def create(
        self,
        owner_id: str,
        *,
        title: str | None = None,
        model: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        conversation_id = uuid.uuid4().hex
        payload = {
            "owner_id": owner_id,
            "title": title or DEFAULT_TITLE,
            "model": model,
            "settings": settings or {},
        }
        event = Event(conversation_id, 1, ev.CREATED, payload, _now_ms(), {"actor": owner_id})
        await self._commit(owner_id, [event])
        return await self.get(owner_id, conversation_id)

    async def rename(
        self, owner_id: str, conversation_id: str, title: str, expected_version: int | None = None
    ) -> dict[str, Any]:
        await self._change(
            owner_id, conversation_id, expected_version, [(ev.RENAMED, {"title": title})]
        )
        return await self.get(owner_id, conversation_id)

    async def update(
        self,
        owner_id: str,
        conversation_id: str,
        fields: dict[str, Any],
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """``archived``, ``pinned``, ``tags``, ``model``, ``settings``."""
        await self._change(owner_id, conversation_id, expected_version, [(ev.UPDATED, fields)])
        return await self.get(owner_id, conversation_id)

    async def delete(self, owner_id: str, conversation_id: str) -> None:
        """Soft: the conversation disappears from every query; its events stay."""
        await self._change(owner_id, conversation_id, None, [(ev.DELETED, {})])

    async def add_message(
        self,
        owner_id: str,
        conversation_id: str,
        *,
        role: str,
        content: list[dict[str, Any]],
        parent_id: str | None = None,
        model: str | None = None,
        status: str = "complete",
        expected_version: int | None = None,
        message_id: str | None = None,
        at_root: bool = False,
        conversation: Mapping[str, Any] | None = None,
        within: Within | None = None,
    ) -> dict[str, Any]:
        """Append a message under ``parent_id`` (default: the current leaf; ``at_root``: a
        new first message). A parent with children already starts a new branch beside
        them; the new message becomes the conversation's current leaf either way.
        ``conversation``: the row the caller already read as its owner (its version is
        the one this write is numbered from). ``within`` runs first in the transaction
        that appends the message (an answer's running record is deleted, or claimed, with
        its save: ``store/running.py``); what it raises rolls the whole write back."""
        current = conversation or await self._owned(owner_id, conversation_id)
        if at_root:
            parent_id = None
        elif parent_id is None:
            parent_id = current["current_leaf_id"]
        elif not await self._has_message(conversation_id, parent_id):
            raise NotFound("no such message in this conversation", param="parent_id")
        message_id = message_id or uuid.uuid4().hex
        payload = {
            "id": message_id,
            "parent_id": parent_id,
            "role": role,
            "content": content,
            "model": model,
            "status": status,
        }
        await self._change(
            owner_id,
            conversation_id,
            expected_version,
            [(ev.MESSAGE_ADDED, payload)],
            current=current,
            within=within,
        )
        return {"id": message_id, "parent_id": parent_id}

    async def fork(self, owner_id: str, conversation_id: str, message_id: str) -> dict[str, Any]:
        """A new conversation holding copies of the branch that ends at ``message_id``
        (with new ids), and the same model and settings."""
        source = await self._owned(owner_id, conversation_id)
        branch, _ = await self.branch_of(source, limit=FORK_LIMIT, before=message_id)
        fork_id = uuid.uuid4().hex
        now = _now_ms()
        created = {
            "owner_id": owner_id,
            "title": f"{source['title']} (fork)"[:300],
            "model": source["model"],
            "settings": source["settings"],
            "forked_from": {"conversation_id": conversation_id, "message_id": message_id},
        }
        new = [Event(fork_id, 1, ev.CREATED, created, now, {"actor": owner_id})]
        parent = None
        for version, message in enumerate(branch, start=2):
            copy_id = uuid.uuid4().hex
            payload = {
                "id": copy_id,
                "parent_id": parent,
                "role": message["role"],
                "content": message["content"],
                "model": message["model"],
                "status": message["status"],
            }
            new.append(Event(fork_id, version, ev.MESSAGE_ADDED, payload, now, {"actor": owner_id}))
            parent = copy_id
        await self._commit(owner_id, new)
        return await self.get(owner_id, fork_id)

    async def export(self, owner_id: str, conversation_id: str) -> dict[str, Any]:
        """Lossless: the conversation and every message of every branch, in order."""
        conversation = await self.get(owner_id, conversation_id)
        query = (
            select(messages)
            .where(messages.c.conversation_id == conversation_id)
            .order_by(messages.c.seq)
        )
        async with self._db.read(lag_ok=True) as conn:
            rows = [_message(dict(r._mapping)) for r in await conn.execute(query)]
        return {"format": EXPORT_FORMAT, "conversation": conversation, "messages": rows}

    async def select_branch(self, owner_id: str, conversation_id: str, leaf_id: str) -> None:
        if not await self._has_message(conversation_id, leaf_id):
            await self._owned(owner_id, conversation_id)
            raise NotFound("no such message in this conversation", param="leaf_id")
        await self._select(owner_id, conversation_id, leaf_id)

    async def select_version(self, owner_id: str, conversation_id: str, message_id: str) -> None:
        """Show ``message_id``'s version of the conversation: the newest branch under it."""
        async with self._db.read() as conn:
            leaf = await tree.newest_leaf(conn, conversation_id, message_id)
        if leaf is None:
            await self._owned(owner_id, conversation_id)
            raise NotFound("no such message in this conversation", param="message_id")
        await self._select(owner_id, conversation_id, leaf)

    async def _select(self, owner_id: str, conversation_id: str, leaf_id: str) -> None:
        await self._change(
            owner_id, conversation_id, None, [(ev.BRANCH_SELECTED, {"leaf_id": leaf_id})]
        )

    async def _change(
        self,
        owner_id: str,
        conversation_id: str,
        expected_version: int | None,
        changes: list[tuple[str, dict[str, Any]]],
        *,
        current: Mapping[str, Any] | None = None,
        within: Within | None = None,
    ) -> None:
        current = current or await self._owned(owner_id, conversation_id)
        version = current["version"]
        if expected_version is not None and expected_version != version:
            raise ConcurrentChange(
                f"the conversation is at version {version}, not {expected_version}; reload it"
            )
        now = _now_ms()
        new = [
            Event(conversation_id, version + i, kind, payload, now, {"actor": owner_id})
            for i, (kind, payload) in enumerate(changes, start=1)
        ]
        await self._commit(owner_id, new, within)

    async def _commit(self, owner_id: str, new: list[Event], within: Within | None = None) -> None:
        """Append, project and queue for the bus in one transaction, then wake the relay."""
        async with self._db.write() as conn:
            if within is not None:
                await within(conn)
            await ev.append(conn, new, owner_id)
            for event in new:
                await project(conn, event)
                if event.type == ev.DELETED:
                    await semantic_search.forget(conn, [event.stream_id])
                elif (
                    event.type == ev.MESSAGE_ADDED
                    and self.semantic is not None
                    and event.payload["role"] in ("user", "assistant")
                ):
                    await semantic_search.queue(
                        conn, owner_id, event.stream_id, event.payload["id"]
                    )
        for wake in self.committed:
            wake()

    # --- queries ---------------------------------------------------------------------

    async def get(self, owner_id: str, conversation_id: str) -> dict[str, Any]:
        return view(await self._owned(owner_id, conversation_id))

    async def get_many(self, owner_id: str, ids: list[str]) -> list[dict[str, Any]]:
        """The owner's conversations among ``ids``, in that order (one query: an import's
        answer lists up to 1,000)."""
        c = conversations.c
        query = select(conversations).where(
            c.id.in_(ids), c.owner_id == owner_id, c.deleted_ms.is_(None)
        )
        async with self._db.read(lag_ok=True) as conn:
            found = {r.id: view(dict(r._mapping)) for r in await conn.execute(query)}
        return [found[i] for i in ids if i in found]

    async def page(
        self,
        owner_id: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        archived: bool | None = False,
        pinned: bool | None = None,
        tag: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest activity first; ``tag`` is matched in Python on the page (tags live in a
        JSON list), so a tag-filtered page may hold fewer than ``limit`` rows."""
        c = conversations.c
        query = select(conversations).where(c.owner_id == owner_id, c.deleted_ms.is_(None))
        if archived is not None:
            query = query.where(c.archived == archived)
        if pinned is not None:
            query = query.where(c.pinned == pinned)
        if cursor is not None:
            after = Cursor.decode(cursor)
            query = query.where(
                or_(
                    c.updated_ms < after.updated_ms,
                    and_(c.updated_ms == after.updated_ms, c.id < after.id),
                )
            )
        query = query.order_by(c.updated_ms.desc(), c.id.desc()).limit(limit + 1)
        async with self._db.read(lag_ok=True) as conn:
            rows = [dict(r._mapping) for r in await conn.execute(query)]
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = Cursor(rows[-1]["updated_ms"], rows[-1]["id"]).encode() if more else None
        found = [view(r) for r in rows if tag is None or tag in (r["tags"] or [])]
        return found, next_cursor

    async def branch(
        self, owner_id: str, conversation_id: str, *, limit: int = 50, before: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The current branch, newest ``limit`` messages ending at ``before`` (default: the
        current leaf), oldest first; plus the id to pass as ``before`` for the next page."""
        current = await self._owned(owner_id, conversation_id)
        return await self.branch_of(current, limit=limit, before=before)

    async def branch_of(
        self,
        conversation: Mapping[str, Any],
        *,
        limit: int = 50,
        before: str | None = None,
        versions: bool = False,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """``branch`` of a conversation the caller already read as its owner (``get``).
        One recursive query follows the parent links of just this page (primary-key
        lookups): it never reads the whole conversation. ``versions`` adds each message's
        ``version_ids`` (``chat/tree.py``), for a reader that shows them."""
        conversation_id = conversation["id"]
        start = before or conversation["current_leaf_id"]
        if start is None:
            return [], None
        async with self._db.read() as conn:
            rows = [
                dict(r._mapping)
                for r in await conn.execute(
                    _CHAIN, {"start": start, "conversation": conversation_id, "limit": limit}
                )
            ]
            if not rows:
                raise NotFound("no such message in this conversation", param="before")
            page = [_message(row) for row in reversed(rows)]
            if versions:
                await tree.add_versions(conn, conversation_id, page)
        return page, rows[-1]["parent_id"]

    async def _owned(self, owner_id: str, conversation_id: str) -> dict[str, Any]:
        c = conversations.c
        query = select(conversations).where(
            c.id == conversation_id, c.owner_id == owner_id, c.deleted_ms.is_(None)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound("conversation not found")
        return dict(row._mapping)

    async def message(self, owner_id: str, conversation_id: str, message_id: str) -> dict[str, Any]:
        await self._owned(owner_id, conversation_id)
        query = select(messages).where(
            messages.c.id == message_id, messages.c.conversation_id == conversation_id
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound("no such message in this conversation")
        return _message(dict(row._mapping))

    async def _has_message(self, conversation_id: str, message_id: str) -> bool:
        query = select(messages.c.id).where(
            messages.c.id == message_id, messages.c.conversation_id == conversation_id
        )
        async with self._db.read() as conn:
            return (await conn.execute(query)).first() is not None

    async def search(
        self,
        owner_id: str,
        query: str,
        *,
        limit: int = 20,
        mode: str = "hybrid",
        filters: search.Filters = search.NO_FILTERS,
    ) -> list[dict[str, Any]]:
        """The owner's messages and titles matching every word of ``query``, best first;
        with semantic search configured and ``mode`` ``hybrid``, fused with the messages
        nearest in meaning (``chat/semantic_search.py``). Hits in a conversation an import
        is still writing (hidden) are left out."""
        if self.semantic is not None and mode == "hybrid":
            hits = await search.search(
                self._db, owner_id, query, semantic_search.CANDIDATES, filters
            )
            found = await self.semantic.hybrid(owner_id, query, hits, limit, filters)
            return await self._shown(owner_id, found)
        return await self._shown(
            owner_id,
            [
                {
                    "conversation_id": h.conversation_id,
                    "message_id": h.message_id,
                    "kind": h.kind,
                    "snippet": h.snippet,
                    "score": h.score,
                    "matched": ["text"],
                }
                for h in await search.search(self._db, owner_id, query, limit, filters)
            ],
        )

    async def _shown(self, owner_id: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``results`` without those of hidden conversations (an import's, being written:
        their search rows are written with their batches). One primary-key lookup."""
        ids = list({r["conversation_id"] for r in results})
        if not ids:
            return results
        c = conversations.c
        query = select(c.id).where(c.id.in_(ids), c.owner_id == owner_id, c.deleted_ms.is_(None))
        async with self._db.read(lag_ok=True) as conn:
            shown = set((await conn.execute(query)).scalars())
        return [r for r in results if r["conversation_id"] in shown]

    async def rebuild_projections(self) -> int:
        async with self._db.write() as conn:
            return await rebuild(conn)


def _message(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "parent_id": row["parent_id"],
        "role": row["role"],
        "content": row["content"],
        "model": row["model"],
        "status": row["status"],
        "created_ms": row["created_ms"],
    }
