"""Conversation reads at size, through Parley's own service (``chat/conversations.py``):

* listing a user's conversations (first page of 50, and a page deep into the list) among
  1,000 conversations;
* loading the newest page (50 messages) of a 5,000-message conversation, and a page near
  its start (the branch walked from there);

each against the floor measured in the same run: one primary-key read of a message.

    python -m bench.chat [--database-url postgresql://...] [--messages 5000]

SQLite in a temporary file by default. Bounded by counts; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from bench.common import FLOOR_HEADERS, database_url, print_table, rows_against_floor
from parley.chat.conversations import Conversations
from parley.store import migrate
from parley.store.db import Database
from parley.store.tables import messages, users

OWNER = "b" * 32


async def run(url: str, n_messages: int, n_conversations: int, repeats: int) -> list[list[Any]]:
    db = Database(url)
    await migrate.upgrade(db)
    async with db.write() as conn:
        await conn.execute(users.delete().where(users.c.id == OWNER))
        await conn.execute(
            users.insert().values(
                id=OWNER,
                email="bench@example.com",
                name="Bench",
                password_hash="!",  # noqa: S106 - no password: this user never logs in
                is_admin=False,
                disabled=False,
                mfa_enabled=False,
                created_ms=0,
            )
        )
    chat = Conversations(db)
    started = time.perf_counter()
    long = await chat.create(OWNER, title="long", model="m")
    ids = []
    for i in range(n_messages):
        role = "user" if i % 2 == 0 else "assistant"
        text = f"message {i}: " + "some words of a realistic length " * 4
        added = await chat.add_message(
            OWNER, long["id"], role=role, content=[{"type": "text", "text": text}]
        )
        ids.append(added["id"])
    for i in range(n_conversations - 1):
        await chat.create(OWNER, title=f"conversation {i}")
    setup_s = time.perf_counter() - started

    first_page, cursor = await chat.page(OWNER, limit=50)
    deep_cursor = cursor
    for _ in range(10):
        _, deep_cursor = await chat.page(OWNER, limit=50, cursor=deep_cursor)
    probe = ids[n_messages // 2]

    async def floor() -> None:
        async with db.read() as conn:
            await conn.execute(select(messages).where(messages.c.id == probe))

    scenarios: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("one message by primary key (floor)", floor),
        ("list: first page of 50", lambda: chat.page(OWNER, limit=50)),
        ("list: page 12 of 50 (cursor)", lambda: chat.page(OWNER, limit=50, cursor=deep_cursor)),
        (f"load: newest 50 of {n_messages}", lambda: chat.branch(OWNER, long["id"], limit=50)),
        (
            f"load: 50 ending at message 100 of {n_messages}",
            lambda: chat.branch(OWNER, long["id"], limit=50, before=ids[99]),
        ),
    ]
    rows = await rows_against_floor(scenarios, repeats)
    assert len(first_page) == 50
    await db.close()
    print(f"setup: {n_messages} messages + {n_conversations} conversations in {setup_s:.1f} s")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url(args.database_url, tmp, "chat.db")
        rows = asyncio.run(run(url, args.messages, args.conversations, args.repeats))
    print_table(["read", "repeats", *FLOOR_HEADERS], rows)


if __name__ == "__main__":
    main()
