"""Shared fixtures: a background loop, a fake upstream, and Parley served in front of it."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import argon2
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.identity import passwords
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, fake_models, serve_in_thread
from tests.backends import finish_drops, postgres_database, redis_url, sqlite_url

# The suite builds and drops many apps in one process: a frozen heap would keep every
# dropped app's reference cycles forever (see parley/runtime.py). Servers the tests start
# as subprocesses inherit this too.
os.environ.setdefault("PARLEY_GC_GEN0_THRESHOLD", "0")


@pytest.fixture(autouse=True)
def _password_cost(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps started in this process hash passwords with argon2id at its minimum cost.

    The production profile (64 MiB, three passes, four lanes) took about a second per hash
    on a loaded two-core machine, and most end-to-end tests register and sign in a few
    users: that was the largest part of the suite's time. The hashing code is the same;
    tests marked ``real_password_cost`` (tests/unit/test_identity.py, which checks the
    production parameters and the rehash on login) keep them, and so do the servers run
    as subprocesses (tests/browser, the CLI tests)."""
    if request.node.get_closest_marker("real_password_cost") is None:
        minimal = functools.partial(
            argon2.PasswordHasher, time_cost=1, memory_cost=8, parallelism=1
        )
        monkeypatch.setattr(passwords, "PasswordHasher", minimal)


@pytest.fixture(scope="session", autouse=True)
def _dropped_databases() -> Iterator[None]:
    """PostgreSQL databases are dropped in the background (tests/backends.py says why);
    the session ends when they are gone, and fails if a drop did."""
    yield
    finish_drops()


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


def _running_fake(loop_thread: LoopThread) -> Iterator[FakeUpstream]:
    async def make() -> FakeUpstream:
        upstream = FakeUpstream()
        await upstream.start()
        return upstream

    upstream = loop_thread.run(make())
    yield upstream
    loop_thread.run(upstream.stop())


@pytest.fixture
def fake(loop_thread: LoopThread) -> Iterator[FakeUpstream]:
    """A fresh fake upstream per test, so call counts and faults never leak between tests."""
    yield from _running_fake(loop_thread)


@pytest.fixture
def second_fake(loop_thread: LoopThread) -> Iterator[FakeUpstream]:
    """Another, independent fake: faults queued on one never reach the other."""
    yield from _running_fake(loop_thread)


ParleyFactory = Callable[..., str]


@pytest.fixture
def shared() -> Iterator[dict[str, str]]:
    """The settings of two or more Parley instances on one PostgreSQL (migrated) and one
    Redis, both fresh and dropped after the test."""
    pg, rd = postgres_database(migrated=True), redis_url()
    yield {"database_url": next(pg), "redis_url": next(rd)}
    for gen in (rd, pg):
        with pytest.raises(StopIteration):
            next(gen)


@pytest.fixture
def parley(loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path) -> Iterator[ParleyFactory]:
    """Start Parley in front of ``fake``: ``parley(directive="+error-500", drop_params=True)``.

    Returns the base URL; every server started is stopped after the test. Each gets a
    SQLite database in the test's temporary directory (migrated: ``sqlite_url``) unless
    ``database_url`` is given.
    """
    servers = contextlib.ExitStack()

    def start(
        directive: str = "",
        key: str = "fake-secret-key-123456",
        extra: dict[str, Any] | None = None,
        group: dict[str, Any] | None = None,
        **settings: Any,
    ) -> str:
        models = fake_models(fake.url, directive=directive, key=key, extra=extra, group=group)
        if "database_url" not in settings:
            settings["database_url"] = sqlite_url(tmp_path)
        app = create_app(Settings(**settings), models=models)
        return servers.enter_context(serve_in_thread(loop_thread, app))

    with servers:
        yield start


CHROMIUM = os.environ.get("PARLEY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium under playwright. Missing Chromium skips, but fails under
    ``CI=true`` (scripts/install-chromium.sh installs it).

    Hold it no longer than the tests that need it: playwright's sync API keeps an event loop
    running on this thread while it is open, so ``asyncio.run`` (the shared backends'
    fixtures use it) fails until it closes."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium missing at {CHROMIUM}: scripts/install-chromium.sh installs it")
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/install-chromium.sh)")
    with sync_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
