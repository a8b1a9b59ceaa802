"""Real-service addresses for integration tests, overridable by environment, and helpers
that give each test an isolated Redis database and PostgreSQL database."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from redis import Redis

REDIS_URL = os.environ.get("PARLEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get(
    "PARLEY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
NATS_URL = os.environ.get("PARLEY_TEST_NATS_URL", "nats://127.0.0.1:4222")


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


def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database created for one test and dropped after it."""
    name = f"parley_test_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_URL

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    base = admin.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
