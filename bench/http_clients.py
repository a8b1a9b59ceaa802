"""Which pooled async HTTP client should carry upstream calls?

aiohttp (the baseline), Parley's own HTTP/1.1 transport (``providers/http1.py``), httpx and,
when it is installed, pyreqwest send the same OpenAI chat request to nginx answering canned
JSON (as in ``bench.compare``), with a pooled client, at the same concurrency. This process
is pinned to core 0 and nginx to core 1, so ``CPU us/req`` is the client's own cost per
request: what it takes from a gateway's single core (pyreqwest's Rust threads are counted,
being in this process). Requests run on uvloop, as in ``parley serve``.

    python -m bench.http_clients [--requests 4000] [--concurrency 1 10 64]

pyreqwest was Parley's client before its own transport and is no longer a dependency:
``pip install pyreqwest`` to add its rows.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import uvloop

from bench.common import Result, print_table, run_load
from bench.compare import GATEWAY_CORE, nginx_upstream, require_tools
from parley.providers.http1 import ConnectionPool, split_url

BODY = json.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "benchmark me"}]}
).encode()
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer bench-key"}
Call = Callable[[], Awaitable[None]]


async def _measured(call: Call, concurrency: int, total: int, label: str) -> tuple[Result, float]:
    await run_load(call, concurrency, 200, "warm-up")
    cpu = time.process_time()
    result = await run_load(call, concurrency, total, label)
    return result, (time.process_time() - cpu) / total * 1e6


async def bench_aiohttp(url: str, concurrency: int, total: int) -> tuple[Result, float]:
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:

        async def call() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as resp:
                await resp.read()
                resp.raise_for_status()

        return await _measured(call, concurrency, total, "aiohttp")


async def bench_parley(url: str, concurrency: int, total: int) -> tuple[Result, float]:
    origin, target = split_url(url)
    pool = ConnectionPool(origin, max_connections=100, connect_timeout=5)
    loop = asyncio.get_running_loop()

    async def call() -> None:
        exchange = await pool.send(target, HEADERS, BODY, deadline=loop.time() + 60, idle=30)
        await exchange.read_all()
        if exchange.status != 200:
            raise RuntimeError(f"status {exchange.status}")

    try:
        return await _measured(call, concurrency, total, "parley http1")
    finally:
        await pool.close()


async def bench_pyreqwest(url: str, concurrency: int, total: int) -> tuple[Result, float]:
    from pyreqwest.client import ClientBuilder  # noqa: PLC0415 - optional, see the docstring

    async with ClientBuilder().max_connections(100).no_proxy().build() as client:

        async def call() -> None:
            resp = await client.post(url).headers(HEADERS).body_bytes(BODY).build().send()
            await resp.bytes()
            resp.error_for_status()

        return await _measured(call, concurrency, total, "pyreqwest")


async def bench_httpx(url: str, concurrency: int, total: int) -> tuple[Result, float]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits) as client:

        async def call() -> None:
            resp = await client.post(url, content=BODY, headers=HEADERS)
            resp.raise_for_status()

        return await _measured(call, concurrency, total, "httpx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 64])
    args = parser.parse_args()
    require_tools()
    os.sched_setaffinity(0, {int(GATEWAY_CORE)})
    benches = [bench_aiohttp, bench_parley, bench_httpx]
    if importlib.util.find_spec("pyreqwest") is not None:
        benches.insert(2, bench_pyreqwest)
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp,
        nginx_upstream(Path(tmp)) as upstream,
    ):
        url = f"{upstream}/json/v1/chat/completions"
        for concurrency in args.concurrency:
            baseline = None
            for bench in benches:
                result, cpu_us = uvloop.run(bench(url, concurrency, args.requests))
                baseline = baseline or (result, cpu_us)
                rows.append(
                    [
                        result.label,
                        concurrency,
                        result.errors,
                        result.rps,
                        result.pct(50),
                        result.pct(99),
                        cpu_us,
                        cpu_us / baseline[1],
                    ]
                )
    print_table(
        ["client", "conc", "errors", "rps", "p50 ms", "p99 ms", "CPU us/req", "CPU vs aiohttp"],
        rows,
    )


if __name__ == "__main__":
    main()
