"""Browser tests: Debian's Chromium, driven by Python playwright, against a real
``parley serve`` subprocess in front of the ``parley.testing`` fake upstream.

One browser and one server for the package (``chromium`` in tests/conftest.py says why not
for the whole session); a
fresh browser context (cookies, storage) per test, and each test registers its own user.
Every request a page makes is checked: one that leaves 127.0.0.1 is aborted and fails the
test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, free_port
from tests.conftest import _running_fake, chromium

PASSWORD = "correct horse battery staple 9"


@dataclass
class Server:
    url: str
    fake: FakeUpstream
    log: Path
    process: subprocess.Popen[bytes] | None = None


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"parley serve exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"parley serve did not become ready: {log.read_text()[-3000:]}")


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One Chromium for the browser tests, closed when they are done (see ``chromium``)."""
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="package")
def browser_fake(loop_thread: LoopThread) -> Iterator[FakeUpstream]:
    """One fake upstream for the session's server."""
    yield from _running_fake(loop_thread)


def _model(name: str, provider: str, model: str, api_base: str, extra: str = "") -> str:
    return (
        f"  - name: {name}\n"
        "    deployments:\n"
        f"      - provider: {provider}\n"
        f"        model: {model}\n"
        f"        api_base: {api_base}\n"
        "        api_key: os.environ/PARLEY_TEST_FAKE_KEY\n"
        f"{extra}"
    )


@contextmanager
def serving(
    home: Path,
    fake: FakeUpstream,
    models: str,
    env: dict[str, str] | None = None,
    *,
    port: int | None = None,
) -> Iterator[Server]:
    """``parley serve`` on a loopback port (a free one unless given) with ``models`` (YAML
    list items) as its model groups and its database in ``home``, stopped on exit (a test
    may kill ``process`` first, and serve ``home`` again on the same port)."""
    config = home / "parley.yaml"
    config.write_text("models:\n" + models)
    port = port or free_port()
    log = home / "serve.log"
    full_env = {
        **os.environ,
        "PARLEY_TEST_FAKE_KEY": "fake-secret-key-123456",
        "PARLEY_DATABASE_URL": f"sqlite:///{home}/parley.db",
        # Each browser context says it is a client of its own (``own_address``), so one
        # test's failed sign-ins never lock the address every other test comes from.
        "PARLEY_TRUSTED_PROXIES": "127.0.0.1",
        **(env or {}),
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "parley", "serve", "--port", str(port), "--config", str(config)],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield Server(url, fake, log, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="package")
def server(
    browser_fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """``parley serve`` on a free loopback port with model groups at the fake: ``chat-fast``
    (echoes at once), ``chat-slow`` (80 words, 0.15 s apart), ``chat-careful``
    (the Anthropic format)."""
    url = browser_fake.url
    models = (
        _model("chat-fast", "openai", "gpt-4o-mini", f"{url}/v1")
        + _model("chat-slow", "openai", "gpt-4o-mini+chunk-delay-0.15+tokens-80", f"{url}/v1")
        + _model("chat-careful", "anthropic", "claude-sonnet-4-5", url)
    )
    with serving(tmp_path_factory.mktemp("browser-server"), browser_fake, models) as running:
        yield running


class Guard:
    """Aborts, and remembers, every request that leaves 127.0.0.1."""

    def __init__(self) -> None:
        self.escaped: list[str] = []

    def __call__(self, route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            route.continue_()
        else:
            self.escaped.append(route.request.url)
            route.abort()


@pytest.fixture
def new_page(browser: Any, server: Server) -> Iterator[Callable[..., Any]]:
    """``new_page(width=1280, dark=False, headers=None, timezone=None)``: a page in a fresh
    context (``timezone``: an IANA zone, with the en-US locale); a page error or a request
    off 127.0.0.1 fails the test."""
    contexts: list[Any] = []
    guards: list[Guard] = []
    errors: list[str] = []

    def make(
        *,
        width: int = 1280,
        height: int = 800,
        dark: bool = False,
        context: Any = None,
        headers: dict[str, str] | None = None,
        timezone: str | None = None,
    ) -> Any:
        if context is None:
            zone = {"timezone_id": timezone, "locale": "en-US"} if timezone else {}
            context = browser.new_context(
                viewport={"width": width, "height": height},
                color_scheme="dark" if dark else "light",
                base_url=server.url,
                extra_http_headers={**own_address(), **(headers or {})},
                **zone,
            )
            guard = Guard()
            context.route("**/*", guard)
            contexts.append(context)
            guards.append(guard)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(20_000)
        return page

    yield make
    for context in contexts:
        context.close()
    escaped = [url for guard in guards for url in guard.escaped]
    assert not escaped, f"requests left 127.0.0.1: {escaped}"
    assert not errors, f"uncaught errors in the page: {errors}"


def own_address() -> dict[str, str]:
    """Headers that make a context a client of its own address (198.18.0.0/15, the
    benchmarking range: never a real client)."""
    n = uuid.uuid4().int % 65_534 + 1
    return {"x-forwarded-for": f"198.{18 + n // 65_536}.{n // 256 % 256}.{n % 256}"}


def unique_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


def register(page: Any, *, name: str = "Ada Lovelace", email: str | None = None) -> str:
    """Register through the page and wait for the chat; returns the email used."""
    email = email or unique_email()
    page.goto("/register")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.get_by_role("textbox", name="Message").wait_for()
    page.get_by_role("combobox", name="Model").wait_for()  # Send waits for the model list
    return email
