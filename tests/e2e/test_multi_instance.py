"""Two Parley instances on one Redis and one PostgreSQL hold limits, budgets and
revocation exactly; a killed instance loses no usage record."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, free_port, models_from, serve_in_thread
from tests.conftest import ParleyFactory
from tests.e2e.test_access import ADMIN, PRICE, Client, error


@pytest.fixture
def pair(shared: dict[str, str], parley: ParleyFactory) -> Iterator[tuple[Client, Client]]:
    settings: dict[str, Any] = {"admin_key": ADMIN, "usage_flush_seconds": 0.05, **shared}
    a = Client(parley(directive="+tokens-30", extra=PRICE, **settings))
    b = Client(parley(directive="+tokens-30", extra=PRICE, **settings))
    yield a, b
    a.http.close()
    b.http.close()


def test_rpm_is_exact_across_two_instances(pair: tuple[Client, Client]) -> None:
    a, b = pair
    key = a.new_key(rpm=60)["key"]
    targets = itertools.cycle([a, b])
    jobs = [next(targets) for _ in range(200)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda c: c.chat(key, max_tokens=5).status_code, jobs))
    assert codes.count(200) == 60
    assert codes.count(429) == 140


def test_budget_stops_at_the_crossing_request_on_either_instance(
    pair: tuple[Client, Client],
) -> None:
    a, b = pair
    key = a.new_key(budget_usd=0.10, budget_period="total")["key"]
    # $0.03 per request: three fit in $0.10, the fourth would cross it, wherever it lands
    codes = [c.chat(key, max_tokens=30).status_code for c in (a, b, a, b, a, b)]
    assert codes == [200, 200, 200, 429, 429, 429]
    assert error(b.chat(key, max_tokens=30))["code"] == "budget_exceeded"


def test_budget_holds_under_concurrency_across_instances(pair: tuple[Client, Client]) -> None:
    a, b = pair
    key = a.new_key(budget_usd=0.30, budget_period="monthly")["key"]
    jobs = [a, b] * 15
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(lambda c: c.chat(key, max_tokens=30).status_code, jobs))
    assert codes.count(200) == 10  # $0.30 / $0.03, never more however the race goes


def test_key_revoked_on_one_instance_is_refused_by_the_other(pair: tuple[Client, Client]) -> None:
    a, b = pair
    key = a.new_key()
    assert b.chat(key["key"]).status_code == 200  # B has the key cached now
    assert a.admin("DELETE", f"/admin/keys/{key['id']}").status_code == 200
    assert b.chat(key["key"]).status_code == 401


def serve_process(
    config: Path, env: dict[str, str], ready_s: float = 30
) -> tuple[subprocess.Popen[bytes], str]:
    """``parley serve`` as a process of its own (to be killed), once it answers ready."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley", "serve", "--port", str(port), "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("parley did not become ready")


def _usage_ids(database_url: str) -> set[str]:
    async def fetch() -> set[str]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch("SELECT request_id FROM usage")
        finally:
            await conn.close()
        return {r["request_id"] for r in rows}

    return asyncio.run(fetch())


