"""The compose tier, run on loopback without Docker: the `migrate` service's command, then
three Parley instances with the compose file's own PARLEY_* settings on the real
PostgreSQL, Redis and NATS, behind the shipped nginx.conf. A key's rate limit holds
exactly through the proxy across the three, every instance counts its share on its own
metrics port, and neither the proxy nor an instance's public port serves /metrics.

Only what Docker would resolve is moved: service names to the test's backends, the metrics
port to a free one, nginx's compose address to loopback (where nginx runs here).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, fake_models, serve_in_thread
from tests.backends import NATS_URL, nats_namespace, postgres_database, redis_url
from tests.deploy import proxy
from tests.e2e.test_access import ADMIN, Client

ROOT = Path(__file__).resolve().parents[2]

pytestmark = proxy.needs_nginx


@pytest.fixture
def backends() -> Iterator[dict[str, str]]:
    pg, rd, ns = postgres_database(), redis_url(), nats_namespace()
    yield {"database_url": next(pg), "redis_url": next(rd), "nats_namespace": next(ns)}
    for gen in (ns, rd, pg):
        with pytest.raises(StopIteration):
            next(gen)


def _compose_settings(backends: dict[str, str]) -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    env = compose["services"]["parley-1"]["environment"]
    settings = {
        key.removeprefix("PARLEY_").lower(): value
        for key, value in env.items()
        if key.startswith("PARLEY_")
    }
    assert settings.pop("database_url").endswith("@postgres:5432/parley")
    assert settings.pop("redis_url") == "redis://redis:6379/0"
    assert settings.pop("nats_url") == "nats://nats:4222"
    assert settings.pop("admin_key").startswith("${PARLEY_ADMIN_KEY:?")
    assert settings.pop("metrics_address") == "0.0.0.0:9464"
    assert settings.pop("trusted_proxies") == "172.30.42.10"
    assert settings.pop("secrets_key") == "${PARLEY_SECRETS_KEY:-}"  # optional, from .env
    return {
        **settings,
        **backends,
        "nats_url": NATS_URL,
        "admin_key": ADMIN,
        "metrics_address": "127.0.0.1:0",
        "trusted_proxies": "127.0.0.1",
        "usage_flush_seconds": 0.05,
    }


@pytest.fixture
def tier(
    backends: dict[str, str], loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> Iterator[tuple[str, list[int], list[str]]]:
    """(nginx URL, each instance's metrics port, each instance's URL)."""
    # The migrate service: `parley db upgrade`, once, before any instance starts.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    migrated = subprocess.run(
        [sys.executable, "-m", "parley", "db", "upgrade"],
        env={**env, "PARLEY_DATABASE_URL": backends["database_url"]},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert migrated.returncode == 0, migrated.stderr
    settings = _compose_settings(backends)
    assert settings["auto_migrate"] == "false"  # the instances only check the schema
    with contextlib.ExitStack() as stack:
        apps = [create_app(Settings(**settings), models=fake_models(fake.url)) for _ in range(3)]
        urls = [stack.enter_context(serve_in_thread(loop_thread, app)) for app in apps]
        upstreams = [u.removeprefix("http://") for u in urls]
        url = stack.enter_context(proxy.running(tmp_path, upstreams))
        yield url, [app.state.metrics_port for app in apps], urls


def _chat_requests(metrics_port: int) -> int:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("parley_http_requests_total{") and 'route="/v1/chat/completions"' in line
    )


def test_a_rate_limit_holds_through_nginx_across_three_instances(
    tier: tuple[str, list[int], list[str]],
) -> None:
    url, metrics_ports, instances = tier
    client = Client(url)
    try:
        key = client.new_key(rpm=30)["key"]
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(lambda _: client.chat(key).status_code, range(60)))
    finally:
        client.http.close()
    assert codes.count(200) == 30
    assert codes.count(429) == 30
    counted = [_chat_requests(port) for port in metrics_ports]
    assert sum(counted) == 60  # every request reached an instance, and only one
    assert sum(1 for n in counted if n) >= 2  # nginx spread them
    assert httpx.get(f"{url}/metrics", timeout=5).status_code == 404
    assert httpx.get(f"{instances[0]}/metrics", timeout=5).status_code == 404
