"""Counterparts a chaos test may take away: a Redis server and a NATS server of the test's
own, on free loopback ports, stopped and started at will (the machine's own services stay
up for every other test), and a TCP proxy that delays what it relays."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from parley.testing.servers import free_port


def _wait_port(port: int, *, up: bool, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise AssertionError(f"port {port} did not come {'up' if up else 'down'}")


class Process:
    """A server on ``port``, started from ``command``; ``stop`` kills it (SIGKILL: a
    crash, not a polite shutdown) and ``start`` brings it back on the same port."""

    def __init__(self, command: list[str], port: int) -> None:
        self.command = command
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_port(self.port, up=True)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(10)
            self._proc = None
        _wait_port(self.port, up=False)


@contextlib.contextmanager
def own_redis() -> Iterator[Process]:
    """Redis with its append-only file synced on every write, as a production Redis that
    holds the usage queue should run: a restart keeps what was queued."""
    with tempfile.TemporaryDirectory(prefix="parley-redis-") as data:
        port = free_port()
        server = Process(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", data,
             "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
            port,
        )  # fmt: skip
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def own_nats() -> Iterator[Process]:
    """NATS with JetStream, its store in a temporary directory kept across restarts."""
    with tempfile.TemporaryDirectory(prefix="parley-nats-") as data:
        port = free_port()
        server = Process(
            ["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(Path(data))],
            port,
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()


class DelayProxy:
    """Relays TCP to ``target`` on 127.0.0.1, holding every chunk ``delay`` seconds in
    each direction: a slow network to a counterpart, with the counterpart itself real."""

    def __init__(self, target: int, delay: float) -> None:
        self.target = target
        self.delay = delay
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self._server = future.result(10)
        return self

    def __exit__(self, *_: object) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()  # its self-pipe is a socket pair: left open, a ResourceWarning

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    await asyncio.sleep(self.delay)
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
