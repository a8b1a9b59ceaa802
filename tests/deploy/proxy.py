"""The shipped nginx.conf, run here: Docker's service names (parley-1, ...) do not resolve,
so a copy points its upstream servers at instances a test started and listens on a free
loopback port; every other line is the shipped file's. nginx runs in the foreground, so
the test owns the process it stops."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.polling import eventually

CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# nginx is no dependency of the suite (the compose file runs it from its own image).
needs_nginx = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_copy(directory: Path, upstreams: list[str], port: int) -> Path:
    text = CONF.read_text()
    servers = re.findall(r"server (parley-\d+:4000)", text)
    assert servers == ["parley-1:4000", "parley-2:4000", "parley-3:4000"]
    for name, address in zip(servers, upstreams, strict=True):
        text = text.replace(f"server {name} ", f"server {address} ")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{port};")
    assert text.count("127.0.0.1:") == len(upstreams) + 1
    copy = directory / "nginx.conf"
    copy.write_text(text)
    return copy


def command(conf: Path) -> list[str]:
    """nginx on ``conf``, its prefix and error log beside it (nothing under /etc or /var)."""
    return [NGINX, "-p", str(conf.parent), "-c", str(conf), "-e", str(conf.parent / "error.log")]


@contextlib.contextmanager
def running(directory: Path, upstreams: list[str]) -> Iterator[str]:
    """nginx with the shipped configuration in front of ``upstreams`` (host:port); yields
    its URL once it answers /health/ready through them."""
    port = free_port()
    conf = local_copy(directory, upstreams, port)
    process = subprocess.Popen(
        [*command(conf), "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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
