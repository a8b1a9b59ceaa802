"""The async engine: one per process, built in the lifespan, never at import time.

SQLite (the embedded tier) gets WAL, a busy timeout and foreign keys on every connection,
so concurrent readers never block the batched usage writer. PostgreSQL uses asyncpg.
Errors from the driver are translated to ``StoreError`` at this boundary.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Iterator, Sequence
from types import ModuleType
from typing import Any

from sqlalchemy import event, make_url, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from parley.errors import Conflict, StoreError
from parley.observability import tracing
from parley.observability.metrics import Metrics
from parley.store.replicas import Replica, Replicas
from parley.store.sqlite_writer import SqliteWriter

_DB_SYSTEMS = {"postgresql": "postgresql", "sqlite": "sqlite"}


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url, pool_size=10, max_overflow=20, pool_pre_ping=True, pool_recycle=1800, **kwargs
    )


def dialect_module(name: str) -> ModuleType:
    """SQLAlchemy's dialect package for a dialect ``name`` (``postgresql`` or ``sqlite``),
    for its ``insert`` with ON CONFLICT. Imported on first use: PostgreSQL's package loads
    every PostgreSQL driver's dialect (~0.14 s), which an SQLite gateway never needs."""
    return importlib.import_module(
        "sqlalchemy.dialects.postgresql" if name == "postgresql" else "sqlalchemy.dialects.sqlite"
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
    except OSError as exc:  # the driver could not reach the server (asyncpg's connect)
        raise StoreError(f"database unreachable: {type(exc).__name__}") from exc


class Database:
    """The engine plus the two ways code uses it: a read connection, a write transaction."""

    def __init__(
        self,
        url: str,
        *,
        replica_urls: Sequence[str] = (),
        replica_max_lag_s: float = 5.0,
        replica_check_s: float = 2.0,
        metrics: Metrics | None = None,
        **kwargs: Any,
    ) -> None:
        self.url = url
        self.engine = create_engine(url, **kwargs)
        self._sqlite_writer: SqliteWriter | None = None
        path = make_url(url).database if url.startswith("sqlite") else None
        if path and path != ":memory:" and not path.startswith("file:"):
            self._sqlite_writer = SqliteWriter(path)
        self.replicas: Replicas | None = None
        if replica_urls:
            self.replicas = Replicas(
                [Replica(_shown(u), create_engine(u, **kwargs)) for u in replica_urls],
                max_lag_s=replica_max_lag_s,
                check_s=replica_check_s,
                metrics=metrics,
            )

    async def start(self) -> None:
        """Check the replicas once, then keep checking them in the background."""
        if self.replicas is not None:
            await self.replicas.check(self.engine)
            self.replicas.start(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.asynccontextmanager
    async def read(self, *, lag_ok: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection for reading. ``lag_ok``: the read tolerates replica lag (lists,
        pages, search, usage reports, shared links), so a healthy replica may serve it
        unless the request's user wrote just now (``store/replicas.py``)."""
        engine = self.engine
        replica = None
        if lag_ok and self.replicas is not None:
            replica = self.replicas.choose()
            self.replicas.note_read(replica)
            if replica is not None:
                engine = replica.engine
        if tracing.ON:
            attributes = self._span_attributes("read", engine)
            with tracing.span("db read", attributes):
                async with self._read(engine, replica) as conn:
                    yield conn
            return
        async with self._read(engine, replica) as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        if tracing.ON:
            with tracing.span("db write", self._span_attributes("write", self.engine)):
                async with self._write() as conn:
                    yield conn
            return
        async with self._write() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _read(
        self, engine: AsyncEngine, replica: Replica | None
    ) -> AsyncIterator[AsyncConnection]:
        if replica is None:
            with map_store_errors():
                async with engine.connect() as conn:
                    yield conn
            return
        conn = engine.connect()
        try:
            await conn.start()
        except (SQLAlchemyError, OSError) as exc:  # out of rotation; the primary serves
            assert self.replicas is not None
            self.replicas.failed(replica, exc)
            async with self._read(self.engine, None) as primary:
                yield primary
            return
        try:
            with map_store_errors():
                yield conn
        finally:
            await conn.close()

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        with map_store_errors():
            async with self.engine.begin() as conn:
                yield conn
        if self.replicas is not None:
            self.replicas.wrote()

    async def insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (``sql`` compiled for this dialect, positional parameters) in
        one write transaction. On a SQLite file that is one hop to a dedicated writer
        connection (``store/sqlite_writer.py``); otherwise the engine's ``executemany``."""
        writer = self._sqlite_writer
        if writer is None:
            async with self.write() as conn:
                await conn.exec_driver_sql(sql, list(rows))
            return
        if tracing.ON:
            with tracing.span("db write", self._span_attributes("write", self.engine)):
                await writer.insert_many(sql, rows)
            return
        await writer.insert_many(sql, rows)

    def _span_attributes(self, use: str, engine: AsyncEngine) -> dict[str, str | int]:
        """A database span: which system, read or write transaction, which server."""
        url = engine.url
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

    def pool_use(self) -> tuple[int, int] | None:
        """(in use, idle) connections of the primary's pool; None for a pool that keeps
        no count (SQLite's, made per connection)."""
        pool = self.engine.pool
        checked_out = getattr(pool, "checkedout", None)
        checked_in = getattr(pool, "checkedin", None)
        if checked_out is None or checked_in is None:
            return None
        return int(checked_out()), int(checked_in())

    async def close(self) -> None:
        if self._sqlite_writer is not None:
            await self._sqlite_writer.close()
        if self.replicas is not None:
            await self.replicas.close()
        await self.engine.dispose()


def _shown(url: str) -> str:
    """A URL for logs and status: its password masked."""
    return make_url(url).render_as_string(hide_password=True)
