"""The mail outbox shared by two senders (two instances: their own engines, one database)
on SQLite and PostgreSQL: every message reaches the real SMTP server (aiosmtpd) exactly
once, however the two race for the rows; a row whose composer fails is retried later."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Any

from parley.mail.outbox import MailOutbox, RetryPolicy
from parley.mail.smtp import SmtpSender, SmtpSettings
from parley.mail.templates import render
from parley.store.db import Database
from tests.smtp import smtp_server


async def _compose(kind: str, to: str, data: dict[str, Any]) -> EmailMessage:
    return render(kind, to, {"name": data["n"], "link": "http://h/x", "minutes": "30"})


async def _drain(outbox: MailOutbox) -> int:
    total = 0
    while handled := await outbox.step():
        total += handled
    return total


async def test_two_senders_deliver_each_message_once(database_url: str, db: Database) -> None:
    with smtp_server() as (inbox, port):
        sender = SmtpSender(SmtpSettings(host="127.0.0.1", port=port, security="none"))
        other_db = Database(database_url)
        try:
            a = MailOutbox(db, sender, batch=3)
            b = MailOutbox(other_db, sender, batch=3)
            a.compose = b.compose = _compose
            for n in range(24):
                await (a if n % 2 else b).enqueue(
                    "password_reset", f"user{n}@example.com", {"n": str(n)}
                )
            handled = await asyncio.gather(_drain(a), _drain(b))
            assert sum(handled) == 24
            inbox.wait(24)
            await asyncio.sleep(0.2)
            addresses = sorted(m["To"] for m in inbox.messages)
            assert addresses == sorted(f"user{n}@example.com" for n in range(24))
            assert await a.pending() == []  # delivered rows are gone
        finally:
            await other_db.close()


async def test_a_failed_attempt_waits_for_its_backoff(db: Database) -> None:
    with smtp_server() as (inbox, port):
        sender = SmtpSender(SmtpSettings(host="127.0.0.1", port=port, security="none"))
        outbox = MailOutbox(db, sender, retry=RetryPolicy(max_attempts=2, base_s=0.2))
        calls: list[str] = []

        async def flaky(kind: str, to: str, data: dict[str, Any]) -> EmailMessage:
            calls.append(to)
            if len(calls) == 1:
                raise RuntimeError("template inputs unavailable")
            return await _compose(kind, to, data)

        outbox.compose = flaky
        await outbox.enqueue("password_reset", "ada@example.com", {"n": "1"})
        assert await outbox.step() == 1  # tried, failed
        [row] = await outbox.pending()
        assert (row["attempts"], row["failed_ms"]) == (1, None)
        assert "template inputs unavailable" in row["last_error"]
        assert await outbox.step() == 0  # not due yet
        await asyncio.sleep(0.3)
        assert await outbox.step() == 1
        assert [m["To"] for m in inbox.wait(1)] == ["ada@example.com"]
        assert await outbox.pending() == []
