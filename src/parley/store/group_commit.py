"""Group commit: concurrent writes of one kind share one transaction.

A write transaction per request costs far more than the row it holds (on SQLite every
writer also queues for the one write lock and hops to the driver's thread), so under load
the first caller's batch is written at once and whatever arrives while it is in flight is
written together next, one transaction for all of it. Each caller still awaits its own
batch's commit, so when ``submit`` returns the row is as durable and as readable, on every
instance sharing the database, as if it had written it alone: read-after-write holds, and
a lone caller (concurrency 1) waits for nothing but its own write.

No background task outlives the work: the drain runs while rows are pending and ends when
none are, so nothing needs starting or stopping in the lifespan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Row = TypeVar("Row")
MAX_BATCH = 256


class GroupCommit(Generic[Row]):
    """Rows handed to ``write`` (one transaction per call) in batches of whatever is
    pending, at most ``max_batch``."""

    def __init__(
        self, write: Callable[[list[Row]], Awaitable[None]], *, max_batch: int = MAX_BATCH
    ) -> None:
        self._write = write
        self._max = max_batch
        self._pending: list[tuple[Row, asyncio.Future[None]]] = []
        self._drain: asyncio.Task[None] | None = None

    async def submit(self, row: Row) -> None:
        """Return once ``row``'s batch is committed; raise what its write raised. A caller
        cancelled while waiting does not take its row back (it is written all the same)."""
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[None] = loop.create_future()
        self._pending.append((row, committed))
        drain = self._drain
        if drain is None or drain.done() or drain.get_loop() is not loop:
            self._drain = loop.create_task(self._drain_pending(), name="parley-group-commit")
        await committed

    async def _drain_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self._max], self._pending[self._max :]
                await self._commit(batch)
        except BaseException as exc:  # cancelled at shutdown: nobody may wait forever
            for _, committed in self._pending:
                _settle(committed, exc)
            self._pending = []
            raise
        finally:
            if self._drain is asyncio.current_task():
                self._drain = None

    async def _commit(self, batch: list[tuple[Row, asyncio.Future[None]]]) -> None:
        try:
            await self._write([row for row, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            # One bad row must not fail its neighbours: each alone, each its own answer.
            for row, committed in batch:
                try:
                    await self._write([row])
                except Exception as alone:
                    _settle(committed, alone)
                else:
                    _settle(committed, None)
            return
        except BaseException as exc:
            for _, committed in batch:
                _settle(committed, exc)
            raise
        for _, committed in batch:
            _settle(committed, None)


def _settle(committed: asyncio.Future[None], error: BaseException | None) -> None:
    if committed.done():  # its caller was cancelled
        return
    if error is None:
        committed.set_result(None)
    elif isinstance(error, asyncio.CancelledError):
        committed.cancel()
    else:
        committed.set_exception(error)
