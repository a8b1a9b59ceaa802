"""Where a many-connection run's tail latency comes from: second by second.

    python -m bench.burst [--connections 256] [--seconds 15]

``bench.compare``'s 500 ms-upstream rows report one p99 over the whole run, as wrk
measures it; wrk cannot say *when* the slow requests happened. This bench drives the same
setup (nginx's 500 ms upstream, ``parley serve`` pinned to the gateway core with the
compare bench's configuration and key) from a Python load generator pinned to the load
core, which opens every connection at once as wrk does and records each request's start
and latency. It prints p50/p99/max per second of the run, for the upstream directly (the
baseline, same run) and through Parley, then the p99 over the whole run and from the third
second on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.common import percentile_ms, print_table
from bench.compare import (
    GATEWAY_CORE,
    LOAD_CORE,
    nginx_upstream,
    parley_setup,
    require_tools,
    started,
)
from parley.testing.servers import free_port

BODY = {"model": "bench-slow", "messages": [{"role": "user", "content": "benchmark me"}]}
WARM_S = 3


async def _drive(url: str, key: str, connections: int, seconds: float) -> list[list[float]]:
    """[start offset, latency] of every request completed, in seconds."""
    records: list[list[float]] = []
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        begin = time.perf_counter()
        end = begin + seconds

        async def worker() -> None:
            while time.perf_counter() < end:
                sent = time.perf_counter()
                async with session.post(url, json=BODY, headers=headers) as response:
                    await response.read()
                    response.raise_for_status()
                records.append([sent - begin, time.perf_counter() - sent])

        await asyncio.gather(*(worker() for _ in range(connections)))
    return records


def _load(url: str, key: str, connections: int, seconds: float) -> list[list[float]]:
    out = subprocess.run(
        [
            *("taskset", "-c", LOAD_CORE, sys.executable, "-m", "bench.burst", "--drive", url),
            *("--key", key, "--connections", str(connections), "--seconds", str(seconds)),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    records: list[list[float]] = json.loads(out)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    parser.add_argument("--key", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        records = asyncio.run(_drive(args.drive, args.key, args.connections, args.seconds))
        print(json.dumps(records))
        return
    require_tools()
    runs: dict[str, list[list[float]]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="parley-burst-") as name,
        nginx_upstream(Path(name)) as upstream,
    ):
        tmp = Path(name)
        runs["direct"] = _load(
            f"{upstream}/slow/v1/chat/completions", "", args.connections, args.seconds
        )
        port = free_port()
        command, env, key = parley_setup(tmp, upstream, port)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        ready = {"Authorization": f"Bearer {key}"}
        with started(command, env=env, core=GATEWAY_CORE, ready=url, headers=ready):
            runs["parley"] = _load(url, key, args.connections, args.seconds)
    rows: list[list[object]] = []
    for second in range(int(args.seconds)):
        row: list[object] = [second]
        for path in ("direct", "parley"):
            window = [lat for at, lat in runs[path] if second <= at < second + 1]
            row += [
                len(window),
                percentile_ms(window, 50),
                percentile_ms(window, 99),
                max(window, default=0.0) * 1000,
            ]
        rows.append(row)
    print(f"{args.connections} connections, 500 ms upstream; milliseconds by second of start")
    print_table(["second", "direct n", "p50", "p99", "max", "parley n", "p50", "p99", "max"], rows)
    summary = []
    for path in ("direct", "parley"):
        every = [lat for _, lat in runs[path]]
        warm = [lat for at, lat in runs[path] if at >= WARM_S]
        summary.append([path, len(every), percentile_ms(every, 99), percentile_ms(warm, 99)])
    direct_all, direct_warm = summary[0][2], summary[0][3]
    summary[1] += [float(summary[1][2]) - float(direct_all)]
    summary[1] += [float(summary[1][3]) - float(direct_warm)]
    summary[0] += ["", ""]
    print_table(
        ["path", "requests", "p99 all", f"p99 from {WARM_S} s", "added all", "added warm"],
        summary,
    )


if __name__ == "__main__":
    main()
