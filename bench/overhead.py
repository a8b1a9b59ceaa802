"""Parley's added latency: the same requests sent straight to a fake upstream (the baseline,
measured in the same run) and through ``parley serve`` in front of it.

Three processes on loopback: the fake upstream, Parley, and this load generator (aiohttp).
Non-streaming and streaming (20-chunk answers), at each concurrency. Streaming latency is
time to the last byte; ``ttfb`` is time to the first body byte.

    python -m bench.overhead [--requests 1000] [--concurrency 1 10 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.common import Result, print_table, process, run_load
from parley.testing.servers import free_port

UPSTREAM_MODEL = "bench+tokens-20"


def request_body(model: str, stream: bool) -> bytes:
    return json.dumps(
        {
            "model": model,
            "stream": stream,
            "messages": [{"role": "user", "content": "benchmark me"}],
        }
    ).encode()


async def measure(
    url: str, model: str, *, stream: bool, concurrency: int, total: int, label: str
) -> tuple[Result, list[float], list[float]]:
    body = request_body(model, stream)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench"}
    ttfb: list[float] = []
    overhead: list[float] = []
    connector = aiohttp.TCPConnector(limit=max(100, concurrency))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> None:
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"status {resp.status}")
                if "x-parley-overhead-ms" in resp.headers:
                    overhead.append(float(resp.headers["x-parley-overhead-ms"]))
                first = True
                async for _ in resp.content.iter_any():
                    if first:
                        ttfb.append(time.perf_counter() - started)
                        first = False

        await run_load(call, concurrency, min(100, total), "warmup")
        ttfb.clear()
        overhead.clear()
        result = await run_load(call, concurrency, total, label)
    return result, ttfb, overhead


def median_ms(values: list[float], scale: float = 1000) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] * scale if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 64])
    args = parser.parse_args()
    fake_port, parley_port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}/v1/chat/completions"
    parley_url = f"http://127.0.0.1:{parley_port}/v1/chat/completions"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(
            "models:\n  - name: bench\n    deployments:\n"
            f"      - {{provider: openai_compatible, model: '{UPSTREAM_MODEL}', "
            f"api_base: 'http://127.0.0.1:{fake_port}/v1', max_connections: 200}}\n"
        )
        rows = []
        with (
            process(["-m", "parley.testing.fake_upstream", "--port", str(fake_port)], fake_port),
            process(
                ["-m", "parley", "serve", "--port", str(parley_port), "--config", str(config)],
                parley_port,
                env={
                    "PARLEY_LOG_LEVEL": "warning",
                    "PARLEY_DATABASE_URL": f"sqlite:///{tmp}/parley.db",
                },
            ),
        ):
            for stream in (False, True):
                for concurrency in args.concurrency:
                    direct, direct_ttfb, _ = asyncio.run(
                        measure(
                            fake_url,
                            UPSTREAM_MODEL,
                            stream=stream,
                            concurrency=concurrency,
                            total=args.requests,
                            label="direct",
                        )
                    )
                    via, via_ttfb, overhead = asyncio.run(
                        measure(
                            parley_url,
                            "bench",
                            stream=stream,
                            concurrency=concurrency,
                            total=args.requests,
                            label="parley",
                        )
                    )
                    for result, ttfb in ((direct, direct_ttfb), (via, via_ttfb)):
                        rows.append(
                            [
                                "stream" if stream else "json",
                                concurrency,
                                result.label,
                                result.errors,
                                result.rps,
                                result.pct(50),
                                result.pct(99),
                                median_ms(ttfb),
                                result.pct(50) - direct.pct(50),
                                result.pct(99) - direct.pct(99),
                                result.rps / direct.rps,
                                median_ms(overhead, 1) if result is via else float("nan"),
                            ]
                        )
    print_table(
        [
            "mode",
            "conc",
            "path",
            "errors",
            "rps",
            "p50 ms",
            "p99 ms",
            "ttfb p50",
            "added p50",
            "added p99",
            "rps ratio",
            "hdr overhead p50",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
