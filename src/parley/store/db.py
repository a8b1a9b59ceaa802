"""The async engine: one per process, built in the lifespan, never at import time.

SQLite (the embedded tier) gets WAL, a busy timeout and foreign keys on every connection,
so concurrent readers never block the batched usage writer. PostgreSQL uses asyncpg.
Errors from the driver are translated to ``StoreError`` at this boundary.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from parley.errors import Conflict, StoreError
from parley.observability import tracing

_DB_SYSTEMS = {"postgresql": "postgresql", "sqlite": "sqlite"}


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url, pool_size=10, max_overflow=20, pool_pre_ping=True, pool_recycle=1800, **kwargs
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@contextlib.contextmanager
def map_store_errors() -> Iterator[None]:
    """A unique or foreign-key violation is the caller's conflict (409); anything else
    from the driver is a store failure whose details stay in the log."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict("conflicts with an existing record") from exc
    except SQLAlchemyError as exc:
        raise StoreError(
            f"database error: {type(getattr(exc, 'orig', None) or exc).__name__}"
        ) from exc


class Database:
    """The engine plus the two ways code uses it: a read connection, a write transaction."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.url = url
        self.engine = create_engine(url, **kwargs)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        if tracing.ON:
            with tracing.span("db read", self._span_attributes("read")):
                async with self._read() as conn:
                    yield conn
            return
        async with self._read() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        if tracing.ON:
            with tracing.span("db write", self._span_attributes("write")):
                async with self._write() as conn:
                    yield conn
            return
        async with self._write() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        with map_store_errors():
            async with self.engine.connect() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        with map_store_errors():
            async with self.engine.begin() as conn:
                yield conn

    def _span_attributes(self, use: str) -> dict[str, str | int]:
        """A database span: which system, read or write transaction, which server."""
        url = self.engine.url
        attributes: dict[str, str | int] = {
            "db.system.name": _DB_SYSTEMS.get(self.dialect, self.dialect),
            "parley.db.use": use,
        }
        if url.host:
            attributes["server.address"] = url.host
        if url.port:
            attributes["server.port"] = url.port
        return attributes

    async def ping(self) -> str | None:
        """Readiness probe: None when the database answers, else why not."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            return f"database unreachable: {type(exc).__name__}"
        return None

    async def close(self) -> None:
        await self.engine.dispose()
