"""Gauges that are read, not counted: sampled on a timer by every process.

A connection pool's use, the WebSockets open, the outboxes' backlogs and the bus lag are
states of the running service, not events on the request path, so nothing increments
them; one task per process reads them every ``period_s`` and sets the gauges. A timer and
not a read at scrape time: with several workers ``/metrics`` is answered from the files
every worker writes (``metrics.py``), so each worker must keep its own values current. A
reading that fails (the database is down) is logged once per outage and retried at the
next tick; the gauges keep their last values meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from parley.observability.logging import get_logger

log = get_logger(__name__)


class Sampler:
    def __init__(self, sample: Callable[[], Awaitable[None]], *, period_s: float) -> None:
        self._sample = sample
        self._period_s = period_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="parley-gauges")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self._sample()
                failing = False
            except Exception as exc:  # a gauge must never stop the service
                if not failing:
                    log.warning("could not sample the gauges", error=type(exc).__name__)
                failing = True
            await asyncio.sleep(self._period_s)
