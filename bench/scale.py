"""One Parley instance against two, behind nginx, on the shared tier with limits on.

    python -m bench.scale [--duration 10] [--concurrency 64 256]

The cluster tier as deployed (docs/deployment.md): PostgreSQL for the database, Redis for
limits and the usage buffer, NATS JetStream for the event bus (the machine's own services,
addresses from ``PARLEY_BENCH_POSTGRES``, ``PARLEY_BENCH_REDIS``, ``PARLEY_BENCH_NATS``),
every instance a ``parley serve`` process on its own core, nginx in front of them with
keep-alive connections to each, and ``bench.compare``'s nginx upstream answering canned
JSON. The key carries a requests-per-minute and a tokens-per-minute limit (far above what
the run sends, so nothing is refused, but each request checks and counts both in Redis
exactly, as they hold across instances), and every request is written to PostgreSQL's usage
table through the shared usage buffer.

Rows: one instance behind nginx, then two, each at each ``--concurrency``, wrk for
``--duration`` seconds after a warm-up. Printed: requests/s, p50 and p99, errors, each
instance's CPU per request (user + system from /proc), and two instances' requests/s over
one's. On a two-core machine the second instance gets the core that the load generator,
both nginx processes, PostgreSQL, Redis and NATS also run on, so the ratio there says how
far one box of this kind goes, not how Parley scales on machines with cores to spare; the
table header says which cores each process was given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from redis import Redis

from bench.common import print_table
from bench.compare import (
    Run,
    _errs,
    _lua,
    compile_venv,
    cpu_seconds,
    nginx_upstream,
    parley_command,
    require_tools,
    running_nginx,
    started,
    wrk,
)
from parley.testing.servers import free_port

POSTGRES = os.environ.get("PARLEY_BENCH_POSTGRES", "postgresql://127.0.0.1:5432/test")
REDIS = os.environ.get("PARLEY_BENCH_REDIS", "redis://127.0.0.1:6379/14")
NATS = os.environ.get("PARLEY_BENCH_NATS", "nats://127.0.0.1:4222")
INSTANCE_CORES = ("0", "1")
LB_CORE = "1"
PARLEY = (sys.executable, "-m", "parley")
RPM = 100_000_000
TPM = 2_000_000_000


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the run, dropped after it."""
    name = f"parley_scale_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _nginx_lb(tmp: Path, port: int, backends: list[int]) -> Path:
    servers = "".join(f"        server 127.0.0.1:{p};\n" for p in backends)
    conf = tmp / f"lb-{len(backends)}.conf"
    conf.write_text(
        f"""
worker_processes 1;
daemon off;
pid {tmp}/lb-{len(backends)}.pid;
error_log {tmp}/lb-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/lb-body;
    proxy_temp_path {tmp}/lb-proxy;
    fastcgi_temp_path {tmp}/lb-fastcgi;
    uwsgi_temp_path {tmp}/lb-uwsgi;
    scgi_temp_path {tmp}/lb-scgi;
    keepalive_requests 1000000;
    upstream parley {{
{servers}        keepalive 512;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://parley;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""
    )
    return conf


@contextlib.contextmanager
def load_balancer(tmp: Path, backends: list[int]) -> Iterator[str]:
    port = free_port()
    with running_nginx(_nginx_lb(tmp, port, backends), port, LB_CORE) as url:
        yield url


def _environment(database: str, namespace: str) -> dict[str, str]:
    return {
        "PARLEY_DATABASE_URL": database,
        "PARLEY_REDIS_URL": REDIS,
        "PARLEY_NATS_URL": NATS,
        "PARLEY_NATS_NAMESPACE": namespace,
        "PARLEY_ADMIN_KEY": "bench-admin-0123456789abcdef",
        "PARLEY_LOG_FORMAT": "json",
        "PARLEY_AUTO_MIGRATE": "false",
    }


def _prepare(tmp: Path, upstream: str, env: dict[str, str]) -> tuple[Path, str]:
    """Migrate once, write the model file, create the limited key; returns both."""
    config = tmp / "parley.yaml"
    config.write_text(
        "models:\n"
        f"  - {{name: bench, deployments: [{{provider: openai_compatible, model: bench, "
        f"api_base: '{upstream}/json/v1', max_connections: 1000}}]}}\n"
    )
    full = {**os.environ, **env}
    subprocess.run(
        [*PARLEY, "db", "upgrade"],
        env=full,
        check=True,
        capture_output=True,
    )
    created = subprocess.run(
        [*PARLEY, "keys", "create", "--name", "scale", "--rpm", str(RPM), "--tpm", str(TPM)],
        env=full,
        capture_output=True,
        text=True,
        check=True,
    )
    return config, created.stdout.strip().splitlines()[-1]


def _measure(
    instances: int,
    *,
    tmp: Path,
    config: Path,
    env: dict[str, str],
    key: str,
    args: argparse.Namespace,
) -> dict[int, tuple[Run, list[float]]]:
    """Each concurrency's run through nginx, and each instance's CPU per request in it."""
    with contextlib.ExitStack() as stack:
        ports, pids = [], []
        for core in INSTANCE_CORES[:instances]:
            port = free_port()
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            proc, _ = stack.enter_context(
                started(
                    parley_command(port, config),
                    env=env,
                    core=core,
                    ready=url,
                    headers={"Authorization": f"Bearer {key}"},
                )
            )
            ports.append(port)
            pids.append(proc.pid)
        lb = stack.enter_context(load_balancer(tmp, ports))
        url = f"{lb}/v1/chat/completions"
        script = _lua(tmp, "bench", key, False, tag=f"scale{instances}-")
        wrk(url, script, 32, 3.0)  # warm-up: connections, caches, the JIT-less interpreter's
        results: dict[int, tuple[Run, list[float]]] = {}
        for c in args.concurrency:
            before = [cpu_seconds(pid) for pid in pids]
            run = wrk(url, script, c, args.duration)
            spent = [cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True)]
            # Each instance's CPU over the requests it served: nginx splits them evenly.
            share = run.requests / instances if run.requests else 0
            results[c] = (run, [s / share * 1e6 if share else 0.0 for s in spent])
        return results


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per row")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    require_tools()
    compile_venv(Path(sys.prefix))
    Redis.from_url(REDIS).flushdb()
    namespace = f"scale{uuid.uuid4().hex[:8]}"
    with (
        tempfile.TemporaryDirectory(prefix="parley-scale-") as tmp_name,
        scratch_database() as database,
    ):
        tmp = Path(tmp_name)
        env = _environment(database, namespace)
        with nginx_upstream(tmp) as upstream:
            config, key = _prepare(tmp, upstream, env)
            one = _measure(1, tmp=tmp, config=config, env=env, key=key, args=args)
            time.sleep(2)
            two = _measure(2, tmp=tmp, config=config, env=env, key=key, args=args)
    Redis.from_url(REDIS).flushdb()
    rows: list[list[object]] = []
    for c in args.concurrency:
        for label, (run, cpu) in (("1 instance", one[c]), ("2 instances", two[c])):
            errors = _errs(run)
            ratio = f"{run.rps / one[c][0].rps:.2f}x" if label != "1 instance" else ""
            blank = [""] * (2 - len(cpu))
            rows.append([label, c, errors, run.rps, run.p50_ms, run.p99_ms, *cpu, *blank, ratio])
    print(
        f"\nPostgreSQL + Redis + NATS, a key with rpm and tpm limits; instances on cores "
        f"{', '.join(INSTANCE_CORES)} (one each), nginx (load balancer and upstream) and wrk "
        f"on core {LB_CORE}; {args.duration:g} s per row"
    )
    print_table(
        [
            "setup",
            "conc",
            "errors",
            "rps",
            "p50 ms",
            "p99 ms",
            "CPU us/req A",
            "CPU us/req B",
            "rps vs 1",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
