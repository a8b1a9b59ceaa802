"""The batched import writer on SQLite and PostgreSQL: its read models are the ones the
event-by-event projection rebuilds, and a batch that fails after others committed takes
the whole import with it (nothing of any of its conversations is left)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select, text

from parley.chat.conversations import EXPORT_FORMAT, Conversations
from parley.chat.imports import Importer, prepare
from parley.errors import Conflict
from parley.state.memory import MemoryState
from parley.store.db import Database
from parley.store.tables import conversations, events, messages, outbox
from tests.e2e.test_conversations import _log_and_models
from tests.integration.conftest import ADA, BOB


def export(title: str, size: int) -> dict[str, Any]:
    """A Parley export: a chain of ``size`` messages with a second answer to the first
    question (a branch), the current branch the chain."""
    rows = [
        {
            "id": f"m{n}",
            "parent_id": f"m{n - 1}" if n else None,
            "role": "user" if n % 2 == 0 else "assistant",
            "content": [{"type": "text", "text": f"{title} message {n}"}],
        }
        for n in range(size)
    ]
    rows.append({"id": "alt", "parent_id": "m0", "role": "assistant", "content": []})
    return {
        "format": EXPORT_FORMAT,
        "conversation": {"title": title, "current_leaf_id": f"m{size - 1}"},
        "messages": rows,
    }


def chatgpt(*sizes: int) -> bytes:
    """ChatGPT's ``conversations.json`` with one chain of each size."""
    data = [
        {
            "title": f"chat {c}",
            "mapping": {
                f"{c}-{n}": {
                    "id": f"{c}-{n}",
                    "message": {
                        "author": {"role": "user"},
                        "content": {"content_type": "text", "parts": [f"chat {c} message {n}"]},
                    },
                    "parent": f"{c}-{n - 1}" if n else None,
                    "children": [f"{c}-{n + 1}"] if n < size - 1 else [],
                }
                for n in range(size)
            },
        }
        for c, size in enumerate(sizes)
    ]
    return json.dumps(data).encode()


async def count(db: Database, table: Any) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def searchable(db: Database) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM message_search")) or 0)


async def test_the_batched_writer_builds_the_read_models_a_rebuild_builds(
    db: Database, database_url: str
) -> None:
    chat = Conversations(db)
    importer = Importer(db, chat, MemoryState(), batch_events=7)  # batches split chains
    single = prepare(ADA, json.dumps(export("one", 23)).encode())
    await importer.write(ADA, single)
    await chat.create(BOB, title="bob's")
    live = await _log_and_models(database_url)
    await chat.rebuild_projections()
    assert await _log_and_models(database_url) == live
    [conversation] = await chat.get_many(ADA, [single.conversations[0].conversation_id])
    assert conversation["message_count"] == 24
    page, _ = await chat.branch_of(conversation, limit=2)
    assert [m["content"][0]["text"] for m in page] == ["one message 21", "one message 22"]


async def test_a_batch_failing_after_others_committed_leaves_nothing_of_the_import(
    db: Database,
) -> None:
    chat = Conversations(db)
    kept = await chat.create(BOB, title="bob's")
    before = [await count(db, t) for t in (conversations, messages, events, outbox)]
    before.append(await searchable(db))
    importer = Importer(db, chat, MemoryState(), batch_events=5)
    plan = prepare(ADA, chatgpt(12, 3, 9))
    # the last conversation reuses a message id of the first: its batch, the sixth of
    # six, fails on the messages' primary key after five batches committed
    last, first = plan.conversations[-1].events[-1], plan.conversations[0].events[1]
    last.payload["id"] = first.payload["id"]
    with pytest.raises(Conflict):
        await importer.write(ADA, plan)
    after = [await count(db, t) for t in (conversations, messages, events, outbox)]
    assert [*after, await searchable(db)] == before
    assert (await chat.get(BOB, kept["id"]))["title"] == "bob's"
    assert await chat.page(ADA) == ([], None)
