"""deploy/nginx/nginx.conf: `nginx -t` accepts it, and run for real in front of three
Parley instances it streams an answer through, event by event, and hides /metrics.
Skipped where nginx is not installed (see proxy.py)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from parley.testing.fake_upstream import FakeUpstream
from parley.testing.scenario import Behaviour
from tests.deploy import proxy

pytestmark = proxy.needs_nginx


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    conf = proxy.local_copy(tmp_path, ["127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4003"], 8080)
    result = subprocess.run(
        [*proxy.command(conf), "-t"], capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.fixture
def proxied(parley: Callable[..., str], tmp_path: Path) -> Iterator[str]:
    """nginx (the shipped configuration) in front of three Parley instances."""
    instances = [parley(trusted_proxies=["127.0.0.1"]).removeprefix("http://") for _ in range(3)]
    with proxy.running(tmp_path, instances) as url:
        yield url


def test_a_stream_passes_through_unbuffered_and_metrics_stay_private(
    proxied: str, fake: FakeUpstream
) -> None:
    fake.defaults = Behaviour(chunk_delay=0.1, tokens=4)
    body = {
        "model": "openai",
        "messages": [{"role": "user", "content": "Count to five, slowly"}],
        "stream": True,
    }
    arrivals: list[float] = []
    with httpx.stream("POST", f"{proxied}/v1/chat/completions", json=body, timeout=30) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.perf_counter())
    # Each event left the upstream 0.1 s after the one before; a buffering proxy would
    # have held them and delivered them together at the end (proxy_buffering off here,
    # and Parley's own X-Accel-Buffering: no, both forbid that).
    assert len(arrivals) >= 4
    assert arrivals[-1] - arrivals[0] >= 0.2
    assert httpx.get(f"{proxied}/metrics", timeout=5).status_code == 404
