"""Imports (``POST /api/conversations/import``): a Parley export, or ChatGPT's
``conversations.json``, as new conversations, without taking the instance down.

A maximal import (16 MB, 100,000 messages) once ran as one write transaction of minutes:
on SQLite every other user's write waited on the writer lock until it failed, and the
event loop parsed and converted the body while health checks waited. So:

- ``prepare`` decodes, converts and validates the whole body in a worker thread (CPU
  only, nothing is written): a 400 names the first bad conversation, message or part and
  nothing is stored.
- ``Importer.run`` writes the events in batches of ``BATCH_EVENTS``, one transaction
  each, projected in a few statements per batch (``projections.project_many``), with a
  pause between batches on SQLite so writers waiting on its lock get in. Every
  conversation is written hidden (its ``conversation.created`` says ``importing``); one
  last transaction shows them all (``conversation.imported``). The import is all or
  nothing: a failure (or the request cancelled) purges what its batches wrote; a process
  that dies mid-import leaves only hidden conversations, which the purge sweep removes
  like deleted ones (a day later: ``projections.IMPORT_GRACE_MS``).
- ``Importer.slot`` caps imports per user (shared state: across instances) and per
  instance, with 429 ``import_in_progress`` and 503 ``imports_busy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from parley.chat import events as ev
from parley.chat import semantic_search
from parley.chat.chatgpt import is_chatgpt_export, to_parley
from parley.chat.conversations import DEFAULT_TITLE, EXPORT_FORMAT, STATUSES, Conversations
from parley.chat.events import Event
from parley.chat.parts import checked
from parley.chat.projections import project_many
from parley.errors import InvalidRequest, Overloaded, RateLimited
from parley.observability.logging import get_logger
from parley.state import StateBackend
from parley.state import keys as state_keys
from parley.state.base import Settle, Slot
from parley.store import search
from parley.store.db import Database
from parley.store.tables import conversations, events, messages, outbox

log = get_logger(__name__)

CONVERSATIONS_LIMIT = 1_000
"""Conversations one import may hold."""
MESSAGES_LIMIT = 100_000
"""Messages one import may hold (messages, not events: a conversation's creation and its
current branch are not counted)."""
BATCH_EVENTS = 2_000
"""Events per write transaction: on SQLite one batch holds the writer lock for about a
tenth of a second."""
SQLITE_GAP_S = 0.1
"""The pause between two batches on SQLite. A writer waiting on SQLite's lock retries
every 100 ms at most (its busy handler's longest sleep), so a gap this long lets every
waiting writer in before the next batch."""
SLOT_TTL_S = 900.0
"""A user's import slot frees itself this long after an instance died holding it."""
RETRY_AFTER_S = 5.0
MODEL_CHARS = 200
"""The ``model`` columns' length."""
ABANDON_BATCH = 50
"""Conversations removed per transaction when an import is rolled back."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """One conversation to import: its events, numbered from 1, all validated."""

    conversation_id: str
    events: list[Event]


@dataclass(frozen=True, slots=True)
class Plan:
    """What an import body holds: ``listed`` when it was ChatGPT's list (answered as a
    list), else one Parley export (answered as the conversation)."""

    listed: bool
    conversations: list[Prepared]


def prepare(owner_id: str, raw: bytes) -> Plan:
    """Decode, convert and validate an import body (no I/O: run it in a thread). A 400
    names the first thing wrong."""
    try:
        data = msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError as exc:
        raise InvalidRequest(
            f"request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if is_chatgpt_export(data):
        if isinstance(data, list) and len(data) > CONVERSATIONS_LIMIT:
            raise InvalidRequest(f"at most {CONVERSATIONS_LIMIT:,} conversations per import")
        exports, listed = to_parley(data), True
    elif isinstance(data, dict):
        exports, listed = [data], False
    else:
        raise InvalidRequest("send a Parley export (a JSON object) or ChatGPT's conversations.json")
    del data
    made: list[Prepared] = []
    count = 0
    now = int(time.time() * 1000)
    for index, export in enumerate(exports):
        prefix = f"[{index}]." if len(exports) > 1 else ""
        conversation = _conversation(owner_id, export, prefix, now)
        count += sum(1 for e in conversation.events if e.type == ev.MESSAGE_ADDED)
        if count > MESSAGES_LIMIT:
            raise InvalidRequest(f"at most {MESSAGES_LIMIT:,} messages per import")
        made.append(conversation)
    return Plan(listed, made)


def _conversation(owner_id: str, data: dict[str, Any], prefix: str, now: int) -> Prepared:
    """The events that import one Parley export, the conversation hidden until shown."""
    if data.get("format") != EXPORT_FORMAT:
        raise InvalidRequest(f"format must be {EXPORT_FORMAT!r}", param=f"{prefix}format")
    source = data.get("conversation") or {}
    rows = data.get("messages")
    if not isinstance(source, dict) or not isinstance(rows, list):
        raise InvalidRequest(
            "an export holds a conversation and a list of messages",
            param=prefix.rstrip(".") or None,
        )
    title = str(source.get("title") or DEFAULT_TITLE)[:300]
    _no_nul([title], f"{prefix}conversation.title")
    settings = source.get("settings") or {}
    if not isinstance(settings, dict):
        raise InvalidRequest("settings must be an object", param=f"{prefix}conversation.settings")
    new_ids: dict[str, str] = {}
    conversation_id = uuid.uuid4().hex
    meta = {"actor": owner_id, "imported": True}
    created = {
        "owner_id": owner_id,
        "title": title,
        "model": _model(source.get("model"), f"{prefix}conversation.model"),
        "settings": settings,
        "importing": True,
    }
    new = [Event(conversation_id, 1, ev.CREATED, created, now, meta)]
    for index, row in enumerate(rows):
        where = f"{prefix}messages[{index}]"
        if not isinstance(row, dict) or row.get("role") not in ("user", "assistant", "system"):
            raise InvalidRequest(
                "each message needs a role: user, assistant or system", param=where
            )
        parent = row.get("parent_id")
        if parent is not None and parent not in new_ids:
            raise InvalidRequest("a message's parent must come before it", param=where)
        content = checked(row.get("content"), f"{where}.content")
        _no_nul([v for part in content for v in part.values()], f"{where}.content")
        status = row.get("status") or "complete"
        if status not in STATUSES:
            raise InvalidRequest(
                f"status must be one of {', '.join(STATUSES)}", param=f"{where}.status"
            )
        new_ids[str(row.get("id"))] = uuid.uuid4().hex
        payload = {
            "id": new_ids[str(row.get("id"))],
            "parent_id": new_ids[parent] if parent is not None else None,
            "role": row["role"],
            "content": content,
            "model": _model(row.get("model"), f"{where}.model"),
            "status": status,
        }
        new.append(Event(conversation_id, index + 2, ev.MESSAGE_ADDED, payload, now, meta))
    leaf = source.get("current_leaf_id")
    if leaf in new_ids:
        selected = {"leaf_id": new_ids[leaf]}
        new.append(Event(conversation_id, len(new) + 1, ev.BRANCH_SELECTED, selected, now, meta))
    return Prepared(conversation_id, new)


def _model(value: object, where: str) -> str | None:
    """A model name as the tables hold one (PostgreSQL refused a longer one mid-import
    with a 500)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MODEL_CHARS:
        raise InvalidRequest(f"a model is a name of 1-{MODEL_CHARS} characters", param=where)
    _no_nul([value], where)
    return value


