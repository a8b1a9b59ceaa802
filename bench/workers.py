"""``parley serve --workers N``: requests/s and CPU per request against one worker.

    python -m bench.workers [--workers 2] [--duration 10] [--concurrency 64 256]

``bench.compare``'s configuration (nginx upstream answering canned JSON, SQLite, a ``pk-``
key), served by one worker pinned to core 0, then by ``--workers`` workers pinned to cores
0 to N-1; wrk and nginx stay on the last core. Each row: requests/s, p50, p99, and the CPU
time (user + system of the supervisor and its workers, from /proc) per request.

On a machine with a core to spare for the load, requests/s is the figure (the target of
issue 22: two workers at about 1.9 times one). On a two-core machine the second worker
shares its core with wrk and nginx, so requests/s cannot double there; what shows whether
the workers scale is CPU per request: if two workers spend what one does per request (the
SQLite usage writes, the metrics files of the multi-process mode and the supervisor
included), N cores serve N times one core's requests. The table prints both, and the last
column is the CPU per request of N workers over one's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common import print_table
from bench.compare import (
    LOAD_CORE,
    Run,
    _errs,
    _lua,
    compile_venv,
    measured,
    nginx_upstream,
    parley_setup,
    require_tools,
    started,
    wrk,
)
from parley.testing.servers import free_port


def _rows(workers: int, tmp: Path, upstream: str, args: argparse.Namespace) -> dict[int, Run]:
    port = free_port()
    command, env, key = parley_setup(tmp, upstream, port)
    if workers > 1:
        command += ["--workers", str(workers)]
    cores = ",".join(str(i) for i in range(workers))
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {key}"}
    script = _lua(tmp, "bench", key, False, tag=f"workers{workers}-")
    runs: dict[int, Run] = {}
    with started(command, env=env, core=cores, ready=url, headers=headers) as (proc, _):
        time.sleep(1)
        wrk(url, script, 64, 3.0)  # every worker warmed: connections, caches
        for c in args.concurrency:
            runs[c] = measured(proc.pid, lambda c=c: wrk(url, script, c, args.duration))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    args = parser.parse_args()
    require_tools()
    if args.workers > (os.cpu_count() or 1):
        sys.exit(f"--workers {args.workers} is more than this machine's cores")
    compile_venv(Path(sys.prefix))
    with tempfile.TemporaryDirectory(prefix="parley-workers-") as name:
        tmp = Path(name)
        with nginx_upstream(tmp) as upstream:
            one = _rows(1, tmp, upstream, args)
            many = _rows(args.workers, tmp, upstream, args)
    rows: list[list[object]] = []
    for c in args.concurrency:
        for label, run in (("1 worker", one[c]), (f"{args.workers} workers", many[c])):
            first = one[c]
            rows.append(
                [
                    label,
                    c,
                    _errs(run),
                    run.rps,
                    run.p50_ms,
                    run.p99_ms,
                    "" if run.cpu_us is None else run.cpu_us,
                    "" if run is first else f"{run.rps / first.rps:.2f}x",
                    ""
                    if run is first or not (run.cpu_us and first.cpu_us)
                    else f"{run.cpu_us / first.cpu_us:.2f}x",
                ]
            )
    print(
        f"\nworkers on cores 0-{args.workers - 1}, one worker on core 0; wrk and nginx on "
        f"core {LOAD_CORE}; {args.duration:g} s per row"
    )
    print_table(
        [
            "setup",
            "conc",
            "errors",
            "rps",
            "p50 ms",
            "p99 ms",
            "CPU us/req",
            "rps vs 1",
            "CPU vs 1",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
