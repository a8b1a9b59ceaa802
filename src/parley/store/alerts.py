"""Budget alert deliveries: one row per (holder, period, threshold), the outbox the webhook
sender works from.

Exactly once per threshold per period across instances comes from the primary key: the
row is inserted with ``ON CONFLICT DO NOTHING``, so whichever instance sees the crossing
first creates it and the others add nothing. At least once comes from the row outliving
the instance: a sender claims a due row with a lease (a conditional ``UPDATE``), and a row
whose sender died becomes due again when the lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select, update

from parley.store.db import Database, dialect_module
from parley.store.tables import alert_deliveries


@dataclass(frozen=True, slots=True)
class AlertEvent:
    id: str
    scope: str
    holder: str
    period: str
    threshold: float
    spent_nusd: int
    budget_nusd: int
    created_ms: int
    payload: str | None = None
    """Another kind of event's JSON body (a usage anomaly), sent as it is."""


async def record(db: Database, event: AlertEvent) -> bool:
    """Queue the event; False when some instance already did (the same threshold was
    crossed for the same holder and period)."""
    builder = dialect_module(db.dialect)
    statement = (
        builder.insert(alert_deliveries)
        .values(
            id=event.id,
            created_ms=event.created_ms,
            scope=event.scope,
            holder=event.holder,
            period=event.period,
            threshold=event.threshold,
            spent_nusd=event.spent_nusd,
            budget_nusd=event.budget_nusd,
            payload=event.payload,
            status="pending",
            attempts=0,
            next_attempt_ms=event.created_ms,
            lease_until_ms=0,
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )
    async with db.write() as conn:
        result = await conn.execute(statement)
    return bool(result.rowcount)


async def claim_due(
    db: Database, now_ms: int, lease_ms: int, limit: int = 20
) -> list[dict[str, Any]]:
    """Pending rows due now, each leased to the caller (another instance's claim of the
    same row fails its conditional update, so a row is sent by one sender at a time)."""
    query = (
        select(alert_deliveries)
        .where(
            alert_deliveries.c.status == "pending",
            alert_deliveries.c.next_attempt_ms <= now_ms,
            alert_deliveries.c.lease_until_ms <= now_ms,
        )
        .order_by(alert_deliveries.c.next_attempt_ms)
        .limit(limit)
    )
    async with db.read() as conn:
        candidates = [dict(r._mapping) for r in await conn.execute(query)]
    claimed: list[dict[str, Any]] = []
    for row in candidates:
        statement = (
            update(alert_deliveries)
            .where(
                and_(
                    alert_deliveries.c.id == row["id"],
                    alert_deliveries.c.status == "pending",
                    alert_deliveries.c.lease_until_ms == row["lease_until_ms"],
                )
            )
            .values(lease_until_ms=now_ms + lease_ms)
        )
        async with db.write() as conn:
            result = await conn.execute(statement)
        if result.rowcount == 1:
            claimed.append(row)
    return claimed


async def delivered(db: Database, ident: str, attempts: int, now_ms: int) -> None:
    statement = (
        update(alert_deliveries)
        .where(alert_deliveries.c.id == ident)
        .values(status="delivered", attempts=attempts, delivered_ms=now_ms, last_error=None)
    )
    async with db.write() as conn:
        await conn.execute(statement)


async def attempt_failed(
    db: Database, ident: str, attempts: int, next_ms: int | None, error: str
) -> None:
    """Schedule the next attempt at ``next_ms``; None gives up (status ``failed``)."""
    values: dict[str, Any] = {"attempts": attempts, "last_error": error[:500], "lease_until_ms": 0}
    if next_ms is None:
        values["status"] = "failed"
    else:
        values["next_attempt_ms"] = next_ms
    statement = update(alert_deliveries).where(alert_deliveries.c.id == ident).values(**values)
    async with db.write() as conn:
        await conn.execute(statement)


async def list_deliveries(
    db: Database, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    query = select(alert_deliveries).order_by(alert_deliveries.c.created_ms.desc())
    if status is not None:
        query = query.where(alert_deliveries.c.status == status)
    async with db.read() as conn:
        rows = await conn.execute(query.limit(limit).offset(offset))
        return [dict(r._mapping) for r in rows]


async def budgeted_holders(db: Database, limit: int = 500) -> list[dict[str, Any]]:
    """Keys (not revoked), users and teams with a budget: the forecast's database holders,
    each row its ``scope``, ``id``, ``label`` and limit columns."""
    from parley.store.tables import api_keys, teams, users  # noqa: PLC0415

    found: list[dict[str, Any]] = []
    sources = (
        ("key", api_keys, api_keys.c.prefix, api_keys.c.revoked_ms.is_(None)),
        ("user", users, users.c.email, users.c.disabled.is_(False)),
        ("team", teams, teams.c.name, None),
    )
    async with db.read() as conn:
        for scope, table, label, extra in sources:
            query = select(table, label.label("_label")).where(
                (table.c.budget_nusd.is_not(None)) | (table.c.soft_budget_nusd.is_not(None))
            )
            if extra is not None:
                query = query.where(extra)
            for row in await conn.execute(query.limit(limit)):
                values = dict(row._mapping)
                values["scope"], values["label"] = scope, values.pop("_label")
                found.append(values)
    return found


async def tier_members(db: Database, tiers: list[str], limit: int = 500) -> list[dict[str, Any]]:
    """Users (not disabled) in any of ``tiers``: each ``id``, ``email`` and ``tier``. A
    tier's budget is each member's, so the forecast lists members one by one."""
    from parley.store.tables import users  # noqa: PLC0415

    if not tiers:
        return []
    query = (
        select(users.c.id, users.c.email, users.c.tier)
        .where(users.c.tier.in_(tiers), users.c.disabled.is_(False))
        .order_by(users.c.id)
        .limit(limit)
    )
    async with db.read() as conn:
        return [dict(row._mapping) for row in await conn.execute(query)]
