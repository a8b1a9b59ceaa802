"""Answers whose instance died: saved as lost, exactly once, whoever notices.

An answer lives in the memory of the instance generating it and is saved when it ends. If
that instance dies first, two things notice. A follower on another instance (NATS) sees
the answer's frames stop (``Generations.follow_elsewhere``). And every instance runs a
sweeper (``LostAnswers``): each answer's start is recorded in the database
(``store/running.py``), the instance running it refreshes the record's heartbeat every
``heartbeat_s``, and a record whose heartbeat is older than ``stale_s`` belongs to a dead
instance (or to this one's previous life, after a crash). Either way the answer is saved
the same way (``save_lost``): as far as it got (what the bus kept of it; on the in-process
bus, which keeps nothing, what the record kept as of the last heartbeat), marked
``error``, under its own message id, so the conversation shows it, with Retry, rather than
a question left waiting.

Exactly once: the save deletes the record in its own transaction. The sweeper's delete is
the claim (conditional on the heartbeat still being stale): of two sweepers, one deletes
the row and saves, the other's delete finds nothing and its whole write rolls back. A
follower that saves first deletes the row, so no sweeper finds it; a follower that comes
second fails on the message id, which is the answer's primary key.

The saved message reaches the user's sessions as any saved message does (its event,
through the outbox); the sweeper also ends the answer's frames on the bus with the
follower's ``error`` (``generation_lost``) and ``done``, so an open tab streaming it stops
waiting, and a follower that comes later ends at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from parley.bus import Bus, BusError, Subjects
from parley.chat.conversations import Conversations, Within
from parley.chat.events import ConcurrentChange
from parley.chat.parts import text_part
from parley.chat.worker import Worker
from parley.errors import Conflict, NotFound, ParleyError
from parley.observability.logging import get_logger
from parley.store import running
from parley.store.db import Database

log = get_logger(__name__)
LOST_ERROR: dict[str, Any] = {
    "message": "the instance generating this answer stopped responding",
    "type": "api_error",
    "code": "generation_lost",
}
BATCH = 100
REPLAY_IDLE_S = 1.0
"""The sweeper reads what the bus kept of a lost answer until nothing comes for this long:
its instance is dead, so everything it sent is already kept."""
REPLAY_MAX_S = 30.0
"""... and for at most this long in all: an answer whose heartbeat failed but whose
instance still streams it is saved as far as it got by then."""
REPLAYS = 16
"""Lost answers read from the bus at once (after a crash that lost many, a second each
one after another would be minutes)."""


class Frame(msgspec.Struct):
    """What is kept of an answer's frames: enough to save it as lost."""

    type: str
    content: str = ""
    user_message_id: str | None = None
    model: str | None = None


class SoFar:
    """An answer as far as its frames went: its question, model and text."""

    def __init__(self, user_message_id: str | None = None, model: str | None = None) -> None:
        self.user_message_id = user_message_id
        self.model = model
        self.parts: list[str] = []
        self.ended = False

    def add(self, data: bytes) -> Frame:
        frame = msgspec.json.decode(data, type=Frame)
        if frame.type == "delta":
            self.parts.append(frame.content)
        elif frame.type == "start":
            self.user_message_id = frame.user_message_id or self.user_message_id
            self.model = frame.model or self.model
        elif frame.type == "model" and frame.model:
            self.model = frame.model
        elif frame.type == "done":
            self.ended = True
        return frame

    @property
    def text(self) -> str:
        return "".join(self.parts)


async def save_lost(
    conversations: Conversations,
    owner_id: str,
    conversation_id: str,
    message_id: str,
    *,
    so_far: SoFar,
    within: Within | None,
) -> None:
    """Save an answer whose instance died as far as it got, marked ``error``; ``within``
    deletes (or claims) its running record in the same transaction. Raises what the save
    raises: a ``Conflict`` when the answer is already saved."""
    await conversations.add_message(
        owner_id,
        conversation_id,
        role="assistant",
        content=text_part(so_far.text),
        parent_id=so_far.user_message_id,
        model=so_far.model,
        status="error",
        message_id=message_id,
        within=within,
    )


def forgets(db: Database | None, message_id: str) -> Within | None:
    """``within`` for a save that ends an answer: its running record goes with it."""
    if db is None:
        return None

    async def forget(conn: AsyncConnection) -> None:
        await running.forget(conn, message_id)

    return forget


class _Taken(Exception):
    """The record was claimed by another sweeper (or its heartbeat came back): the
    save this sweeper began is rolled back."""


