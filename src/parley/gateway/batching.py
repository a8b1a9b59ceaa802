"""Opportunistic micro-batching of embedding inputs.

Callers submit lists of texts. While fewer than ``max_in_flight`` calls are running, a
submission goes out at once (so an idle gateway adds no latency); otherwise it waits, and
when a call returns, everything that queued meanwhile leaves together in one call of up to
``max_batch`` texts. Under load, batches grow by themselves; nothing waits on a timer.

One batcher serves the semantic cache's local model (one worker thread: ``max_in_flight``
1) and each deployment's ``/v1/embeddings`` traffic (providers accept a list of inputs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BatchResult(Generic[T]):
    items: list[T]
    """One per submitted text, in order."""
    batch_size: int
    """Texts in the call that produced them (1 call per submission when alone)."""
    submissions: int
    """Submissions that shared that call."""


Run = Callable[[list[str]], Awaitable[list[T]]]


class Batcher(Generic[T]):
    def __init__(self, run: Run[T], *, max_batch: int = 256, max_in_flight: int = 4) -> None:
        self._run = run
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[tuple[list[str], asyncio.Future[BatchResult[T]]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0
        """Calls made to ``run`` (tests and benchmarks read it)."""

    async def submit(self, texts: list[str]) -> BatchResult[T]:
        future: asyncio.Future[BatchResult[T]] = asyncio.get_running_loop().create_future()
        self._queue.append((texts, future))
        self._pump()
        return await future

    def _pump(self) -> None:
        while self._queue and self._in_flight < self._max_in_flight:
            batch = [self._queue.pop(0)]
            size = len(batch[0][0])
            while self._queue and size + len(self._queue[0][0]) <= self._max_batch:
                item = self._queue.pop(0)
                batch.append(item)
                size += len(item[0])
            batch = [(texts, f) for texts, f in batch if not f.cancelled()]
            if not batch:
                continue
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._call(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _call(self, batch: list[tuple[list[str], asyncio.Future[BatchResult[T]]]]) -> None:
        texts = [text for submitted, _ in batch for text in submitted]
        self.calls += 1
        try:
            results = await self._run(texts)
            if len(results) != len(texts):
                raise ValueError(f"{len(results)} results for {len(texts)} inputs")
        except BaseException as exc:  # every waiter hears of it, then the next batch goes
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._in_flight -= 1
            self._pump()
        start = 0
        for submitted, future in batch:
            end = start + len(submitted)
            if not future.done():
                future.set_result(BatchResult(results[start:end], len(texts), len(batch)))
            start = end
