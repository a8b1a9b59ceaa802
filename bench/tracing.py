"""What tracing costs: the same load through ``parley serve`` with ``PARLEY_TRACING`` off
(the default) and ``otlp``, exporting to an OTLP/HTTP sink in this process that answers
every export with 200 (it does not decode; the spans' encoding and sending are Parley's
cost, paid on its batch processor's thread).

    python -m bench.tracing [--requests 2000] [--concurrency 10]

Prints requests/s, p50/p99 latency and Parley's own overhead (``x-parley-overhead-ms``,
median) for each mode, non-streaming and streaming.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import print_table, process
from bench.overhead import UPSTREAM_MODEL, measure, median_ms
from parley.testing.servers import free_port


class _Sink(BaseHTTPRequestHandler):
    exports = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        _Sink.exports += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{sink.server_address[1]}"
    fake_port = free_port()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(
            "models:\n  - name: bench\n    deployments:\n"
            f"      - {{provider: openai_compatible, model: '{UPSTREAM_MODEL}', "
            f"api_base: 'http://127.0.0.1:{fake_port}/v1', max_connections: 200}}\n"
        )
        with process(["-m", "parley.testing.fake_upstream", "--port", str(fake_port)], fake_port):
            for mode in ("off", "otlp"):
                port = free_port()
                env = {
                    "PARLEY_LOG_LEVEL": "warning",
                    "PARLEY_DATABASE_URL": f"sqlite:///{tmp}/parley-{mode}.db",
                    "PARLEY_TRACING": mode,
                    "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                }
                command = ["-m", "parley", "serve", "--port", str(port), "--config", str(config)]
                with process(command, port, env=env):
                    for stream in (False, True):
                        result, _, overhead = asyncio.run(
                            measure(
                                f"http://127.0.0.1:{port}/v1/chat/completions",
                                "bench",
                                stream=stream,
                                concurrency=args.concurrency,
                                total=args.requests,
                                label=mode,
                            )
                        )
                        rows.append(
                            [
                                "stream" if stream else "json",
                                mode,
                                result.errors,
                                result.rps,
                                result.pct(50),
                                result.pct(99),
                                median_ms(overhead, scale=1),
                            ]
                        )
    sink.shutdown()
    print_table(
        ["kind", "tracing", "errors", "req/s", "p50 ms", "p99 ms", "overhead ms (median)"], rows
    )
    print(f"OTLP exports received while tracing was on: {_Sink.exports}")


if __name__ == "__main__":
    main()
