"""Answers whose instance died, on SQLite and PostgreSQL: two sweepers racing (each with an
engine of its own, as two instances have) save each lost answer exactly once; a heartbeat
keeps a running answer from being swept; a follower's save and a sweeper's never both
land; a lost answer of a deleted conversation is dropped, not retried for ever."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from sqlalchemy import func, select

from parley.bus import Subjects
from parley.bus.memory import MemoryBus
from parley.chat.conversations import Conversations
from parley.chat.lost import LostAnswers, SoFar, forgets, save_lost
from parley.chat.parts import text_part
from parley.errors import Conflict
from parley.store import running
from parley.store.db import Database
from parley.store.tables import events, messages, running_generations
from tests.integration.conftest import ADA

STALE_S = 10.0


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _question(chat: Conversations) -> tuple[str, str]:
    """A conversation of Ada's holding one question: (conversation id, question id)."""
    conversation = await chat.create(ADA, model="m")
    asked = await chat.add_message(
        ADA, conversation["id"], role="user", content=text_part("tell me a story")
    )
    return conversation["id"], asked["id"]


async def _running(
    db: Database, conversation_id: str, question_id: str, *, age_s: float, instance: str = "gone"
) -> str:
    """A running record whose heartbeat is ``age_s`` old; its answer's id."""
    message_id = uuid.uuid4().hex
    beat_ms = _now_ms() - int(age_s * 1000)
    await running.record(
        db,
        running.Running(
            message_id, conversation_id, ADA, question_id, "m", instance, beat_ms, beat_ms
        ),
    )
    return message_id


def _sweeper(
    db: Database,
    chat: Conversations,
    instance: str,
    runs: tuple[str, ...] = (),
    texts: dict[str, str] | None = None,
) -> LostAnswers:
    """An instance's sweeper (``runs``: the answers that instance is generating;
    ``texts``: the same with their text so far, which the in-process bus keeps nowhere)."""
    return LostAnswers(
        db,
        chat,
        MemoryBus(),
        Subjects(),
        instance=instance,
        running_ids=lambda: runs,
        running_texts=None if texts is None else lambda: texts,
        heartbeat_s=1.0,
        stale_s=STALE_S,
    )


async def _saved(db: Database, message_id: str) -> list[tuple[str, str]]:
    """(role, status) of every saved message with this id (0 or 1 rows: the primary key),
    after checking the event log holds exactly as many ``message.added`` for it."""
    async with db.read() as conn:
        rows = (
            await conn.execute(
                select(messages.c.role, messages.c.status).where(messages.c.id == message_id)
            )
        ).all()
        added = [
            e
            for e in (await conn.execute(select(events.c.payload))).scalars()
            if e.get("id") == message_id
        ]
    assert len(added) == len(rows)
    return [(r.role, r.status) for r in rows]


async def _records(db: Database) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(running_generations)) or 0)


async def test_two_sweepers_racing_save_each_lost_answer_exactly_once(
    db: Database, database_url: str
) -> None:
    other = Database(database_url)  # a second instance's engine: real concurrent writers
    try:
        chat_a, chat_b = Conversations(db), Conversations(other)
        lost = []
        for _ in range(6):
            conversation_id, question_id = await _question(chat_a)
            for _ in range(2):  # two answers to one question: the same conversation
                lost.append(await _running(db, conversation_id, question_id, age_s=STALE_S * 2))
        a, b = _sweeper(db, chat_a, "a"), _sweeper(other, chat_b, "b")
        total = 0
        for _ in range(6):  # a save that lost a version race to the other is swept again
            got = await asyncio.gather(a.sweep(), b.sweep())
            total += sum(got)
            if not await _records(db):
                break
        assert total == len(lost)
        for message_id in lost:
            assert await _saved(db, message_id) == [("assistant", "error")]
        assert await _records(db) == 0
    finally:
        await other.close()


async def test_a_heartbeat_keeps_a_running_answer_and_only_it(db: Database) -> None:
    chat = Conversations(db)
    conversation_id, question_id = await _question(chat)
    live = await _running(db, conversation_id, question_id, age_s=STALE_S * 2, instance="here")
    failed = await _running(db, conversation_id, question_id, age_s=STALE_S * 2, instance="here")
    # this instance still runs ``live``; ``failed`` ended but its save did not land
    assert await _sweeper(db, chat, "here", (live,)).beat() == 1
    assert await _sweeper(db, chat, "elsewhere").sweep() == 1
    assert await _saved(db, live) == []
    assert await _saved(db, failed) == [("assistant", "error")]
    assert await _records(db) == 1


async def test_where_the_bus_keeps_nothing_the_heartbeat_keeps_the_text(db: Database) -> None:
    """The embedded tier's bus keeps no frames: the heartbeat stores each running answer's
    text so far, and the answer lost afterwards is saved with it."""
    chat = Conversations(db)
    conversation_id, question_id = await _question(chat)
    live = await _running(db, conversation_id, question_id, age_s=0, instance="here")
    texts = {live: "Once upon a time"}
    here = _sweeper(db, chat, "here", (live,), texts)
    assert await here.beat() == 1
    texts[live] = "Once upon a time, there was"
    assert await here.beat() == 1  # the record keeps the latest text, not the first
    later_ms = _now_ms() + int(STALE_S * 2000)  # its instance died: no heartbeat since
    assert await _sweeper(db, chat, "elsewhere").sweep(later_ms) == 1
    async with db.read() as conn:
        saved = (
            await conn.execute(select(messages.c.content).where(messages.c.id == live))
        ).scalar_one()
    assert saved == text_part("Once upon a time, there was")
    assert await _records(db) == 0


async def test_a_follower_and_a_sweeper_never_both_save_an_answer(db: Database) -> None:
    chat = Conversations(db)
    conversation_id, question_id = await _question(chat)
    sweeper = _sweeper(db, chat, "b")

    # the follower first: its save deletes the record, so no sweeper finds it
    first = await _running(db, conversation_id, question_id, age_s=STALE_S * 2)
    so_far = SoFar(question_id, "m")
    so_far.parts.append("once upon")
    await save_lost(chat, ADA, conversation_id, first, so_far=so_far, within=forgets(db, first))
    assert await sweeper.sweep() == 0
    assert await _saved(db, first) == [("assistant", "error")]

    # the sweeper first: the follower's save fails on the answer's id
    second = await _running(db, conversation_id, question_id, age_s=STALE_S * 2)
    assert await sweeper.sweep() == 1
    with pytest.raises(Conflict):
        await save_lost(
            chat, ADA, conversation_id, second, so_far=so_far, within=forgets(db, second)
        )
    assert await _saved(db, second) == [("assistant", "error")]
    assert await _records(db) == 0


async def test_a_lost_answer_of_a_deleted_conversation_is_dropped(db: Database) -> None:
    chat = Conversations(db)
    conversation_id, question_id = await _question(chat)
    message_id = await _running(db, conversation_id, question_id, age_s=STALE_S * 2)
    await chat.delete(ADA, conversation_id)
    assert await _sweeper(db, chat, "b").sweep() == 0
    assert await _saved(db, message_id) == []
    assert await _records(db) == 0
