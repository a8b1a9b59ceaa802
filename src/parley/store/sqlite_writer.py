"""Dedicated SQLite connections for batched inserts: one hop to a thread, or none.

Through SQLAlchemy and aiosqlite a write transaction is a pool checkout, then BEGIN, the
statement, COMMIT and the reset-on-return ROLLBACK, each its own hop to the driver's
thread and back: about 400 us of CPU for one stored response, 50 us of it SQLite's. Here
a whole batch is one hop: ``BEGIN IMMEDIATE``, ``executemany``, ``COMMIT`` on the stdlib
driver, in a one-thread executor so batches never overlap. The connection gets the
engine's pragmas (WAL, ``synchronous=NORMAL``, busy timeout), so it shares the database
with the engine's connections exactly as a second process would, and a committed row is
visible to every reader at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from parley.errors import Conflict, StoreError

INLINE_ROWS = 8
"""Batches up to this size are first tried on the event loop's thread (see ``SqliteWriter``)."""
THREAD_EVERY = 64
"""Every this many batches goes to the thread anyway: only its connection checkpoints."""


class SqliteWriter:
    """Small batches are tried on the caller's thread first, on a connection that never
    waits for the lock (``busy_timeout=0``) and never checkpoints
    (``wal_autocheckpoint=0``): an uncontended WAL commit with ``synchronous=NORMAL`` is
    ~20 us and no fsync, less than the hop to a thread and back (~60 us of CPU). When the
    lock is taken (another writer, another process) or the batch is large, the batch goes
    to the thread, whose connection waits up to 30 s and runs the WAL checkpoints (every
    ``THREAD_EVERY``-th batch goes there, so the WAL is checkpointed even when every
    batch could have gone inline). Callers never overlap (``GroupCommit`` drains one
    batch at a time), so the two connections are never used at once."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._batches = 0
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="parley-sqlite-writer")

    async def insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` with ``sql`` (qmark parameters) in one transaction."""
        self._batches += 1
        if (
            len(rows) <= INLINE_ROWS
            and self._batches % THREAD_EVERY
            and self._try_inline(sql, rows)
        ):
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._insert_many, sql, rows)

    def _try_inline(self, sql: str, rows: Sequence[Sequence[Any]]) -> bool:
        """True when committed here; False when the write lock was taken (nothing done)."""
        with _mapped():
            if self._inline is None:
                self._inline = _connect(self._path, timeout=0, pragmas=("wal_autocheckpoint=0",))
            try:
                self._inline.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _busy(exc):
                    return False
                raise
            _insert(self._inline, sql, rows)
        return True

    def _insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with _mapped():
            if self._conn is None:
                self._conn = _connect(self._path, timeout=30, pragmas=())
            self._conn.execute("BEGIN IMMEDIATE")
            _insert(self._conn, sql, rows)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)

    def _close(self) -> None:
        for conn in (self._conn, self._inline):
            if conn is not None:
                conn.close()
        self._conn = self._inline = None


def _connect(path: str, *, timeout: float, pragmas: tuple[str, ...]) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", *pragmas):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def _insert(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """The rows, then COMMIT; ROLLBACK on any failure (the transaction is open)."""
    try:
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    ) or ("locked" in str(exc))


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    """The same translation as ``db.map_store_errors``, for the stdlib driver."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise Conflict("conflicts with an existing record") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"database error: {type(exc).__name__}") from exc
