"""Start-up and idle memory of ``parley serve``, several times in a row.

python -m bench.startup [--runs 5] [--workers 1]

The same gateway configuration as ``bench.compare`` (nginx as the upstream, SQLite, a
``pk-`` key, JSON logs to /dev/null, pinned to core 0): each run starts ``parley serve``,
times process start to the first 200 on a ``/v1/chat/completions`` request (what
``bench.compare`` reports as start-up) and the CPU time (user + system, from /proc) the
process had used by then, which moves far less than the clock on a shared machine; then
waits two seconds and reads the resident memory of the process and its workers. The
database is created and migrated by ``parley keys create`` before the first run, so every
run is a restart of an installed gateway. Last, it names the heavy packages that building
the app imported (those it should defer to first use).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import print_table
from bench.compare import (
    GATEWAY_CORE,
    compile_venv,
    cpu_seconds,
    nginx_upstream,
    parley_setup,
    require_tools,
    rss_mb,
    started,
)
from parley.testing.imports import imported_by_the_app
from parley.testing.servers import free_port

HEAVY = (
    "torch",
    "sentence_transformers",
    "numpy",
    "sklearn",
    "openai",
    "anthropic",
    "jinja2",
    "qrcode",
    "webauthn",
    "aiosmtplib",
    "opentelemetry",
    "alembic",
    "tiktoken",
    "argon2",
    "cryptography",
    "jwt",
    "sqlalchemy",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    require_tools()
    compile_venv(Path(sys.prefix))
    rows: list[list[object]] = []
    boots: list[float] = []
    cpus: list[float] = []
    idles: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        with nginx_upstream(tmp) as upstream:
            port = free_port()
            command, env, key = parley_setup(tmp, upstream, port)
            if args.workers > 1:
                command += ["--workers", str(args.workers)]
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            headers = {"Authorization": f"Bearer {key}"}
            for i in range(args.runs):
                with started(command, env=env, core=GATEWAY_CORE, ready=url, headers=headers) as (
                    proc,
                    boot,
                ):
                    cpu = cpu_seconds(proc.pid)
                    time.sleep(2)
                    idle = rss_mb(proc.pid)
                boots.append(boot)
                cpus.append(cpu)
                idles.append(idle)
                rows.append([i + 1, boot, cpu, idle])
            heavy = imported_by_the_app(HEAVY, {**os.environ, **env}, tmp / "parley.yaml")
    print_table(["run", "start-up s", "CPU s to ready", "RSS idle MB"], rows)
    print(
        f"start-up median {statistics.median(boots):.2f} s (min {min(boots):.2f}, "
        f"max {max(boots):.2f}); CPU to ready median {statistics.median(cpus):.2f} s; "
        f"RSS idle median {statistics.median(idles):.1f} MB; "
        f"workers {args.workers}"
    )
    print("heavy packages imported by the app at start:", " ".join(heavy) or "none")


if __name__ == "__main__":
    main()
