"""Stored ``/v1/responses`` answers: what ``store`` keeps for ``GET /v1/responses/{id}``,
``input_items`` and ``previous_response_id``.

A row holds the Response object and every input item the answer was made from (the
conversation it continued included), so continuing from it needs one read whatever the
chain's length, and deleting an earlier response never breaks a later one. Reads are
owner-scoped: another owner's id is reported exactly like a missing one. Rows expire
(``expires_ms``); reads ignore expired rows at once, and ``purge`` deletes them in
batches (every instance runs it; deletes are idempotent, so instances racing are harmless).

Saves are group-committed (``store/group_commit.py``): ``store`` defaults to true, so every
``/v1/responses`` call writes a row, and one transaction per request made SQLite's write
lock the gateway's bottleneck. ``save`` still returns only once its row is committed, so a
client that has the answer can read it back at once, from any instance.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Dialect

from parley.observability.logging import get_logger
from parley.store.db import Database
from parley.store.group_commit import GroupCommit
from parley.store.tables import stored_responses as t

log = get_logger(__name__)
BATCH = 500
SWEEP_S = 3600.0
_COLUMNS = ("id", "owner", "created_ms", "expires_ms", "response", "input_items")


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]


def _now_ms() -> int:
    return int(time.time() * 1000)


@functools.lru_cache(maxsize=8)  # one dialect per engine; tests make many engines
def _compiled(dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    compiled = insert(t).compile(dialect=dialect, column_keys=list(_COLUMNS), for_executemany=True)
    return compiled.string, tuple(compiled.positiontup or ())


class ResponseArchive:
    def __init__(self, db: Database, *, keep_seconds: float) -> None:
        self._db = db
        self.keep_seconds = keep_seconds
        self._saves: GroupCommit[tuple[Any, ...]] = GroupCommit(self._insert)

    async def save(
        self, owner: str, response: dict[str, Any], input_items: list[dict[str, Any]]
    ) -> None:
        """Keep a response; returns once it is committed (readable everywhere)."""
        now = _now_ms()
        await self._saves.submit(
            (
                response["id"],
                owner,
                now,
                now + int(self.keep_seconds * 1000),
                msgspec.json.encode(response),
                msgspec.json.encode(input_items),
            )
        )
        if self._db.replicas is not None:
            self._db.replicas.wrote()  # in the request's context: pins its user

    async def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        """One transaction for a batch, the statement compiled once and the rows handed
        to the driver's ``executemany`` as plain tuples (as ``store/usage.py`` does)."""
        sql, order = _compiled(self._db.engine.dialect)
        picks = [_COLUMNS.index(name) for name in order]
        await self._db.insert_many(sql, [tuple(row[i] for i in picks) for row in rows])

    async def get(self, owner: str, response_id: str) -> StoredResponse | None:
        query = select(t.c.response, t.c.input_items).where(
            t.c.id == response_id, t.c.owner == owner, t.c.expires_ms > _now_ms()
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return StoredResponse(msgspec.json.decode(row[0]), msgspec.json.decode(row[1]))

    async def delete(self, owner: str, response_id: str) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(
                delete(t).where(
                    t.c.id == response_id, t.c.owner == owner, t.c.expires_ms > _now_ms()
                )
            )
        return bool(result.rowcount)

    async def purge(self, now_ms: int | None = None) -> int:
        """Delete expired rows, ``BATCH`` per transaction; returns how many went."""
        cutoff = _now_ms() if now_ms is None else now_ms
        total = 0
        while True:
            async with self._db.write() as conn:
                ids = list(
                    (
                        await conn.execute(
                            select(t.c.id).where(t.c.expires_ms <= cutoff).limit(BATCH)
                        )
                    ).scalars()
                )
                if not ids:
                    return total
                await conn.execute(delete(t).where(t.c.id.in_(ids)))
            total += len(ids)

    async def sweep_forever(self, every_s: float = SWEEP_S) -> None:
        while True:
            try:
                purged = await self.purge()
                if purged:
                    log.info("purged expired stored responses", count=purged)
            except Exception as exc:  # the database is away: the next sweep tries again
                log.warning("stored responses purge failed", error=str(exc))
            await asyncio.sleep(every_s)
