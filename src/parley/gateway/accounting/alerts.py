"""Budget alerts: a webhook when a budget's spend crosses a threshold (50%, 80%, 100%...).

Admission reports each hard budget's committed spend (settled spend plus reservations in
flight, this request's included) as it admits a request, and 100% when it refuses one.
A crossed threshold becomes a row in ``alert_deliveries`` whose id names the holder, the
period and the threshold: the insert is the deduplication across instances
(``store/alerts.py``). A sender on every instance claims due rows and POSTs them, retrying
failures with exponential backoff until ``max_attempts``; each instance remembers what it
has already queued so a busy budget costs no database write per request.

The request: ``POST`` JSON ``{"id", "type": "budget.threshold", "scope", "holder",
"period", "threshold_percent", "spent_usd", "budget_usd", "created"}`` with
``x-parley-event-id`` (the same on every retry: receivers deduplicate on it) and
``x-parley-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` keyed with
the configured secret. Other events share the outbox and the signature: a usage anomaly
(``identity/anomaly.py``) is queued with its own body, ``"type": "usage.anomaly"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from parley.errors import ParleyError
from parley.gateway.accounting.caller import Principal
from parley.observability.logging import get_logger
from parley.store import alerts as store
from parley.store.db import Database

if TYPE_CHECKING:
    import aiohttp  # imported by the first webhook: ~0.25 s of start-up otherwise

log = get_logger(__name__)

_SEEN_MAX = 100_000


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``x-parley-signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class BudgetAlerts:
    def __init__(
        self,
        db: Database,
        *,
        url: str | None,
        secret: str | None,
        default_thresholds: Sequence[float] = (),
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 300.0,
        max_attempts: int = 8,
        poll_s: float = 1.0,
        lease_s: float = 30.0,
        timeout_s: float = 10.0,
    ) -> None:
        self._db = db
        self._url = url
        self._secret = secret or ""
        self._default = tuple(default_thresholds)
        self._base = backoff_base_s
        self._max = backoff_max_s
        self._attempts = max_attempts
        self._poll = poll_s
        self._lease_ms = int(lease_s * 1000)
        self._timeout = timeout_s
        self._seen: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return self._url is not None

    def observe(self, principal: Principal, period: str, spent: int, budget: int) -> None:
        """A budget's committed spend after an admission (or ``budget`` on a refusal):
        queue every threshold it has reached and this instance has not queued yet."""
        if self._url is None or budget <= 0:
            return
        thresholds = principal.limits.alert_thresholds or self._default
        share = spent * 100 / budget
        for threshold in thresholds:
            if share + 1e-9 < threshold:
                continue
            ident = f"{principal.scope}:{principal.id}:{period}:{threshold:g}"
            if ident in self._seen:
                continue
            if len(self._seen) >= _SEEN_MAX:
                self._seen.clear()
            self._seen.add(ident)
            event = store.AlertEvent(
                ident,
                principal.scope,
                principal.id,
                period,
                threshold,
                spent,
                budget,
                int(time.time() * 1000),
            )
            task = asyncio.get_running_loop().create_task(self._record(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def queue(self, event: store.AlertEvent) -> bool:
        """Queue another kind of event (its ``payload`` set) for the same webhook; False
        when no webhook is configured or the event was already queued."""
        if self._url is None:
            return False
        queued = await store.record(self._db, event)
        if queued:
            self._wake.set()
        return queued

    async def _record(self, event: store.AlertEvent) -> None:
        try:
            if await store.record(self._db, event):
                log.info("budget alert queued", id=event.id)
                self._wake.set()
        except ParleyError as exc:
            self._seen.discard(event.id)  # let a later request try again
            log.warning("could not queue a budget alert", id=event.id, error=exc.message)

    def start(self) -> None:
        if self._url is not None:
            self._loop = asyncio.create_task(self._run(), name="parley-budget-alerts")

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            try:
                await self.send_due()
            except ParleyError as exc:
                log.warning("budget alert sender failed; will retry", error=exc.message)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    async def send_due(self) -> int:
        """Send what is due now; returns how many were attempted."""
        now = int(time.time() * 1000)
        rows = await store.claim_due(self._db, now, self._lease_ms)
        for row in rows:
            await self._send(row)
        return len(rows)

    async def _send(self, row: dict[str, object]) -> None:
        assert self._url is not None
        ident = str(row["id"])
        attempts = int(str(row["attempts"])) + 1
        payload = row.get("payload")
        body = (
            payload.encode()
            if isinstance(payload, str)
            else json.dumps(
                {
                    "id": ident,
                    "type": "budget.threshold",
                    "scope": row["scope"],
                    "holder": row["holder"],
                    "period": row["period"],
                    "threshold_percent": row["threshold"],
                    "spent_usd": int(str(row["spent_nusd"])) / 1e9,
                    "budget_usd": int(str(row["budget_nusd"])) / 1e9,
                    "created": row["created_ms"],
                },
                separators=(",", ":"),
            ).encode()
        )
        stamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "x-parley-event-id": ident,
            "x-parley-signature": sign(self._secret, stamp, body),
        }
        import aiohttp  # noqa: PLC0415 - on the first webhook, not at start-up

        error: str | None = None
        try:
            session = self._session or aiohttp.ClientSession()
            self._session = session
            timeout = aiohttp.ClientTimeout(total=self._timeout)
            async with session.post(self._url, data=body, headers=headers, timeout=timeout) as r:
                if r.status >= 300:
                    error = f"HTTP {r.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = type(exc).__name__
        now = int(time.time() * 1000)
        if error is None:
            await store.delivered(self._db, ident, attempts, now)
            log.info("budget alert delivered", id=ident, attempts=attempts)
            return
        next_ms = None
        if attempts < self._attempts:
            next_ms = now + int(min(self._max, self._base * 2 ** (attempts - 1)) * 1000)
        await store.attempt_failed(self._db, ident, attempts, next_ms, error)
        log.warning("budget alert not delivered", id=ident, attempts=attempts, error=error)
