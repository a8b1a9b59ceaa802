"""What the sampled gauges read (``services.GaugeSampler``), on SQLite and PostgreSQL:
the event outbox's backlog and the age of its oldest row (the bus lag), and the mail
outbox's backlog, which leaves out mail given up on."""

from __future__ import annotations

import time

from sqlalchemy import update

from parley.bus import Subjects
from parley.bus.memory import MemoryBus
from parley.chat.outbox import Relay
from parley.mail.outbox import MailOutbox
from parley.store.db import Database
from parley.store.tables import mail_outbox, outbox
from tests.integration.conftest import ADA


async def test_the_event_outbox_backlog_and_the_bus_lag(db: Database) -> None:
    bus = MemoryBus()
    await bus.start()
    relay = Relay(db, bus, Subjects())
    assert await relay.backlog() == (0, 0.0)
    now = int(time.time() * 1000)
    async with db.write() as conn:
        for version, created in ((1, now - 30_000), (2, now)):
            await conn.execute(
                outbox.insert().values(
                    owner_id=ADA, stream_id=ADA, version=version, data=b"{}", created_ms=created
                )
            )
    waiting, waited = await relay.backlog()
    assert waiting == 2
    assert 29.5 < waited < 120  # the oldest row's age, not the newest's
    assert await relay.drain() == 2
    assert await relay.backlog() == (0, 0.0)
    await bus.close()


async def test_the_mail_backlog_leaves_out_mail_given_up_on(db: Database) -> None:
    mail = MailOutbox(db, None)
    assert await mail.backlog() == 0
    for n in range(3):
        await mail.enqueue("password_reset", f"user{n}@example.com", {"n": str(n)})
    assert await mail.backlog() == 3
    first = min(r["id"] for r in await mail.pending())
    async with db.write() as conn:
        await conn.execute(update(mail_outbox).where(mail_outbox.c.id == first).values(failed_ms=1))
    assert await mail.backlog() == 2
