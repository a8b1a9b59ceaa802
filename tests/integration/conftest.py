"""Fixtures the integration suites share: the local embedding model (loaded once), and a
migrated database on SQLite and on PostgreSQL with two users in it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from parley.gateway.cache.embedders import LocalEmbedder
from parley.store import migrate
from parley.store.db import Database
from parley.store.tables import users
from tests.backends import postgres_database, sqlite_url

ADA, BOB = "a" * 32, "b" * 32


@pytest.fixture(scope="session")
def local() -> Iterator[LocalEmbedder]:
    embedder = LocalEmbedder()
    embedder.start().result()
    yield embedder
    embedder.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLite file, or a fresh PostgreSQL database (made outside the test's loop); both
    start migrated (tests/backends.py: the migrations are tested in test_store.py)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path).replace("sqlite:///", "sqlite+aiosqlite:///")
        return
    for url in postgres_database(migrated=True):
        yield url.replace("postgresql://", "postgresql+asyncpg://")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema yet, for tests of a migration itself."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/empty.db"
        return
    for url in postgres_database():
        yield url.replace("postgresql://", "postgresql+asyncpg://")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """Migrated, with users ``ADA`` and ``BOB``."""
    database = Database(database_url)
    await migrate.upgrade(database)
    async with database.write() as conn:
        for uid in (ADA, BOB):
            await conn.execute(
                users.insert().values(
                    id=uid,
                    email=f"{uid[:3]}@example.com",
                    name="x",
                    password_hash="!",
                    created_ms=0,
                )
            )
    yield database
    await database.close()
