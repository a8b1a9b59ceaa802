"""Load-generation helpers shared by the benchmarks: bounded request counts, loopback only."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Result:
    label: str
    concurrency: int
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return percentile_ms(self.latencies, q)


def percentile_ms(latencies: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of latencies in seconds, in milliseconds."""
    ordered = sorted(latencies)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))
    return ordered[index] * 1000


async def run_load(
    call: Callable[[], Awaitable[None]], concurrency: int, total: int, label: str
) -> Result:
    """``total`` calls spread over ``concurrency`` workers; each call's latency recorded."""
    latencies: list[float] = []
    errors = 0
    remaining = total

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            try:
                await call()
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(label, concurrency, total, time.perf_counter() - started, latencies, errors)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


@contextmanager
def process(args: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[None]:
    proc = subprocess.Popen(
        [sys.executable, *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def rows_against_floor(
    scenarios: Sequence[tuple[str, Callable[[], Awaitable[object]]]],
    repeats: int,
    on_result: Callable[[object], None] | None = None,
) -> list[list[object]]:
    """Each scenario called once to warm, then ``repeats`` times one after another: rows of
    label, repeats, p50 ms, p99 ms and p50 over the first scenario's (the floor, measured
    in the same run). ``on_result`` sees what each timed call returned."""
    rows: list[list[object]] = []
    base = 0.0
    for label, call in scenarios:
        await call()
        values = []
        for _ in range(repeats):
            started = time.perf_counter()
            result = await call()
            values.append((time.perf_counter() - started) * 1000)
            if on_result is not None:
                on_result(result)
        ordered = sorted(values)
        p50 = ordered[len(ordered) // 2]
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        base = base or p50
        rows.append([label, repeats, p50, p99, p50 / base])
    return rows


FLOOR_HEADERS = ["p50 ms", "p99 ms", "p50 / floor"]


def database_url(given: str | None, tmp: str, name: str) -> str:
    """``given`` (a PostgreSQL URL, say) or a SQLite file in ``tmp``, with Parley's async
    driver."""
    from parley.config import Settings  # noqa: PLC0415 - keep the helpers import-light

    return Settings(database_url=given or f"sqlite:///{tmp}/{name}").database_url
