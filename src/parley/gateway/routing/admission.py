"""Admission control: a concurrency cap per model group with a bounded, prioritised wait
queue. Overload turns into fast refusals (503 with Retry-After) instead of growing
latency and memory: a full queue refuses at once, a wait that outlasts the queue timeout
refuses then. Five priority levels, 1 (first) to 5; ties are served in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import AsyncIterator

from parley.config.models import QueueConfig
from parley.errors import Overloaded
from parley.observability.metrics import Metrics

PRIORITIES = range(1, 6)
DEFAULT_PRIORITY = 3


class Gate:
    def __init__(
        self, name: str, capacity: int | None, queue: QueueConfig, metrics: Metrics
    ) -> None:
        self.name = name
        self.capacity = capacity
        self._queue = queue
        self._metrics = metrics
        self.in_use = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    @property
    def queue(self) -> QueueConfig:
        return self._queue

    @property
    def waiting(self) -> int:
        return sum(1 for *_, f in self._waiters if not f.done())

    @contextlib.asynccontextmanager
    async def slot(self, priority: int = DEFAULT_PRIORITY) -> AsyncIterator[None]:
        if self.capacity is None:
            yield
            return
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        assert self.capacity is not None
        if self.in_use < self.capacity and not self.waiting:
            self.in_use += 1
            return
        if self.waiting >= self._queue.max_size:
            self._metrics.admission_refusals.labels(self.name, "queue_full").inc()
            raise Overloaded(
                f"model group {self.name!r} is at capacity and its queue is full",
                code="overloaded",
                retry_after=self._queue.timeout,
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), future))
        self._metrics.queue_depth.labels(self.name).set(self.waiting)
        started = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.shield(future), self._queue.timeout)
        except TimeoutError:
            if future.done() and not future.cancelled():
                self._release()  # granted in the same instant it timed out: hand it on
            future.cancel()
            self._metrics.admission_refusals.labels(self.name, "queue_timeout").inc()
            raise Overloaded(
                f"model group {self.name!r} stayed at capacity for {self._queue.timeout:g}s",
                code="queue_timeout",
                retry_after=self._queue.timeout,
            ) from None
        except BaseException:
            if future.done() and not future.cancelled():
                self._release()
            future.cancel()
            raise
        finally:
            self._metrics.queue_wait.labels(self.name).observe(time.perf_counter() - started)
            self._metrics.queue_depth.labels(self.name).set(self.waiting)

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # the slot passes straight to the next waiter
                return
        self.in_use -= 1
