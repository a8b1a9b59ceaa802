"""Saved presets: a user's named conversation settings (model group, system prompt,
temperature and other parameters), to start conversations from.

Presets are plain rows, not event streams: nothing reads their history, and a
conversation made from one copies its settings (editing the preset later does not change
conversations already made). A name is unique per user (409 otherwise); another user's
preset answers 404, as for conversations.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import delete, func, select, update

from parley.errors import Conflict, NotFound
from parley.store.db import Database
from parley.store.tables import presets

_PUBLIC = ("id", "name", "model", "settings", "created_ms", "updated_ms")
LIMIT = 200
"""Presets one user may keep."""


@contextlib.contextmanager
def _unique_name(name: str | None) -> Iterator[None]:
    try:
        yield
    except Conflict:
        raise Conflict(
            f"you already have a preset named {name!r}", code="preset_exists", param="name"
        ) from None


class Presets:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, owner_id: str, *, name: str, model: str | None, settings: dict[str, Any]
    ) -> dict[str, Any]:
        async with self._db.read() as conn:
            count = await conn.scalar(
                select(func.count()).select_from(presets).where(presets.c.owner_id == owner_id)
            )
        if (count or 0) >= LIMIT:
            raise Conflict(f"at most {LIMIT} presets per user", code="preset_limit")
        now = int(time.time() * 1000)
        row = {
            "id": uuid.uuid4().hex,
            "owner_id": owner_id,
            "name": name,
            "model": model,
            "settings": settings,
            "created_ms": now,
            "updated_ms": now,
        }
        with _unique_name(name):
            async with self._db.write() as conn:
                await conn.execute(presets.insert().values(**row))
        return {k: row[k] for k in _PUBLIC}

    async def list(self, owner_id: str) -> list[dict[str, Any]]:
        query = select(presets).where(presets.c.owner_id == owner_id).order_by(presets.c.name)
        async with self._db.read() as conn:
            return [{k: r._mapping[k] for k in _PUBLIC} for r in await conn.execute(query)]

    async def get(self, owner_id: str, preset_id: str) -> dict[str, Any]:
        query = select(presets).where(presets.c.id == preset_id, presets.c.owner_id == owner_id)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound("no such preset", param="preset_id")
        return {k: row._mapping[k] for k in _PUBLIC}

    async def update(
        self, owner_id: str, preset_id: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        if changes:
            with _unique_name(changes.get("name")):
                async with self._db.write() as conn:
                    done = await conn.execute(
                        update(presets)
                        .where(presets.c.id == preset_id, presets.c.owner_id == owner_id)
                        .values(**changes, updated_ms=int(time.time() * 1000))
                    )
            if done.rowcount == 0:
                raise NotFound("no such preset", param="preset_id")
        return await self.get(owner_id, preset_id)

    async def delete(self, owner_id: str, preset_id: str) -> None:
        async with self._db.write() as conn:
            done = await conn.execute(
                delete(presets).where(presets.c.id == preset_id, presets.c.owner_id == owner_id)
            )
        if done.rowcount == 0:
            raise NotFound("no such preset", param="preset_id")
