"""The audit log: who did what to whom, when and from where, for admin and auth events.

Written after the action succeeds (a refused action is audited by its caller when it
matters, e.g. failed logins); never carries a secret, only ids and key prefixes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select

from parley.identity.keys import now_ms
from parley.store.db import Database
from parley.store.tables import api_keys, audit_log


async def audit(
    db: Database,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    async with db.write() as conn:
        await conn.execute(
            audit_log.insert().values(
                time_ms=now_ms(), actor=actor, action=action, target=target, ip=ip, detail=detail
            )
        )


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of ``GET /admin/audit``; all optional, all exact matches except ``action``
    ending in ``.*`` (a prefix: ``key.*``). ``before_id`` is the cursor: entries come
    newest first (by id, the order they were written), and a page ends where the next
    one starts."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    before_id: int | None = None
    team_id: str | None = None
    """Only entries about this team: the team itself or its members (``team.*``), its
    keys (``key.*``), its cache namespace (``cache.invalidate``)."""


async def entries(db: Database, query: AuditQuery, limit: int) -> list[dict[str, Any]]:
    """One page of the log, newest first. The log has no update or delete path (erasure
    aside, which only replaces the erased account's ids with its tombstone)."""
    t = audit_log
    clauses: list[Any] = []
    if query.actor is not None:
        clauses.append(t.c.actor == query.actor)
    if query.action is not None:
        if query.action.endswith(".*"):
            clauses.append(t.c.action.startswith(query.action[:-1], autoescape=True))
        else:
            clauses.append(t.c.action == query.action)
    if query.target is not None:
        clauses.append(t.c.target == query.target)
    if query.start_ms is not None:
        clauses.append(t.c.time_ms >= query.start_ms)
    if query.end_ms is not None:
        clauses.append(t.c.time_ms < query.end_ms)
    if query.before_id is not None:
        clauses.append(t.c.id < query.before_id)
    if query.team_id is not None:
        clauses.append(_about_team(query.team_id))
    statement = select(t).where(*clauses).order_by(t.c.id.desc()).limit(limit)
    async with db.read(lag_ok=True) as conn:
        return [dict(row) for row in (await conn.execute(statement)).mappings()]


def _about_team(team_id: str) -> Any:
    t = audit_log
    keys = select(api_keys.c.id).where(api_keys.c.team_id == team_id)
    return or_(
        and_(
            t.c.action.startswith("team."),
            or_(t.c.target == team_id, t.c.target.startswith(f"{team_id}/", autoescape=True)),
        ),
        and_(t.c.action.startswith("key."), t.c.target.in_(keys)),
        and_(
            t.c.action == "cache.invalidate",
            or_(
                t.c.target.startswith(f"team.{team_id}/", autoescape=True),
                t.c.target.startswith(f"team.{team_id}.", autoescape=True),
            ),
        ),
    )
