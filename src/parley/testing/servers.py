"""Run Parley (uvicorn) and fakes on free loopback ports, for tests and benchmarks.

``LoopThread`` owns an event loop in a daemon thread, so synchronous clients (the official
``openai`` SDK, httpx) can talk to servers living in the same process.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any, TypeVar

import uvicorn

from parley.api.server import ParleyHttpProtocol
from parley.config.loader import LoadedModels, parse_models, resolve_groups
from parley.testing.aws import (
    FAKE_AWS_ACCESS_KEY_ID,
    FAKE_AWS_REGION,
    FAKE_AWS_SECRET_ACCESS_KEY,
    FAKE_AWS_SESSION_KEY_ID,
    FAKE_AWS_SESSION_SECRET,
    FAKE_AWS_SESSION_TOKEN,
)

T = TypeVar("T")

FAMILIES = ("openai", "azure", "anthropic", "gemini", "openai_compatible", "bedrock")
FAKE_KEY_ENV = "PARLEY_TEST_FAKE_KEY"
AWS_KEY_ID_ENV = "PARLEY_TEST_AWS_ACCESS_KEY_ID"
AWS_SECRET_ENV = "PARLEY_TEST_AWS_SECRET_ACCESS_KEY"
AWS_SESSION_KEY_ID_ENV = "PARLEY_TEST_AWS_SESSION_KEY_ID"
AWS_SESSION_SECRET_ENV = "PARLEY_TEST_AWS_SESSION_SECRET"
AWS_SESSION_TOKEN_ENV = "PARLEY_TEST_AWS_SESSION_TOKEN"
BEDROCK_CREDENTIALS = {
    "aws_region": FAKE_AWS_REGION,
    "aws_access_key_id": f"os.environ/{AWS_KEY_ID_ENV}",
    "aws_secret_access_key": f"os.environ/{AWS_SECRET_ENV}",
}
"""A Bedrock deployment's credentials in the fake's test account (static keys)."""
BEDROCK_SESSION_CREDENTIALS = {
    "aws_region": FAKE_AWS_REGION,
    "aws_access_key_id": f"os.environ/{AWS_SESSION_KEY_ID_ENV}",
    "aws_secret_access_key": f"os.environ/{AWS_SESSION_SECRET_ENV}",
    "aws_session_token": f"os.environ/{AWS_SESSION_TOKEN_ENV}",
}
"""The same with temporary (STS-style) credentials: a session token too."""
_UPSTREAM_MODEL = {
    "openai": "gpt-4o-mini",
    "azure": "gpt-4o-mini-deployment",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
    "openai_compatible": "llama-3.1-8b",
    "bedrock": "anthropic.claude-3-5-sonnet-20240620-v1:0",  # ':' must be escaped in the path
}


def _environ(key: str) -> dict[str, str]:
    """What the references resolve to. A ``bad...`` key is Bedrock's wrong secret, so the
    fake refuses its signature as the others refuse the key."""
    return {
        FAKE_KEY_ENV: key,
        AWS_KEY_ID_ENV: FAKE_AWS_ACCESS_KEY_ID,
        AWS_SECRET_ENV: key if key.startswith("bad") else FAKE_AWS_SECRET_ACCESS_KEY,
        AWS_SESSION_KEY_ID_ENV: FAKE_AWS_SESSION_KEY_ID,
        AWS_SESSION_SECRET_ENV: FAKE_AWS_SESSION_SECRET,
        AWS_SESSION_TOKEN_ENV: FAKE_AWS_SESSION_TOKEN,
    }


def fake_models(
    fake_url: str,
    *,
    directive: str = "",
    key: str = "fake-secret-key-123456",
    extra: Mapping[str, Any] | None = None,
    group: Mapping[str, Any] | None = None,
) -> LoadedModels:
    """One model group per provider family, named after the family, all at ``fake_url``.

    ``directive`` (e.g. ``"+error-500"``) is appended to each upstream model name so the
    fake misbehaves on purpose; group names stay the family names. ``extra`` is merged into
    each deployment, ``group`` into each group (``{"retries": 0}``, say).
    """
    groups = []
    for family in FAMILIES:
        dep: dict[str, Any] = {"provider": family, "model": _UPSTREAM_MODEL[family] + directive}
        if family in ("openai", "openai_compatible"):
            dep["api_base"] = f"{fake_url}/v1"
        else:
            dep["api_base"] = fake_url
        if family == "bedrock":
            dep.update(BEDROCK_CREDENTIALS)
        elif family != "openai_compatible":
            dep["api_key"] = f"os.environ/{FAKE_KEY_ENV}"
        dep.update(extra or {})
        groups.append({"name": family, "deployments": [dep], **(group or {})})
    parsed = parse_models({"models": groups})
    return LoadedModels(resolve_groups(parsed, _environ(key)), "test")


def models_from(
    groups: list[dict[str, Any]], key: str = "fake-secret-key-123456", **extra: Any
) -> LoadedModels:
    """Model groups written as a test needs them (the YAML file's shape, as dicts; ``extra``
    for ``tiered`` and ``experiments``); a deployment's ``api_key`` may reference
    ``os.environ/PARLEY_TEST_FAKE_KEY``, a Bedrock one ``BEDROCK_CREDENTIALS``."""
    parsed = parse_models({"models": groups, **extra})
    return LoadedModels(
        resolve_groups(parsed, _environ(key)),
        "test",
        tiered=parsed.tiered,
        experiments=parsed.experiments,
        budget=parsed.budget,
        user_tiers=parsed.user_tiers,
    )


def free_port() -> int:
    """A loopback port free right now (for subprocesses that must bind it themselves;
    in-process servers bind port 0 directly, which has no race)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class _PromptServer(uvicorn.Server):
    """uvicorn's server, minus the fixed waits of its stop: ``main_loop`` notices
    ``should_exit`` on a 0.1 s tick, and ``shutdown`` sleeps 0.1 s after asking the
    connections to close, then polls them every 0.1 s. A test suite that starts and stops
    a server per test spent minutes there; here the loop wakes when told to stop and the
    connections are awaited only as long as they take (the same 0.1 s at most before the
    graceful wait). Everything else, the lifespan shutdown included, is uvicorn's."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stop = asyncio.Event()

    def stop_soon(self) -> None:
        """Ask to stop (on the server's loop)."""
        self.should_exit = True
        self._stop.set()

    async def main_loop(self) -> None:
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        for _ in range(20):  # idle keep-alive connections close at once; 0.1 s at most
            if not self.server_state.connections:
                break
            await asyncio.sleep(0.005)
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                await self._drained()
        except TimeoutError:
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def _drained(self) -> None:
        """Connections still answering, then background tasks, have finished."""
        state = self.server_state
        while not self.force_exit:
            if not (state.connections or state.tasks):
                break
            await asyncio.sleep(0.01)
        for server in self.servers:
            await server.wait_closed()


class AppServer:
    """uvicorn serving an ASGI app on a free loopback port, lifespan included."""

    def __init__(self, app: Any, *, graceful_seconds: int = 5) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            http=ParleyHttpProtocol,  # what `parley serve` runs
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=graceful_seconds,
        )
        self._server = _PromptServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> str:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the startup error
                raise RuntimeError("server stopped during startup")
            await asyncio.sleep(0.01)
        return self.url

    async def stop(self) -> None:
        self._server.stop_soon()
        if self._task is not None:
            await self._task
        self._sock.close()


@contextlib.contextmanager
def serve_in_thread(loop: LoopThread, app: Any) -> Iterator[str]:
    server = AppServer(app)
    url = loop.run(server.start())
    try:
        yield url
    finally:
        loop.run(server.stop())