@pytest.mark.slow
def test_sigkilled_instance_loses_no_usage_record(
    shared: dict[str, str], fake: FakeUpstream, tmp_path: Path
) -> None:
    config = tmp_path / "models.yaml"
    config.write_text(
        "models:\n  - name: m\n    deployments:\n"
        f"      - {{provider: openai_compatible, model: m+tokens-3, api_base: '{fake.url}/v1'}}\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")},
        "PARLEY_DATABASE_URL": shared["database_url"],
        "PARLEY_REDIS_URL": shared["redis_url"],
        "PARLEY_ADMIN_KEY": ADMIN,
        "PARLEY_USAGE_CLAIM_IDLE_SECONDS": "1",
    }

    def serve() -> tuple[subprocess.Popen[bytes], str]:
        return serve_process(config, env)

    first, url = serve()
    sent: set[str] = set()
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            admin = {"authorization": f"Bearer {ADMIN}"}
            key = http.post("/admin/keys", json={}, headers=admin).json()["key"]
            for i in range(40):
                rid = f"kill-test-{i}"
                response = http.post(
                    "/v1/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                    headers={"x-request-id": rid, "authorization": f"Bearer {key}"},
                )
                assert response.status_code == 200
                sent.add(rid)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    second, _ = serve()  # another instance takes over what the dead one left
    try:
        deadline = time.monotonic() + 20
        stored: set[str] = set()
        while time.monotonic() < deadline:
            stored = {r.split(".")[0] for r in _usage_ids(shared["database_url"])}
            if sent <= stored:
                break
            time.sleep(0.2)
        assert sent <= stored, f"lost {len(sent - stored)} usage records"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)


def test_refresh_replayed_on_b_after_rotation_on_a_revokes_the_family(
    shared: dict[str, str], parley: ParleyFactory
) -> None:
    settings: dict[str, Any] = {"admin_key": ADMIN, "allow_registration": True, **shared}
    a = Client(parley(**settings))
    b = Client(parley(**settings))
    try:
        password = "correct horse battery staple 42"
        a.http.post(
            "/auth/register", json={"email": "ada@example.com", "password": password, "name": "Ada"}
        )
        login = b.http.post("/auth/login", json={"email": "ada@example.com", "password": password})
        first = login.json()["refresh_token"]
        rotated = a.http.post("/auth/refresh", json={"refresh_token": first}).json()
        me = {"authorization": f"Bearer {rotated['access_token']}"}
        assert b.http.get("/api/me", headers=me).status_code == 200
        replay = b.http.post("/auth/refresh", json={"refresh_token": first})
        assert replay.status_code == 401
        assert error(replay)["code"] == "token_reused"
        assert a.http.get("/api/me", headers=me).status_code == 401  # revoked on A at once
        assert (
            a.http.post(
                "/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
            ).status_code
            == 401
        )
    finally:
        a.http.close()
        b.http.close()


def test_breaker_opened_on_one_instance_is_open_on_the_other(
    shared: dict[str, str], loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> None:
    groups = [
        {
            "name": "chat",
            "circuit_breaker": {"min_requests": 2, "failure_rate": 0.5, "cooldown": 60},
            "deployments": [
                {
                    "provider": "openai_compatible",
                    "model": "m+error-500",
                    "api_base": f"{fake.url}/v1",
                    "name": "broken",
                },
                {
                    "provider": "openai_compatible",
                    "model": "m",
                    "api_base": f"{fake.url}/v1",
                    "name": "healthy",
                    "order": 2,
                },
            ],
        }
    ]
    settings = Settings(admin_key=ADMIN, **shared)
    with contextlib.ExitStack() as stack:
        a, b = (
            stack.enter_context(
                serve_in_thread(loop_thread, create_app(settings, models=models_from(groups)))
            )
            for _ in range(2)
        )
        auth = {"authorization": f"Bearer {ADMIN}"}
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(2):
            assert (
                httpx.post(f"{a}/v1/chat/completions", json=body, headers=auth).status_code == 200
            )
        broken_calls = sum(1 for c in fake.calls if c.body["model"] == "m+error-500")
        assert broken_calls == 2  # A opened its breaker after two failures
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            state = httpx.get(f"{b}/admin/deployments", headers=auth).json()["data"]
            if {r["deployment"]: r["breaker"] for r in state}["broken"] == "open":
                break
            time.sleep(0.05)
        answer = httpx.post(f"{b}/v1/chat/completions", json=body, headers=auth)
        assert answer.headers["x-parley-deployment"] == "healthy"
        # B never called the broken deployment: it learned from A
        assert sum(1 for c in fake.calls if c.body["model"] == "m+error-500") == broken_calls
