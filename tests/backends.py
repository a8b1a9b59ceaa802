"""Real-service addresses for integration tests, overridable by environment, and helpers
that give each test an isolated Redis database, PostgreSQL database and SQLite file.

Tests that start Parley on a database, rather than test the migrations, get one that
starts as a copy of a database migrated once per session (a SQLite file copy; PostgreSQL's
``CREATE DATABASE ... TEMPLATE``): the schema is the migrations' own, and the app's
start-up still checks its revision. That and dropping PostgreSQL databases in the
background (a drop waits for a checkpoint, about a second) took minutes off the suite.
Tests of the migrations themselves ask for empty databases.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from redis import Redis

REDIS_URL = os.environ.get("PARLEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get(
    "PARLEY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
NATS_URL = os.environ.get("PARLEY_TEST_NATS_URL", "nats://127.0.0.1:4222")
T = TypeVar("T")


def redis_url() -> Iterator[str]:
    """A flushed Redis database (index 15 unless overridden), flushed again afterwards."""
    client = Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except OSError as exc:  # pragma: no cover - the services run on every dev and CI machine
        pytest.fail(f"Redis not reachable at {REDIS_URL}: {exc}")
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


def _in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a loop of its own, whatever loop the calling thread has running."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _postgres_url(name: str) -> str:
    return f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"


async def _migrate(url: str) -> None:
    from parley.store import migrate  # noqa: PLC0415 - the helpers above need no Parley
    from parley.store.db import Database  # noqa: PLC0415

    db = Database(url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.close()


_lock = threading.Lock()
_pg_template: str | None = None
_sqlite_template: Path | None = None
_drops = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="drop-databases")
_dropping: list[concurrent.futures.Future[None]] = []


def _template_database() -> str:
    """The session's migrated PostgreSQL database, made on first use."""
    global _pg_template  # noqa: PLW0603 - one per session, made lazily
    with _lock:
        if _pg_template is None:
            name = f"parley_template_{uuid.uuid4().hex[:12]}"
            asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
            _in_thread(
                _migrate(_postgres_url(name).replace("postgresql://", "postgresql+asyncpg://"))
            )
            _pg_template = name
        return _pg_template


def postgres_database(*, migrated: bool = False) -> Iterator[str]:
    """A fresh PostgreSQL database created for one test and dropped after it (in the
    background: ``finish_drops`` waits). ``migrated``: a copy of the session's migrated
    database, for tests that run Parley on it."""
    name = f"parley_test_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{_template_database()}"' if migrated else ""
    asyncio.run(_admin(f'CREATE DATABASE "{name}"{template}'))
    yield _postgres_url(name)
    _dropping.append(
        _drops.submit(asyncio.run, _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    )


def finish_drops() -> None:
    """Wait for the dropped databases (and drop the template): at the session's end."""
    global _pg_template
    if _pg_template is not None:
        name, _pg_template = _pg_template, None
        _dropping.append(
            _drops.submit(asyncio.run, _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        )
    done, _ = concurrent.futures.wait(_dropping)
    _dropping.clear()
    for future in done:
        future.result()  # a drop that failed fails the session


def sqlite_url(directory: Path, name: str = "parley.db") -> str:
    """``sqlite:///directory/name``, the file a copy of the session's migrated SQLite
    database unless it exists already (a second instance on the same file)."""
    global _sqlite_template  # noqa: PLW0603 - one per session, made lazily
    path = directory / name
    with _lock:
        if _sqlite_template is None:
            folder = Path(tempfile.mkdtemp(prefix="parley-template-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            _in_thread(_migrate(f"sqlite+aiosqlite:///{folder}/template.db"))
            _sqlite_template = folder / "template.db"
        if not path.exists():
            shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


def nats_namespace() -> Iterator[str]:
    """A namespace (subjects and JetStream streams) of one test's own, whose streams are
    deleted afterwards."""
    namespace = f"t{uuid.uuid4().hex[:12]}"

    async def drop() -> None:
        from parley.bus.base import Subjects  # noqa: PLC0415
        from parley.bus.nats import NatsBus  # noqa: PLC0415

        bus = NatsBus(NATS_URL, Subjects(namespace))
        await bus.start()
        await bus.delete_streams()
        await bus.close()

    yield namespace
    asyncio.run(drop())
