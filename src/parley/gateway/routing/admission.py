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
        """A heap; entries whose waiter gave up stay in it (cancelled) until popped."""
        self._live = 0
        """Waiters still waiting: kept as a count, since a heap cannot be counted cheaply
        and every admission asks (at 1,000 waiters a scan cost more than the request)."""
        self._seq = itertools.count()

    @property
    def queue(self) -> QueueConfig:
        return self._queue

    @property
    def waiting(self) -> int:
        return self._live

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
        if self.in_use < self.capacity and not self._live:
            self.in_use += 1
            return
        if self._live >= self._queue.max_size:
            raise self._refused_full()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), future))
        self._live += 1
        depth = self._metrics.queue_depth.labels(self.name)
        depth.set(self._live)
        started = time.perf_counter()
        try:
            # The future itself is awaited under a deadline: no task per waiter.
            async with asyncio.timeout(self._queue.timeout):
                await future
        except TimeoutError:
            self._give_up(future)
            self._metrics.admission_refusals.labels(self.name, "queue_timeout").inc()
            raise Overloaded(
                f"model group {self.name!r} stayed at capacity for {self._queue.timeout:g}s",
                code="queue_timeout",
                retry_after=self._queue.timeout,
            ) from None
        except BaseException:
            self._give_up(future)
            raise
        finally:
            self._metrics.queue_wait.labels(self.name).observe(time.perf_counter() - started)
            depth.set(self._live)

    def check_room(self) -> None:
        """Refuse now if a call would be refused on arrival (every slot taken, the queue
        full): the pipeline asks before reserving limits and budgets, so a refusal under
        overload costs little more than reading the request."""
        if (
            self.capacity is not None
            and self.in_use >= self.capacity
            and self._live >= self._queue.max_size
        ):
            raise self._refused_full()

    def _refused_full(self) -> Overloaded:
        self._metrics.admission_refusals.labels(self.name, "queue_full").inc()
        return Overloaded(
            f"model group {self.name!r} is at capacity and its queue is full",
            code="overloaded",
            retry_after=self._queue.timeout,
        )

    def _give_up(self, future: asyncio.Future[None]) -> None:
        """A waiter leaves without its slot. Granted in the same instant (the result set,
        the waiter not yet resumed): the slot passes on. Still waiting: it stops counting,
        and its cancelled entry is skipped when the heap reaches it."""
        if future.done() and not future.cancelled():
            self._release()
            return
        future.cancel()
        self._live -= 1

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                self._live -= 1
                future.set_result(None)  # the slot passes straight to the next waiter
                return
        self.in_use -= 1
