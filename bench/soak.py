"""Leak check: steady load on one ``parley serve`` for a while, sampling its RSS.

    python -m bench.soak [--minutes 10] [--connections 32]

nginx (as in ``bench.compare``) is the upstream; wrk drives non-streaming and streaming
requests in alternating 30-second slices. Prints RSS at idle and after each slice, and the
growth from the end of the second slice (both modes warmed up) to the end; a leak shows as
steady growth after warm-up rather than a plateau.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import print_table
from bench.compare import (
    GATEWAY_CORE,
    _lua,
    nginx_upstream,
    parley_command,
    require_tools,
    rss_mb,
    started,
    wrk,
)
from parley.testing.servers import free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    require_tools()
    rows: list[list[object]] = []
    baseline = final = None
    with (
        tempfile.TemporaryDirectory(prefix="parley-soak-") as name,
        nginx_upstream(Path(name)) as upstream,
    ):
        tmp = Path(name)
        port = free_port()
        config = tmp / "soak.yaml"
        config.write_text(
            "models:\n"
            f"  - {{name: bench, deployments: [{{provider: openai_compatible, "
            f"model: bench, api_base: '{upstream}/json/v1'}}]}}\n"
            f"  - {{name: bench-sse, deployments: [{{provider: openai_compatible, "
            f"model: bench, api_base: '{upstream}/sse/v1'}}]}}\n"
        )
        env = {"PARLEY_DATABASE_URL": f"sqlite:///{tmp}/parley.db"}
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        command = parley_command(port, config)
        with started(command, env=env, core=GATEWAY_CORE, ready=url, headers={}) as (proc, _):
            time.sleep(2)
            rows.append(["idle", 0, rss_mb(proc.pid), ""])
            scripts = [_lua(tmp, "bench", None, False), _lua(tmp, "bench-sse", None, True)]
            end = time.monotonic() + args.minutes * 60
            slice_number = 0
            while time.monotonic() < end:
                run = wrk(url, scripts[slice_number % 2], args.connections, 30)
                slice_number += 1
                rss = rss_mb(proc.pid)
                if slice_number == 2:
                    baseline = rss
                rows.append([f"slice {slice_number}", run.errors, rss, f"{run.rps:,.0f} rps"])
            final = rss_mb(proc.pid)
    print_table(["sample", "errors", "RSS MB", "load"], rows)
    if baseline is not None and final is not None:
        print(f"growth after warm-up: {final - baseline:+.1f} MB over {args.minutes:g} minutes")


if __name__ == "__main__":
    main()
