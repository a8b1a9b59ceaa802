"""The event bus on both backends (in process, NATS JetStream), and the outbox relay on
SQLite and PostgreSQL: every stored event reaches the bus in order, a relay that dies
between publishing and deleting republishes and consumers drop the duplicate, a bus that is
down loses nothing, and only one relay works at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest
from sqlalchemy import func, select

from parley.bus import Bus, BusError, Subjects
from parley.bus.base import matches, token
from parley.bus.memory import MemoryBus
from parley.bus.nats import NatsBus
from parley.chat.conversations import Conversations
from parley.chat.live import Hub
from parley.chat.outbox import Relay
from parley.store.db import Database
from parley.store.tables import outbox
from tests.backends import NATS_URL, nats_namespace
from tests.integration.conftest import ADA as OWNER
from tests.integration.conftest import BOB as OTHER
from tests.polling import eventually_async as eventually


@pytest.fixture(params=["memory", "nats"])
def namespace(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for the in-process bus; else a NATS namespace of this test's own."""
    if request.param == "memory":
        yield None
        return
    yield from nats_namespace()


@pytest.fixture
async def bus(namespace: str | None) -> AsyncIterator[Bus]:
    made: Bus = MemoryBus() if namespace is None else NatsBus(NATS_URL, Subjects(namespace))
    await made.start()
    yield made
    await made.close()


def subjects_of(bus: Bus) -> Subjects:
    return bus._subjects if isinstance(bus, NatsBus) else Subjects()


class Seen:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def __call__(self, subject: str, data: bytes) -> None:
        self.messages.append((subject, data))


def test_subjects_refuse_ids_that_would_widen_them() -> None:
    for bad in ("*", ">", "a.b", "", "a b", "x" * 200):
        with pytest.raises(ValueError, match="subject token"):
            token(bad)
    assert matches("p.u.a.>", "p.u.a.ev.c")
    assert not matches("p.u.a.>", "p.u.b.ev.c")
    assert matches("p.u.*.gen.*.*", "p.u.a.gen.c.m")
    assert not matches("p.u.*.gen.*.*", "p.u.a.ev.c")


async def test_a_user_subscription_sees_that_users_events_and_frames_only(bus: Bus) -> None:
    subjects = subjects_of(bus)
    seen = Seen()
    sub = await bus.subscribe(subjects.user(OWNER), seen)
    await bus.publish(
        [
            (subjects.event(OWNER, "c1"), b"1", "c1:1"),
            (subjects.event(OTHER, "c2"), b"x", "c2:1"),
            (subjects.event(OWNER, "c1"), b"2", "c1:2"),
        ]
    )
    await bus.emit(subjects.generation(OWNER, "c1", "m1"), b"delta")
    await bus.emit(subjects.generation(OTHER, "c2", "m2"), b"theirs")
    await eventually(lambda: len(seen.messages) >= 3)
    await asyncio.sleep(0.05)  # anything misrouted would have arrived by now
    assert [data for _, data in seen.messages] == [b"1", b"2", b"delta"]
    await sub.unsubscribe()
    await bus.emit(subjects.generation(OWNER, "c1", "m1"), b"after")
    await asyncio.sleep(0.05)
    assert len(seen.messages) == 3


async def test_nats_replays_an_answer_from_its_first_frame_then_live(namespace: str | None) -> None:
    if namespace is None:
        pytest.skip("the in-process bus keeps no history: the generation holds its frames")
    bus = NatsBus(NATS_URL, Subjects(namespace))
    await bus.start()
    try:
        subject = Subjects(namespace).generation(OWNER, "c1", "m1")
        assert not await bus.has(subject)
        for frame in (b"start", b"d1", b"d2"):
            await bus.emit(subject, frame)
        await eventually(lambda: bus.has(subject))
        frames = bus.replay(subject, idle_s=2)
        got = [await anext(frames) for _ in range(3)]
        assert got == [b"start", b"d1", b"d2"]  # joined late, from the start
        await bus.emit(subject, b"done")
        assert await anext(frames) == b"done"  # then live
        with pytest.raises(TimeoutError):
            await anext(frames)  # quiet for idle_s: the generating instance is gone
        await frames.aclose()
    finally:
        await bus.delete_streams()
        await bus.close()


