"""Run-time model groups and their revisions (``model_groups``, ``model_revisions``).

Every change writes the group's row and a revision row in one transaction: the revision
holds the whole document, so any revision can be restored as it was. The unique
(group, revision) index turns two admins saving the same group at once into one success
and one conflict, never a lost update.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from parley.store.db import Database
from parley.store.tables import model_groups, model_revisions


@dataclass(frozen=True, slots=True)
class StoredGroup:
    name: str
    document: dict[str, Any]
    enabled: bool
    revision: int
    updated_ms: int
    updated_by: str


@dataclass(frozen=True, slots=True)
class Revision:
    id: int
    group: str
    revision: int
    time_ms: int
    actor: str
    action: str
    document: dict[str, Any] | None
    enabled: bool


def _group(row: Any) -> StoredGroup:
    return StoredGroup(
        row.name, row.document, bool(row.enabled), row.revision, row.updated_ms, row.updated_by
    )


def _revision(row: Any) -> Revision:
    return Revision(
        row.id,
        row.group_name,
        row.revision,
        row.time_ms,
        row.actor,
        row.action,
        row.document,
        bool(row.enabled),
    )


async def list_groups(db: Database) -> list[StoredGroup]:
    async with db.read() as conn:
        rows = await conn.execute(select(model_groups).order_by(model_groups.c.name))
    return [_group(r) for r in rows]


async def get_group(db: Database, name: str) -> StoredGroup | None:
    async with db.read() as conn:
        row = (await conn.execute(select(model_groups).where(model_groups.c.name == name))).first()
    return None if row is None else _group(row)


async def latest_change(db: Database) -> int:
    """The newest revision's id (0 when none): cheap enough for every instance to poll."""
    async with db.read() as conn:
        value = (await conn.execute(select(func.max(model_revisions.c.id)))).scalar()
    return int(value or 0)


async def save(
    db: Database,
    name: str,
    document: dict[str, Any] | None,
    *,
    enabled: bool,
    actor: str,
    action: str,
) -> Revision:
    """Write the group (``document`` None: delete it) and its next revision together."""
    now = int(time.time() * 1000)
    async with db.write() as conn:
        current = (
            await conn.execute(
                select(func.max(model_revisions.c.revision)).where(
                    model_revisions.c.group_name == name
                )
            )
        ).scalar()
        number = int(current or 0) + 1
        result = await conn.execute(
            insert(model_revisions).values(
                group_name=name,
                revision=number,
                time_ms=now,
                actor=actor,
                action=action,
                document=document,
                enabled=enabled,
            )
        )
        exists = (
            await conn.execute(select(model_groups.c.name).where(model_groups.c.name == name))
        ).first() is not None
        values = {
            "document": document,
            "enabled": enabled,
            "revision": number,
            "updated_ms": now,
            "updated_by": actor,
        }
        if document is None:
            await conn.execute(delete(model_groups).where(model_groups.c.name == name))
        elif exists:
            await conn.execute(
                update(model_groups).where(model_groups.c.name == name).values(**values)
            )
        else:
            await conn.execute(insert(model_groups).values(name=name, **values))
        revision_id = result.inserted_primary_key[0] if result.inserted_primary_key else 0
    return Revision(int(revision_id), name, number, now, actor, action, document, enabled)


async def revisions(db: Database, name: str, limit: int = 100) -> list[Revision]:
    """Newest first."""
    async with db.read() as conn:
        rows = await conn.execute(
            select(model_revisions)
            .where(model_revisions.c.group_name == name)
            .order_by(model_revisions.c.revision.desc())
            .limit(limit)
        )
    return [_revision(r) for r in rows]


@dataclass(frozen=True, slots=True)
class DeletedGroup:
    """A group whose newest revision is its deletion, and the revision that restores it."""

    name: str
    revision: int
    time_ms: int
    actor: str
    restorable: int


async def deleted_groups(db: Database, limit: int = 1000) -> list[DeletedGroup]:
    """Deleted groups, most recently deleted first. Two indexed reads: each deleted name's
    newest revision (the deletion), then its newest revision before that (what a rollback
    brings back: a deletion follows a revision that held the group)."""
    latest = (
        select(
            model_revisions.c.group_name.label("name"),
            func.max(model_revisions.c.revision).label("revision"),
        )
        .where(model_revisions.c.group_name.not_in(select(model_groups.c.name)))
        .group_by(model_revisions.c.group_name)
        .subquery()
    )
    async with db.read() as conn:
        rows = (
            await conn.execute(
                select(model_revisions)
                .join(
                    latest,
                    (model_revisions.c.group_name == latest.c.name)
                    & (model_revisions.c.revision == latest.c.revision),
                )
                .where(model_revisions.c.action == "delete")
                .order_by(model_revisions.c.time_ms.desc(), model_revisions.c.id.desc())
                .limit(limit)
            )
        ).all()
        if not rows:
            return []
        names = [r.group_name for r in rows]
        kept = await conn.execute(
            select(
                model_revisions.c.group_name,
                func.max(model_revisions.c.revision).label("revision"),
            )
            .where(model_revisions.c.group_name.in_(names), model_revisions.c.action != "delete")
            .group_by(model_revisions.c.group_name)
        )
        restorable = {r.group_name: int(r.revision) for r in kept}
    return [
        DeletedGroup(r.group_name, r.revision, r.time_ms, r.actor, restorable[r.group_name])
        for r in rows
        if r.group_name in restorable
    ]


async def revision(db: Database, name: str, number: int) -> Revision | None:
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(model_revisions).where(
                    model_revisions.c.group_name == name, model_revisions.c.revision == number
                )
            )
        ).first()
    return None if row is None else _revision(row)


async def reseal_all(db: Database, reseal: Any) -> int:
    """Rewrite every stored document (groups and revisions) with ``reseal(document)``,
    for a key rotation; returns how many rows changed."""
    changed = 0
    async with db.write() as conn:
        for table, key in ((model_groups, "name"), (model_revisions, "id")):
            rows = (await conn.execute(select(table.c[key], table.c.document))).all()
            for ident, document in rows:
                if document is None:
                    continue
                fresh = reseal(document)
                if fresh != document:
                    await conn.execute(
                        update(table).where(table.c[key] == ident).values(document=fresh)
                    )
                    changed += 1
    return changed
