"""A real forward proxy for the egress tests: proxy.py (a maintained PyPI package) run as
a subprocess on a free loopback port, with Basic authentication. Its access log says
which requests and tunnels went through it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from parley.testing.servers import free_port

USER, PASSWORD = "egress-user", "egress-pa55word"


@dataclass
class ForwardProxy:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url_with_credentials(self) -> str:
        return f"http://{USER}:{PASSWORD}@127.0.0.1:{self.port}"

    def access_log(self) -> list[str]:
        """One line per request or tunnel the proxy served (``CONNECT host:port``,
        ``POST host:port/path``)."""
        return [line for line in self.log.read_text().splitlines() if "access_log" in line]


def _accepting(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running_proxy(tmp: Path) -> Iterator[ForwardProxy]:
    port = free_port()
    log = tmp / "proxy.log"
    command = [
        sys.executable, "-m", "proxy",
        "--hostname", "127.0.0.1", "--port", str(port),
        "--basic-auth", f"{USER}:{PASSWORD}",
        "--num-workers", "1", "--num-acceptors", "1",
        "--log-level", "INFO",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):  # bounded: 30 s at most
            if process.poll() is not None:
                raise RuntimeError(f"proxy.py exited: {log.read_text()[-2000:]}")
            if _accepting(port):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("proxy.py did not start listening")
        yield ForwardProxy(port, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
