"""A queue drainer that runs when woken and every ``poll_s`` otherwise: the outbox relay
and the semantic indexer are both one.

``step()`` handles one batch and returns how many items it handled: the worker calls it
again while it returns more than 0, sleeps when it returns 0, and backs off briefly when
it returns a negative number (someone else holds the work). A failing step is logged and
retried with an exponential backoff up to ``max_backoff_s``; the queue waits meanwhile,
so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib

from parley.observability.logging import get_logger

log = get_logger(__name__)
BUSY_PAUSE_S = 0.02


class Worker:
    name = "parley-worker"

    def __init__(self, *, poll_s: float, max_backoff_s: float = 5.0) -> None:
        self._poll_s = poll_s
        self._max_backoff_s = max_backoff_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def step(self) -> int:
        raise NotImplementedError

    def kick(self) -> None:
        """Work arrived: run now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def drain(self) -> int:
        """Run steps until there is nothing left; how many items were handled."""
        total = 0
        while (handled := await self.step()) > 0:
            total += handled
        return total

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff or self._poll_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                while (handled := await self.step()) != 0:
                    if handled < 0:
                        await asyncio.sleep(BUSY_PAUSE_S)
                        break
                backoff = 0.0
            except Exception as exc:  # the database, bus or embedder is away: the queue waits
                backoff = min(self._max_backoff_s, max(0.1, backoff * 2))
                log.warning(f"{self.name} failed; retrying", error=str(exc), retry_in_s=backoff)