class LostAnswers(Worker):
    """Every instance's heartbeat for its running answers, and its sweep for lost ones,
    each every ``heartbeat_s`` (the sweep also at once on start, for what a previous life
    left). The heartbeat is a loop of its own: a long sweep must not delay it, or this
    instance's own answers would look lost to the others."""

    name = "parley-lost-answers"

    def __init__(
        self,
        db: Database,
        conversations: Conversations,
        bus: Bus,
        subjects: Subjects,
        *,
        instance: str,
        running_ids: Callable[[], Collection[str]],
        running_texts: Callable[[], Mapping[str, str]] | None = None,
        heartbeat_s: float = 5.0,
        stale_s: float = 15.0,
        replay_idle_s: float = REPLAY_IDLE_S,
    ) -> None:
        super().__init__(poll_s=heartbeat_s, max_backoff_s=heartbeat_s)
        self._heartbeat_s = heartbeat_s
        self._beating: asyncio.Task[None] | None = None
        self._db = db
        self._conversations = conversations
        self._bus = bus
        self._subjects = subjects
        self._instance = instance
        self._running_ids = running_ids
        # Where the bus keeps no frames, the heartbeat keeps the text (at a statement per
        # answer instead of one in all), so a lost answer is saved as far as it got.
        self._running_texts = running_texts if not bus.keeps_history else None
        self._stale_s = stale_s
        self._replay_idle_s = replay_idle_s

    def start(self) -> None:
        super().start()
        self.kick()
        self._beating = asyncio.get_running_loop().create_task(
            self._beat_forever(), name="parley-heartbeat"
        )

    async def stop(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
            self._beating = None
        await super().stop()

    async def beat(self) -> int:
        """Refresh the heartbeat of the answers this instance runs (one statement, or one
        per answer with its text where the bus keeps none); how many records it
        refreshed."""
        if self._running_texts is not None:
            texts = self._running_texts()
            if not texts:
                return 0
            return await running.beat(self._db, self._instance, texts, _now_ms(), texts=texts)
        ids = list(self._running_ids())
        if not ids:
            return 0
        return await running.beat(self._db, self._instance, ids, _now_ms())

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await self.beat()
            except ParleyError as exc:  # the database is away: the next beat tries again
                log.warning("heartbeat of running answers failed", error=exc.message)

    async def step(self) -> int:
        """Save each stale answer (a batch). Returns the answers saved when the batch was
        full (look again at once), else 0."""
        saved, full = await self._sweep(_now_ms())
        return saved if full else 0  # a full batch: look again at once, if it got anywhere

    async def sweep(self, now_ms: int | None = None) -> int:
        """Save the answers whose records are stale (a batch); how many this sweeper
        saved (not those another claimed first)."""
        saved, _ = await self._sweep(now_ms or _now_ms())
        return saved

    async def _sweep(self, now_ms: int) -> tuple[int, bool]:
        before_ms = now_ms - int(self._stale_s * 1000)
        found = await running.stale(self._db, before_ms, BATCH)
        alive = set(self._running_ids())  # stale only if a heartbeat failed: not lost
        lost = [r for r in found if r.message_id not in alive]
        limit = asyncio.Semaphore(REPLAYS)

        async def read(record: running.Running) -> SoFar | None:
            async with limit:
                try:
                    return await self._so_far(record)
                except BusError as exc:  # the bus is away: what it kept may come back
                    log.warning("lost answer not read from the bus", error=str(exc))
                    return None

        saved = 0
        for record, so_far in zip(
            lost, await asyncio.gather(*(read(r) for r in lost)), strict=True
        ):
            if so_far is not None and await self._save(record, so_far, before_ms):
                saved += 1
        return saved, len(found) == BATCH

    async def _save(self, record: running.Running, so_far: SoFar, before_ms: int) -> bool:
        """Save one lost answer if this sweeper wins its record; whether it did."""

        async def claim(conn: AsyncConnection) -> None:
            if not await running.claim(conn, record.message_id, before_ms):
                raise _Taken

        try:
            await save_lost(
                self._conversations,
                record.owner_id,
                record.conversation_id,
                record.message_id,
                so_far=so_far,
                within=claim,
            )
        except _Taken:
            return False
        except ConcurrentChange:  # another write to the conversation: the next sweep
            return False
        except (NotFound, Conflict) as exc:  # the chat is gone, or the answer was saved
            log.info("lost answer not saved", message_id=record.message_id, reason=exc.message)
            async with self._db.write() as conn:
                await running.claim(conn, record.message_id, before_ms)
            return False
        log.info(
            "saved a lost answer",
            message_id=record.message_id,
            instance=record.instance_id,
            chars=len(so_far.text),
        )
        await self._end_frames(record)
        return True

    async def _so_far(self, record: running.Running) -> SoFar:
        """What the bus kept of the answer; on the in-process bus, which keeps nothing,
        the text its record kept as of the last heartbeat."""
        so_far = SoFar(record.user_message_id, record.model)
        if not self._bus.keeps_history:
            so_far.parts.append(record.so_far or "")
            return so_far
        subject = self._subjects.generation(
            record.owner_id, record.conversation_id, record.message_id
        )
        frames = self._bus.replay(subject, self._replay_idle_s)
        if frames is None:  # keeps_history said it would
            return so_far
        try:
            async with asyncio.timeout(REPLAY_MAX_S):
                async for data in frames:
                    if so_far.add(data).type == "done":
                        break
        except TimeoutError:
            pass  # nothing more is coming: its instance is dead
        except msgspec.DecodeError:
            pass  # not a frame Parley wrote: keep what was read
        finally:
            await frames.aclose()
        so_far.user_message_id = record.user_message_id
        return so_far

    async def _end_frames(self, record: running.Running) -> None:
        """End the answer's frames as a follower would see them end (best effort)."""
        subject = self._subjects.generation(
            record.owner_id, record.conversation_id, record.message_id
        )
        for event in (
            {"type": "error", "error": LOST_ERROR},
            {
                "type": "done",
                "status": "error",
                "user_message_id": record.user_message_id,
                "message_id": record.message_id,
            },
        ):
            try:
                await self._bus.emit(subject, msgspec.json.encode(event))
            except BusError as exc:
                log.warning("lost answer's end not sent", error=str(exc))
                return


def _now_ms() -> int:
    return int(time.time() * 1000)