async def test_jetstream_drops_a_republished_event(namespace: str | None) -> None:
    if namespace is None:
        pytest.skip("duplicates come from a relay restart, which the in-process bus cannot see")
    bus = NatsBus(NATS_URL, Subjects(namespace))
    await bus.start()
    try:
        subject = Subjects(namespace).event(OWNER, "c1")
        await bus.publish([(subject, b"v1", "c1:1")])
        await bus.publish([(subject, b"v1", "c1:1"), (subject, b"v2", "c1:2")])
        info = await bus._client[1].stream_info(bus.events_stream)
        assert info.state.messages == 2
    finally:
        await bus.delete_streams()
        await bus.close()


# --- the outbox relay ------------------------------------------------------------------


class Flaky:
    """A bus that fails on demand: before publishing (down) or after (a relay that died
    between publishing and deleting)."""

    def __init__(self, inner: Bus) -> None:
        self.inner = inner
        self.down = False
        self.die_after_publish = False

    async def publish(self, messages: list[tuple[str, bytes, str]]) -> None:
        if self.down:
            raise BusError("down")
        await self.inner.publish(messages)
        if self.die_after_publish:
            self.die_after_publish = False
            raise BusError("died after publishing")

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def pending(db: Database) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(outbox)) or 0)


async def test_relay_publishes_every_event_once_in_order_despite_crash_and_outage(
    db: Database, bus: Bus
) -> None:
    subjects = subjects_of(bus)
    flaky = Flaky(bus)
    relay = Relay(db, flaky, subjects)  # type: ignore[arg-type]
    chat = Conversations(db)
    hub = Hub(bus, subjects)
    session = await hub.join(OWNER)

    conversation = await chat.create(OWNER, title="one")
    cid = conversation["id"]
    await chat.rename(OWNER, cid, "two")
    assert await pending(db) == 2  # stored with the events, not yet published

    flaky.down = True
    with pytest.raises(BusError):
        await relay.step()
    assert await pending(db) == 2  # nothing lost while the bus is down

    flaky.down, flaky.die_after_publish = False, True
    with pytest.raises(BusError):
        await relay.step()  # published, then died before deleting
    assert await pending(db) == 2
    await chat.rename(OWNER, cid, "three")
    assert await relay.drain() == 3  # the two again, and the new one
    assert await pending(db) == 0

    got: list[int] = []

    def versions() -> list[int]:
        while not session.queue.empty():
            got.append(msgspec.json.decode(session.queue.get_nowait())["event"]["version"])
        return got

    await eventually(lambda: len(versions()) >= 3)
    await asyncio.sleep(0.05)
    assert versions() == [1, 2, 3]  # the republished 1 and 2 were dropped by the hub
    await hub.leave(session)


async def test_relay_started_late_publishes_what_an_earlier_run_left(
    db: Database, bus: Bus
) -> None:
    subjects = subjects_of(bus)
    chat = Conversations(db)  # no relay running: as if the process died after committing
    made = await chat.create(OWNER)
    seen = Seen()
    await bus.subscribe(subjects.user(OWNER), seen)
    relay = Relay(db, bus, subjects, poll_s=0.05)
    relay.start()
    try:
        await eventually(lambda: len(seen.messages) == 1)
    finally:
        await relay.stop()
    assert seen.messages[0][0] == subjects.event(OWNER, made["id"])
    assert await pending(db) == 0


async def test_one_relay_at_a_time_on_postgresql(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite serves one process: there is no second relay to exclude")
    gate = asyncio.Event()
    entered = asyncio.Event()

    class Slow(MemoryBus):
        async def publish(self, messages: list[tuple[str, bytes, str]]) -> None:
            entered.set()
            await gate.wait()

    subjects = Subjects()
    await Conversations(db).create(OWNER)
    first = asyncio.create_task(Relay(db, Slow(), subjects).step())
    await entered.wait()
    assert await Relay(db, MemoryBus(), subjects).step() == -1  # locked out
    gate.set()
    assert await first == 1
    assert await pending(db) == 0
