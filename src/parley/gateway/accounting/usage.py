"""Usage records: one per request, queued without blocking it, written to SQL in batches.

The queue is in-process in the embedded tier (flushed by size or every
``usage_flush_seconds``, drained on graceful shutdown) or a Redis stream when Redis is
configured: an entry is in Redis before the response completes, so an instance killed
outright loses nothing. Another instance's writer claims entries a dead writer had read
but not written.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import msgspec

from parley.errors import ParleyError
from parley.observability.logging import get_logger
from parley.observability.metrics import Metrics

log = get_logger(__name__)


class UsageRecord(msgspec.Struct, omit_defaults=True):
    request_id: str
    time_ms: int
    model_group: str
    status: int
    key_id: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    deployment: str | None = None
    route_tier: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_nusd: int = 0
    latency_ms: int = 0
    ttft_ms: int | None = None
    cache: str | None = None
    client_ip: str | None = None


USAGE_COLUMNS: tuple[str, ...] = UsageRecord.__struct_fields__
"""The order of the values in each row a writer gets."""

_DROP_LOG_EVERY = 10_000
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(UsageRecord).decode


class UsageQueue(Protocol):
    async def put(self, data: bytes) -> int:
        """Queue one entry; returns how many older unwritten entries were dropped to make
        room (only a bounded queue ever drops)."""

    async def backlog(self) -> int:
        """Entries queued and not yet acknowledged as written."""

    async def take(self, max_items: int, wait_s: float) -> list[tuple[str, bytes]]:
        """Up to ``max_items`` entries, waiting at most ``wait_s`` for the first."""

    async def ack(self, ids: Sequence[str]) -> None: ...

    def requeue(self) -> None:
        """Make taken-but-unacknowledged entries available again (a write failed)."""


class MemoryUsageQueue:
    """Bounded: past ``max_items`` unwritten records (a database down for a long time) the
    oldest are dropped and counted, rather than growing without limit."""

    def __init__(self, max_items: int = 200_000) -> None:
        self._items: collections.deque[tuple[str, bytes]] = collections.deque()
        self._pending: dict[str, bytes] = {}
        self._event = asyncio.Event()
        self._seq = 0
        self._max = max_items

    async def put(self, data: bytes) -> int:
        self._seq += 1
        dropped = 0
        if len(self._items) >= self._max:
            self._items.popleft()
            dropped = 1
        self._items.append((str(self._seq), data))
        self._event.set()
        return dropped

    async def backlog(self) -> int:
        return len(self._items) + len(self._pending)

    async def take(self, max_items: int, wait_s: float) -> list[tuple[str, bytes]]:
        if not self._items and wait_s > 0:
            self._event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), wait_s)
        batch: list[tuple[str, bytes]] = []
        while self._items and len(batch) < max_items:
            entry = self._items.popleft()
            self._pending[entry[0]] = entry[1]
            batch.append(entry)
        return batch

    async def ack(self, ids: Sequence[str]) -> None:
        for ident in ids:
            self._pending.pop(ident, None)

    def requeue(self) -> None:
        """Put taken-but-unwritten entries back at the front (the write failed)."""
        for entry in reversed(list(self._pending.items())):
            self._items.appendleft(entry)
        self._pending.clear()


class SpillingUsageQueue:
    """The shared queue (Redis), with a bounded in-process spill for while it cannot be
    reached: a record the shared queue refuses is kept here and written straight to the
    database by this instance's writer, so a Redis outage loses no usage record (unless
    this very process dies before its spill is written). Spilled entries are taken first."""

    _PREFIX = "spill:"

    def __init__(self, primary: UsageQueue, spill: MemoryUsageQueue | None = None) -> None:
        self._primary = primary
        self._spill = spill or MemoryUsageQueue()
        self._spilling = False

    async def put(self, data: bytes) -> int:
        try:
            dropped = await self._primary.put(data)
        except ParleyError as exc:
            if not self._spilling:
                log.warning("usage queue unreachable: keeping records here", error=exc.message)
            self._spilling = True
            return await self._spill.put(data)
        if self._spilling:
            log.info("usage queue reachable again")
            self._spilling = False
        return dropped

    async def backlog(self) -> int:
        spilled = await self._spill.backlog()
        try:
            return spilled + await self._primary.backlog()
        except ParleyError:
            if spilled:
                return spilled
            raise

    async def take(self, max_items: int, wait_s: float) -> list[tuple[str, bytes]]:
        batch = [(self._PREFIX + i, d) for i, d in await self._spill.take(max_items, 0.0)]
        if len(batch) >= max_items:
            return batch
        try:
            batch += await self._primary.take(max_items - len(batch), 0.0 if batch else wait_s)
        except ParleyError:
            if not batch:
                raise
        return batch

    async def ack(self, ids: Sequence[str]) -> None:
        spilled = [i.removeprefix(self._PREFIX) for i in ids if i.startswith(self._PREFIX)]
        shared = [i for i in ids if not i.startswith(self._PREFIX)]
        await self._spill.ack(spilled)
        await self._primary.ack(shared)

    def requeue(self) -> None:
        self._spill.requeue()
        self._primary.requeue()


Writer = Callable[[list[tuple[Any, ...]]], Awaitable[None]]
"""Writes rows of values in ``USAGE_COLUMNS`` order."""


_RETRY_MAX_S = 5.0
"""The longest wait between attempts to write usage while the database is away."""

_STOP_WAIT_S = 10.0
"""How long shutdown lets a write in progress finish before cancelling it."""


class UsageRecorder:
    def __init__(
        self,
        queue: UsageQueue,
        writer: Writer,
        metrics: Metrics,
        *,
        batch_size: int = 500,
        flush_seconds: float = 1.0,
    ) -> None:
        self.queue = queue
        self._write = writer
        self._metrics = metrics
        self._batch = batch_size
        self._flush = flush_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._drops = 0

    @property
    def metrics(self) -> Metrics:
        """The process's metrics (background jobs beside the writer count into them)."""
        return self._metrics

    async def record(self, record: UsageRecord) -> None:
        """Queue one record. Never raises: losing a usage record must not fail a request
        that has already been served (a failure is logged and counted)."""
        try:
            dropped = await self.queue.put(_encode(record))
            self._metrics.usage_records.labels("queued").inc()
            if dropped:
                self._dropped(dropped)
        except ParleyError as exc:
            self._metrics.usage_records.labels("dropped").inc()
            log.error("usage record not queued", error=exc.message, request=record.request_id)

    def _dropped(self, count: int) -> None:
        """Records lost because the writer fell behind: counted always, logged once per
        ``_DROP_LOG_EVERY`` so a long outage does not flood the log."""
        self._metrics.usage_records.labels("dropped").inc(count)
        before = self._drops
        self._drops += count
        if before // _DROP_LOG_EVERY != self._drops // _DROP_LOG_EVERY or before == 0:
            log.error(
                "usage queue full: dropping the oldest unwritten records",
                dropped_total=self._drops,
            )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="parley-usage-writer")

    async def _run(self) -> None:
        """Write what is queued, then wait a flush interval, unless the batch was full:
        one insert per interval at low traffic, back-to-back batches under load."""
        failures = 0
        while not self._stopping:
            try:
                written = await self.flush_once()
            except Exception as exc:  # the writer must outlive any failure
                if failures == 0 and isinstance(exc, ParleyError):
                    log.warning("usage write failed; retrying until it works", error=exc.message)
                elif failures == 0:  # a bug, not an outage: its traceback is wanted
                    log.exception("usage write failed unexpectedly; retrying")
                failures += 1
                self.queue.requeue()
                await self._pause(min(_RETRY_MAX_S, self._flush * 2 ** min(failures, 10)))
                continue
            if failures:
                log.info("usage writes resumed", failed_attempts=failures)
                failures = 0
            with contextlib.suppress(ParleyError):
                self._metrics.usage_backlog.set(await self.queue.backlog())
            if written < self._batch:
                await self._pause(self._flush)

    async def _pause(self, seconds: float) -> None:
        """Sleep between writes; shutdown cuts it short."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def flush_once(self, wait_s: float = 0.0) -> int:
        batch = await self.queue.take(self._batch, wait_s)
        if not batch:
            return 0
        rows: list[tuple[Any, ...]] = []
        for _ident, data in batch:
            try:
                rows.append(msgspec.structs.astuple(_decode(data)))
            except msgspec.DecodeError:
                log.error("dropping an unreadable usage entry")
        await self._write(rows)
        await self.queue.ack([ident for ident, _ in batch])
        self._metrics.usage_records.labels("written").inc(len(rows))
        return len(batch)

    async def stop(self) -> None:
        """Stop the loop and write everything still queued (graceful shutdown).

        The loop is woken and allowed to end, not cancelled: a write cancelled half-way
        can leave the database busy (SQLite keeps its write lock until the cancelled call
        returns), so the final drain below would wait out the busy timeout and lose the
        records. Only a write stuck past ``_STOP_WAIT_S`` is cancelled."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), _STOP_WAIT_S)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            except Exception:
                log.exception("usage writer ended with an error; writing what is left")
        self.queue.requeue()
        try:
            while await self.flush_once(0.0):
                pass
        except ParleyError as exc:
            log.error("usage records not written at shutdown", error=exc.message)
