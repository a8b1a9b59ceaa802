"""deploy/nginx/nginx.conf: `nginx -t` accepts it, and run for real in front of two
Parley instances it streams an answer through, token by token, and hides /metrics.

Docker's service names (parley-1, ...) do not resolve here, so the copy under test points
its upstream servers at the instances this test starts and listens on a free port; every
other line is the shipped file's. Skipped where nginx is not installed (it is no
dependency of the suite; the compose file runs it from its own image).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from parley.testing.fake_upstream import FakeUpstream
from parley.testing.scenario import Behaviour
from tests.polling import eventually

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _local_copy(tmp_path: Path, upstreams: list[str], port: int) -> Path:
    text = CONF.read_text()
    servers = re.findall(r"server (parley-\d+:4000)", text)
    assert servers == ["parley-1:4000", "parley-2:4000", "parley-3:4000"]
    for name, address in zip(servers, upstreams, strict=True):
        text = text.replace(f"server {name} ", f"server {address} ")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{port};")
    assert text.count("127.0.0.1:") == len(upstreams) + 1
    copy = tmp_path / "nginx.conf"
    copy.write_text(text)
    return copy


def _nginx(conf: Path) -> list[str]:
    return [NGINX, "-p", str(conf.parent), "-c", str(conf), "-e", str(conf.parent / "error.log")]


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    conf = _local_copy(tmp_path, ["127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4003"], 8080)
    result = subprocess.run(
        [*_nginx(conf), "-t"], capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.fixture
def proxied(parley: Callable[..., str], tmp_path: Path) -> Iterator[str]:
    """nginx (the shipped configuration) in front of three Parley instances."""
    instances = [parley(trusted_proxies=["127.0.0.1"]).removeprefix("http://") for _ in range(3)]
    port = _free_port()
    conf = _local_copy(tmp_path, instances, port)
    process = subprocess.Popen(  # foreground, so the test owns the process it stops
        [*_nginx(conf), "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        try:
            return httpx.get(f"{url}/health/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        eventually(answering, attempts=300)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


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