def _no_nul(texts: list[str], where: str) -> None:
    """PostgreSQL's text cannot hold NUL: refused here, before anything is written, on
    every backend alike."""
    if any("\x00" in t for t in texts):
        raise InvalidRequest("text may not contain NUL (U+0000) characters", param=where)


def batches(plan: Plan, size: int) -> list[list[Event]]:
    """Every event of the plan in order, ``size`` per batch (a long conversation spans
    several; several short ones share one)."""
    every = [e for c in plan.conversations for e in c.events]
    return [every[i : i + size] for i in range(0, len(every), size)]


class Importer:
    """Runs imports for one instance: the caps, the batched writes, the rollback."""

    def __init__(
        self,
        db: Database,
        chat: Conversations,
        state: StateBackend,
        *,
        per_user: int = 1,
        per_instance: int = 2,
        batch_events: int = BATCH_EVENTS,
    ) -> None:
        self._db = db
        self._chat = chat
        self._state = state
        self._per_user = per_user
        self._per_instance = per_instance
        self._batch_events = batch_events
        self._running = 0

    @contextlib.asynccontextmanager
    async def slot(self, owner_id: str) -> AsyncIterator[None]:
        """Hold one of the user's import slots (shared by every instance), then one of this
        instance's; else 429 ``import_in_progress`` or 503 ``imports_busy``."""
        key, lease = state_keys.importing(owner_id), uuid.uuid4().hex
        verdict = await self._state.admit([Slot(key, self._per_user, lease, SLOT_TTL_S)])
        if not verdict.allowed:
            raise RateLimited(
                "an import of yours is still running; send this one when it has finished",
                code="import_in_progress",
                retry_after=RETRY_AFTER_S,
            )
        try:
            if self._running >= self._per_instance:  # no await between check and count
                raise Overloaded(
                    "this instance is running as many imports as it may; try again shortly",
                    code="imports_busy",
                    retry_after=RETRY_AFTER_S,
                )
            self._running += 1
            try:
                yield
            finally:
                self._running -= 1
        finally:
            await asyncio.shield(self._state.settle([Settle(key, lease=lease)]))

    async def run(self, owner_id: str, raw: bytes) -> Plan:
        """Prepare ``raw`` off the event loop, then write it (all or nothing)."""
        plan = await asyncio.to_thread(prepare, owner_id, raw)
        await self.write(owner_id, plan)
        return plan

    async def write(self, owner_id: str, plan: Plan) -> None:
        ids = [c.conversation_id for c in plan.conversations]
        gap = SQLITE_GAP_S if self._db.dialect == "sqlite" else 0.0
        semantic = self._chat.semantic is not None
        now = int(time.time() * 1000)
        meta = {"actor": owner_id, "imported": True}
        shown = [
            Event(c.conversation_id, len(c.events) + 1, ev.IMPORTED, {}, now, meta)
            for c in plan.conversations
        ]
        try:
            for batch in batches(plan, self._batch_events):
                async with self._db.write() as conn:
                    await ev.append(conn, batch, owner_id, publish=False)
                    await project_many(conn, batch)
                    if semantic:
                        await semantic_search.queue_many(conn, owner_id, _embeddable(batch))
                await asyncio.sleep(gap)
            async with self._db.write() as conn:
                await ev.append(conn, shown, owner_id)
                await project_many(conn, shown)
        except BaseException:
            await asyncio.shield(self._abandon(ids))
            raise
        for wake in self._chat.committed:
            wake()

    async def _abandon(self, ids: list[str]) -> None:
        """Remove what a failed import wrote (hidden conversations only: the last
        transaction, which shows them, either committed or wrote nothing), by id, so a
        conversation whose row is already gone loses its events and search rows too."""
        try:
            for start in range(0, len(ids), ABANDON_BATCH):
                async with self._db.write() as conn:
                    await forget(conn, ids[start : start + ABANDON_BATCH])
        except Exception as exc:  # the database is away: the purge sweep removes them
            log.warning("an import could not be rolled back", error=type(exc).__name__)


async def forget(conn: AsyncConnection, ids: list[str]) -> None:
    """Everything stored of these conversations."""
    await search.remove_many(conn, ids)
    await semantic_search.forget(conn, ids)
    await conn.execute(delete(messages).where(messages.c.conversation_id.in_(ids)))
    await conn.execute(delete(outbox).where(outbox.c.stream_id.in_(ids)))
    await conn.execute(delete(events).where(events.c.stream_id.in_(ids)))
    await conn.execute(delete(conversations).where(conversations.c.id.in_(ids)))


def _embeddable(batch: list[Event]) -> list[tuple[str, str]]:
    return [
        (e.stream_id, e.payload["id"])
        for e in batch
        if e.type == ev.MESSAGE_ADDED and e.payload["role"] in ("user", "assistant")
    ]
