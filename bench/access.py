"""What accounts, keys and limits cost: login and token verification under 64 concurrent
clients, and a ``/v1`` request with limits and a budget on versus a key without them.

Each figure comes with a baseline measured in the same run against the same server
(``/health/live`` for the auth rows, the unlimited key for the limits row). One fake
upstream and one ``parley serve`` on loopback; SQLite, and in-process state unless
``--redis`` is given.

    python -m bench.access [--requests 2000] [--logins 300] [--redis redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import Result, print_table, process, run_load
from parley.testing.servers import free_port

ADMIN = "bench-admin-key-0123456789abcdef"
PASSWORD = "violet kettle orbit 9931 long"  # noqa: S105  # a throwaway local account


async def _json(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with session.request(method, url, **kw) as resp:
        body = await resp.json()
        if resp.status >= 400:
            raise RuntimeError(f"{method} {url}: {resp.status} {body}")
        return body


async def run(base: str, requests: int, logins: int) -> list[list[object]]:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _json(
            session,
            "POST",
            f"{base}/auth/register",
            json={"email": "bench@example.com", "password": PASSWORD, "name": "Bench"},
        )
        plain = await _json(session, "POST", f"{base}/admin/keys", headers=admin, json={})
        limited = await _json(
            session,
            "POST",
            f"{base}/admin/keys",
            headers=admin,
            json={
                "rpm": 10**6,
                "tpm": 10**9,
                "max_parallel": 10_000,
                "budget_usd": 10**6,
                "budget_period": "monthly",
            },
        )
        tokens = await _json(
            session,
            "POST",
            f"{base}/auth/login",
            json={"email": "bench@example.com", "password": PASSWORD},
        )
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        login_body = {"email": "bench@example.com", "password": PASSWORD}
        chat = json.dumps(
            {"model": "bench", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
        )

        async def get(url: str, headers: dict[str, str] | None = None) -> None:
            async with session.get(url, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(str(resp.status))

        async def login() -> None:
            async with session.post(f"{base}/auth/login", json=login_body) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(str(resp.status))

        def chat_with(key: str) -> Any:
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

            async def call() -> None:
                async with session.post(
                    f"{base}/v1/chat/completions", data=chat, headers=headers
                ) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(str(resp.status))

            return call

        live = f"{base}/health/live"
        me = f"{base}/api/me"
        results: list[tuple[str, Result, Result]] = []
        await run_load(lambda: get(live), 64, 200, "warmup")
        base_auth = await run_load(lambda: get(live), 64, requests, "baseline /health/live")
        results.append(("login (argon2id)", await run_load(login, 64, logins, "login"), base_auth))
        verify = await run_load(lambda: get(me, bearer), 64, requests, "verify")
        results.append(("token verification (/api/me)", verify, base_auth))
        for concurrency in (1, 10):
            await run_load(chat_with(plain["key"]), concurrency, 200, "warmup")
            off = await run_load(chat_with(plain["key"]), concurrency, requests, "off")
            on = await run_load(chat_with(limited["key"]), concurrency, requests, "on")
            results.append((f"/v1 limits+budget on, c={concurrency}", on, off))
    rows: list[list[object]] = []
    for label, result, baseline in results:
        rows.append(
            [
                label,
                result.concurrency,
                result.requests,
                result.errors,
                result.rps,
                result.pct(50),
                result.pct(99),
                baseline.pct(50),
                baseline.pct(99),
                result.pct(50) - baseline.pct(50),
                result.rps / baseline.rps,
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--logins", type=int, default=300)
    parser.add_argument("--redis", default=None, help="use Redis for the shared state")
    args = parser.parse_args()
    fake_port, parley_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(
            "models:\n  - name: bench\n    deployments:\n"
            "      - {provider: openai_compatible, model: 'bench+tokens-20', "
            f"api_base: 'http://127.0.0.1:{fake_port}/v1', max_connections: 200,"
            " price: {input_per_mtok: 0.15, output_per_mtok: 0.6}}\n"
        )
        env = {
            "PARLEY_LOG_LEVEL": "warning",
            "PARLEY_DATABASE_URL": f"sqlite:///{tmp}/parley.db",
            "PARLEY_ADMIN_KEY": ADMIN,
            "PARLEY_ALLOW_REGISTRATION": "true",
        }
        if args.redis:
            env["PARLEY_REDIS_URL"] = args.redis
        with (
            process(["-m", "parley.testing.fake_upstream", "--port", str(fake_port)], fake_port),
            process(
                ["-m", "parley", "serve", "--port", str(parley_port), "--config", str(config)],
                parley_port,
                env=env,
            ),
        ):
            rows = asyncio.run(run(f"http://127.0.0.1:{parley_port}", args.requests, args.logins))
    print(f"state backend: {'redis' if args.redis else 'in-process'}")
    print_table(
        [
            "scenario",
            "conc",
            "n",
            "errors",
            "rps",
            "p50 ms",
            "p99 ms",
            "base p50",
            "base p99",
            "added p50",
            "rps ratio",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
