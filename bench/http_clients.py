"""Which pooled async HTTP client should carry upstream calls: aiohttp or httpx?

Both send the same OpenAI chat request to the same fake upstream (in a subprocess, on
loopback), with a shared connection pool, at the same concurrency. Baseline: httpx.

    python bench/http_clients.py [--requests 3000] [--concurrency 1 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json

import aiohttp
import httpx

from bench.common import Result, print_table, process, run_load
from parley.testing.servers import free_port

BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "benchmark me"}]}
).encode()
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer bench-key"}


async def bench_aiohttp(url: str, concurrency: int, total: int) -> Result:
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as resp:
                await resp.read()
                resp.raise_for_status()

        await run_load(call, concurrency, 50, "warmup")
        return await run_load(call, concurrency, total, "aiohttp")


async def bench_httpx(url: str, concurrency: int, total: int) -> Result:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits) as client:

        async def call() -> None:
            resp = await client.post(url, content=BODY, headers=HEADERS)
            resp.raise_for_status()

        await run_load(call, concurrency, 50, "warmup")
        return await run_load(call, concurrency, total, "httpx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    rows = []
    with process(["-m", "parley.testing.fake_upstream", "--port", str(port)], port):
        for concurrency in args.concurrency:
            baseline = asyncio.run(bench_httpx(url, concurrency, args.requests))
            candidate = asyncio.run(bench_aiohttp(url, concurrency, args.requests))
            for result in (baseline, candidate):
                rows.append(
                    [
                        result.label,
                        concurrency,
                        result.requests,
                        result.errors,
                        result.rps,
                        result.pct(50),
                        result.pct(99),
                        result.rps / baseline.rps,
                    ]
                )
    print_table(
        ["client", "conc", "requests", "errors", "rps", "p50 ms", "p99 ms", "rps vs httpx"], rows
    )


if __name__ == "__main__":
    main()
