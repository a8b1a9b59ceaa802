"""WebSocket delivery latency: how long after a change a user's other sessions see it.

Two ``parley serve`` processes (A and B) on one PostgreSQL, Redis and NATS JetStream; one
user with a WebSocket open on each. The client renames a conversation through A, over and
over (one at a time), and records when A's HTTP answer arrives (the baseline: the write
itself) and when the ``conversation.renamed`` event arrives on A's WebSocket and on B's.
"Since the event was stamped" is the delivery itself: from the moment the server made
the event (before its commit, in ms) to its arrival on the session. The embedded tier
(SQLite, in-process bus, one instance) is measured the same way for comparison.

    python -m bench.realtime [--renames 500]

Needs the PostgreSQL, Redis and NATS of this machine (overridable with PARLEY_TEST_*_URL
as in the tests). Bounded by count; only loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from tempfile import TemporaryDirectory
from typing import Any

import httpx
from tests.backends import NATS_URL, REDIS_URL, nats_namespace, postgres_database
from websockets.asyncio.client import ClientConnection, connect

from bench.common import print_table, process
from parley.testing.servers import free_port

PASSWORD = "correct horse battery staple 42"  # noqa: S105 - a throwaway bench account


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def arrival(ws: ClientConnection, title: str) -> tuple[float, float]:
    """When the rename to ``title`` arrives on ``ws`` (earlier messages are skipped), and
    how long after the server stamped the event (wall clocks of one machine, ms)."""
    while True:
        message = json.loads(await ws.recv())
        event = message.get("event", {})
        if event.get("type") == "conversation.renamed" and event["payload"]["title"] == title:
            return time.perf_counter(), time.time() * 1000 - event["time_ms"]


async def measure(urls: list[str], renames: int) -> dict[str, list[float]]:
    a = urls[0]
    async with httpx.AsyncClient(base_url=a, timeout=30) as http:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        made = await http.post(
            "/auth/register", json={"email": email, "password": PASSWORD, "name": "Bench"}
        )
        made.raise_for_status()
        login = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
        token = login.json()["access_token"]
        auth = {"authorization": f"Bearer {token}"}
        cid = (await http.post("/api/conversations", json={}, headers=auth)).json()["id"]
        sessions = [
            await connect(url.replace("http", "ws", 1) + "/api/ws", additional_headers=auth)
            for url in urls
        ]
        for ws in sessions:
            assert json.loads(await ws.recv())["type"] == "ready"
        answered: list[float] = []
        seen: list[list[float]] = [[] for _ in sessions]
        after: list[list[float]] = [[] for _ in sessions]
        for i in range(renames + 20):
            title = f"title {i}"
            waits = [asyncio.ensure_future(arrival(ws, title)) for ws in sessions]
            started = time.perf_counter()
            response = await http.patch(
                f"/api/conversations/{cid}", json={"title": title}, headers=auth
            )
            response.raise_for_status()
            done = time.perf_counter()
            arrived = await asyncio.wait_for(asyncio.gather(*waits), 10)
            if i < 20:
                continue  # warm-up
            answered.append((done - started) * 1000)
            for n, (at, since_stamped) in enumerate(arrived):
                seen[n].append((at - started) * 1000)
                after[n].append(since_stamped)
        for ws in sessions:
            await ws.close()
    result = {"write answered (baseline)": answered}
    for n, name in enumerate("AB"[: len(sessions)]):
        result[f"event on {name}'s WebSocket"] = seen[n]
        result[f"  since the event was stamped ({name})"] = after[n]
    return result


def servers(count: int, env: dict[str, str]) -> Iterator[list[str]]:
    ports = [free_port() for _ in range(count)]
    with ExitStack() as stack:
        for port in ports:
            stack.enter_context(
                process(["-m", "parley", "serve", "--port", str(port)], port, env=env)
            )
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url in urls:
            while httpx.get(f"{url}/health/ready").status_code != 200:
                time.sleep(0.1)
        yield urls


def rows(tier: str, measured: dict[str, list[float]]) -> list[list[Any]]:
    base = pct(measured["write answered (baseline)"], 50)
    return [
        [tier, label, len(values), pct(values, 50), pct(values, 99), pct(values, 50) / base]
        for label, values in measured.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renames", type=int, default=500)
    args = parser.parse_args()
    common = {
        "PARLEY_LOG_LEVEL": "warning",
        "PARLEY_ALLOW_REGISTRATION": "true",
        "PARLEY_LOGIN_MAX_FAILURES": "1000",
    }
    table: list[list[Any]] = []
    with TemporaryDirectory() as tmp:
        env = {**common, "PARLEY_DATABASE_URL": f"sqlite:///{tmp}/p.db"}
        for urls in servers(1, env):
            table += rows("embedded, 1 instance", asyncio.run(measure(urls, args.renames)))
    pg, ns = postgres_database(), nats_namespace()
    env = {
        **common,
        "PARLEY_DATABASE_URL": next(pg),
        "PARLEY_REDIS_URL": os.environ.get("PARLEY_BENCH_REDIS_URL", REDIS_URL),
        "PARLEY_NATS_URL": NATS_URL,
        "PARLEY_NATS_NAMESPACE": next(ns),
    }
    for urls in servers(2, env):
        table += rows("PostgreSQL+Redis+NATS, 2", asyncio.run(measure(urls, args.renames)))
    for gen in (ns, pg):
        for _ in gen:
            pass
    print_table(
        ["tier", "measured from the write's start", "n", "p50 ms", "p99 ms", "p50 / write"], table
    )


if __name__ == "__main__":
    main()
