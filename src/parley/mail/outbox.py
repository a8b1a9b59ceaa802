"""The mail outbox: requests insert a row, a sender on every instance delivers it.

A request never talks to the SMTP server: it inserts one ``mail_outbox`` row (in the
database, so a restart loses nothing) and wakes the local sender. Senders on several
instances share the table through a *claim with a lease*: one ``UPDATE ... WHERE id IN
(due rows) AND <still unclaimed>`` stamps a batch with a fresh claim id and a lease
deadline, then the sender reads back the rows carrying its claim. The unclaimed condition
sits on the ``UPDATE`` itself, so PostgreSQL re-checks it on the row version it locks (a
second sender racing for the same row finds it claimed and skips it), and SQLite runs the
statement under its single writer lock; both give each row to exactly one sender. A
sender that dies mid-batch leaves its rows leased; they become due again once the lease
ends (longer than any SMTP attempt may take).

Failures are retried with exponential backoff (``base_s`` doubling up to ``max_s``) until
``max_attempts``, then the row is marked failed and kept for the operator. Delivery is
at least once: a sender killed after the server accepted a message but before deleting
its row sends it again after the lease. A delivered row is deleted: the outbox keeps no
copy of what was sent.

What a row becomes is decided at send time by ``compose`` (the identity layer mints the
link's token then, so no plaintext token is ever stored); ``None`` drops the row unsent
(a reset asked for an address with no account).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from sqlalchemy import delete, func, or_, select, update

from parley.mail.smtp import SmtpSender
from parley.observability.logging import get_logger
from parley.store.db import Database
from parley.store.tables import mail_outbox

log = get_logger(__name__)

Composer = Callable[[str, str, dict[str, Any]], Awaitable[EmailMessage | None]]
"""(kind, recipient, data) -> the message to send, or None to drop the row."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base_s: float = 2.0
    max_s: float = 600.0

    def delay_s(self, attempts: int) -> float:
        return float(min(self.max_s, self.base_s * 2 ** max(0, attempts - 1)))


def _now_ms() -> int:
    return int(time.time() * 1000)


class MailOutbox:
    def __init__(
        self,
        db: Database,
        sender: SmtpSender | None,
        *,
        retry: RetryPolicy | None = None,
        poll_s: float = 1.0,
        batch: int = 20,
    ) -> None:
        self._db = db
        self.sender = sender
        self.compose: Composer | None = None
        self._retry = retry or RetryPolicy()
        self._poll_s = poll_s
        self._batch = batch
        timeout = sender.settings.timeout_s if sender else 10.0
        self._lease_ms = int(max(30.0, 4 * timeout) * 1000)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """Whether mail can be sent at all (an SMTP server is configured)."""
        return self.sender is not None

    async def enqueue(self, kind: str, to: str, data: dict[str, Any]) -> None:
        now = _now_ms()
        async with self._db.write() as conn:
            await conn.execute(
                mail_outbox.insert().values(
                    kind=kind, to_addr=to, data=data, created_ms=now, next_try_ms=now, attempts=0
                )
            )
        self._wake.set()

    async def backlog(self) -> int:
        """Mail not yet sent nor given up on (rows kept as failed are not a backlog)."""
        async with self._db.read() as conn:
            found = await conn.scalar(
                select(func.count())
                .select_from(mail_outbox)
                .where(mail_outbox.c.sent_ms.is_(None), mail_outbox.c.failed_ms.is_(None))
            )
        return int(found or 0)

    def start(self) -> None:
        if self.sender is not None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="parley-mail")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                handled = await self.step()
            except Exception as exc:  # the database is away: try again at the next poll
                log.warning("mail outbox step failed", error=str(exc))
                handled = 0
            if handled:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()
            self._wake.clear()

    async def _claim(self) -> tuple[str, list[Any]]:
        now = _now_ms()
        claim = uuid.uuid4().hex
        c = mail_outbox.c
        free = (
            c.sent_ms.is_(None),
            c.failed_ms.is_(None),
            c.next_try_ms <= now,
            or_(c.lease_until_ms.is_(None), c.lease_until_ms < now),
        )
        due = select(c.id).where(*free).order_by(c.id).limit(self._batch)
        async with self._db.write() as conn:
            await conn.execute(
                update(mail_outbox)
                .where(c.id.in_(due), *free)
                .values(claim=claim, lease_until_ms=now + self._lease_ms, attempts=c.attempts + 1)
            )
        async with self._db.read() as conn:
            rows = (await conn.execute(select(mail_outbox).where(c.claim == claim))).all()
        return claim, list(rows)

    async def step(self) -> int:
        """Claim one batch and try each row once; how many rows were handled."""
        if self.sender is None or self.compose is None:
            return 0
        claim, rows = await self._claim()
        for row in rows:
            await self._deliver(claim, row)
        return len(rows)

    async def _deliver(self, claim: str, row: Any) -> None:
        assert self.sender is not None
        assert self.compose is not None
        c = mail_outbox.c
        mine = (c.id == row.id, c.claim == claim)
        try:
            message = await self.compose(row.kind, row.to_addr, dict(row.data))
            if message is not None:
                await self.sender.send(message)
        except Exception as exc:  # the server, or composing the message, failed: retry later
            now = _now_ms()
            last = row.attempts >= self._retry.max_attempts
            log.warning(
                "mail not sent", kind=row.kind, attempt=row.attempts, final=last, error=str(exc)
            )
            async with self._db.write() as conn:
                await conn.execute(
                    update(mail_outbox)
                    .where(*mine)
                    .values(
                        claim=None,
                        lease_until_ms=None,
                        next_try_ms=now + int(self._retry.delay_s(row.attempts) * 1000),
                        last_error=str(exc)[:500],
                        failed_ms=now if last else None,
                    )
                )
            return
        async with self._db.write() as conn:
            await conn.execute(delete(mail_outbox).where(*mine))
        log.info("mail sent" if message is not None else "mail dropped", kind=row.kind)

    async def pending(self) -> list[dict[str, Any]]:
        """Rows not yet delivered (for operators and tests)."""
        async with self._db.read() as conn:
            rows = await conn.execute(select(mail_outbox).order_by(mail_outbox.c.id))
            return [dict(r._mapping) for r in rows]
