"""The in-process usage queue and its writer loop: what falls behind is visible, not silent."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog.testing

from parley.gateway.accounting.usage import MemoryUsageQueue, UsageRecord, UsageRecorder
from parley.observability.metrics import Metrics


def _record(n: int) -> UsageRecord:
    return UsageRecord(request_id=f"r{n}", time_ms=n, model_group="g", status=200)


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_a_full_queue_drops_the_oldest_and_says_so() -> None:
    metrics = Metrics()
    queue = MemoryUsageQueue(max_items=3)

    async def never(_rows: list[tuple[Any, ...]]) -> None:
        raise AssertionError("the writer is not started in this test")

    recorder = UsageRecorder(queue, never, metrics)
    with structlog.testing.capture_logs() as logs:
        for n in range(5):
            await recorder.record(_record(n))
    assert _value(metrics, "parley_usage_records_total", outcome="queued") == 5
    assert _value(metrics, "parley_usage_records_total", outcome="dropped") == 2
    assert await queue.backlog() == 3
    kept = await queue.take(10, 0)
    assert [data for _, data in kept] == [
        b'{"request_id":"r%d","time_ms":%d,"model_group":"g","status":200}' % (n, n)
        for n in (2, 3, 4)
    ]
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1  # the first drop is logged; the next is only counted
    assert errors[0]["dropped_total"] == 1


async def test_backlog_counts_taken_entries_until_acknowledged() -> None:
    queue = MemoryUsageQueue()
    for n in range(4):
        await queue.put(str(n).encode())
    taken = await queue.take(3, 0)
    assert await queue.backlog() == 4
    await queue.ack([ident for ident, _ in taken])
    assert await queue.backlog() == 1


async def test_the_writer_drains_a_backlog_in_full_batches_and_reports_it() -> None:
    metrics = Metrics()
    queue = MemoryUsageQueue()
    batches: list[int] = []
    backlog_seen: list[float] = []

    async def write(rows: list[tuple[Any, ...]]) -> None:
        batches.append(len(rows))
        backlog_seen.append(_value(metrics, "parley_usage_backlog"))

    recorder = UsageRecorder(queue, write, metrics, batch_size=40, flush_seconds=30)
    for n in range(100):
        await recorder.record(_record(n))
    recorder.start()
    try:
        for _ in range(200):
            if sum(batches) == 100:
                break
            await asyncio.sleep(0.01)
    finally:
        await recorder.stop()
    # Full batches go back to back; only the short last one waits for the next interval.
    assert batches == [40, 40, 20]
    assert backlog_seen == [0.0, 60.0, 20.0]
    assert _value(metrics, "parley_usage_backlog") == 0
    assert _value(metrics, "parley_usage_records_total", outcome="written") == 100


async def test_stop_lets_a_write_in_progress_finish_instead_of_cancelling_it() -> None:
    """A cancelled write can leave SQLite's write lock held, so the final drain would wait
    out the busy timeout and lose records: shutdown waits for the write instead."""
    metrics = Metrics()
    queue = MemoryUsageQueue()
    writing = asyncio.Event()
    written: list[int] = []
    cancelled: list[bool] = []

    async def slow(rows: list[tuple[Any, ...]]) -> None:
        writing.set()
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        written.append(len(rows))

    recorder = UsageRecorder(queue, slow, metrics, flush_seconds=30)
    for n in range(3):
        await recorder.record(_record(n))
    recorder.start()
    await writing.wait()
    await recorder.record(_record(3))  # queued while the first batch is being written
    await recorder.stop()
    assert cancelled == []
    assert written == [3, 1]
    assert await queue.backlog() == 0


async def test_stop_wakes_the_writer_from_its_pause_at_once() -> None:
    """The loop sleeps ``flush_seconds`` between writes; stop must not wait that out."""
    queue = MemoryUsageQueue()
    written: list[int] = []

    async def write(rows: list[tuple[Any, ...]]) -> None:
        written.append(len(rows))

    recorder = UsageRecorder(queue, write, Metrics(), flush_seconds=3600)
    recorder.start()
    await asyncio.sleep(0)  # the loop finds nothing and starts its hour-long pause
    await recorder.record(_record(0))
    await asyncio.wait_for(recorder.stop(), 5)  # an hour's pause would time this out
    assert written == [1]
