"""Usage anomalies: the per-window usage aggregates anomaly detection learns from, and the
anomalies it raised (the admin list and the suspensions an admin reviews).

The aggregates are computed in SQL (one ``GROUP BY`` over the usage table, indexed by
time), so training over weeks of traffic moves one row per subject and window to Python,
never the raw requests.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, case, func, select, update

from parley.errors import Conflict, NotFound
from parley.store.db import Database
from parley.store.tables import api_keys, usage, usage_anomalies

SCOPES = {"key": usage.c.key_id, "user": usage.c.user_id}
"""What a window belongs to: an API key or a user (all of their keys and chats)."""


def _aggregate(scope: str, since_ms: int, until_ms: int, window_ms: int | None) -> Select[Any]:
    """One row per subject (and per window of ``window_ms`` when given) between the two
    instants: request count, tokens, cost, distinct models, errors, active minutes,
    prompt length mean and mean square, and distinct client addresses."""
    subject = SCOPES[scope]
    prompt = usage.c.prompt_tokens
    columns: list[Any] = [
        subject.label("subject"),
        func.count().label("requests"),
        func.sum(prompt + usage.c.completion_tokens).label("tokens"),
        func.sum(usage.c.cost_nusd).label("cost_nusd"),
        func.count(func.distinct(usage.c.model_group)).label("models"),
        func.sum(case((usage.c.status >= 400, 1), else_=0)).label("errors"),
        func.count(func.distinct(usage.c.time_ms // 60_000)).label("active_minutes"),
        func.avg(prompt).label("prompt_mean"),
        func.avg(prompt * prompt).label("prompt_square"),
        func.count(func.distinct(usage.c.client_ip)).label("addresses"),
    ]
    group: list[Any] = [subject]
    if window_ms is not None:
        bucket = (usage.c.time_ms // window_ms).label("bucket")
        columns.append(bucket)
        group.append(bucket)
    return (
        select(*columns)
        .where(usage.c.time_ms >= since_ms, usage.c.time_ms < until_ms, subject.is_not(None))
        .group_by(*group)
    )


async def windows(
    db: Database, scope: str, since_ms: int, until_ms: int, window_ms: int
) -> list[dict[str, Any]]:
    """Fixed windows (``bucket`` = start // ``window_ms``): what the model trains on."""
    async with db.read(lag_ok=True) as conn:
        result = await conn.execute(_aggregate(scope, since_ms, until_ms, window_ms))
        return [dict(r._mapping) for r in result]


async def trailing(db: Database, scope: str, since_ms: int, until_ms: int) -> list[dict[str, Any]]:
    """The one window ending now, per subject active in it: what is scored."""
    async with db.read() as conn:
        result = await conn.execute(_aggregate(scope, since_ms, until_ms, None))
        return [dict(r._mapping) for r in result]


async def open_subjects(db: Database, scope: str) -> set[str]:
    """Subjects with an anomaly not reviewed yet: not raised again until it is."""
    query = select(usage_anomalies.c.subject).where(
        usage_anomalies.c.scope == scope, usage_anomalies.c.status == "open"
    )
    async with db.read() as conn:
        return set((await conn.execute(query)).scalars())


async def record(db: Database, row: dict[str, Any], *, suspend_key: bool) -> None:
    """Store one anomaly and, for a key when ``suspend_key``, suspend it, in one write."""
    async with db.write() as conn:
        await conn.execute(usage_anomalies.insert().values(**row))
        if suspend_key:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == row["subject"], api_keys.c.revoked_ms.is_(None))
                .values(suspended_ms=row["created_ms"])
            )


async def list_anomalies(
    db: Database, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    query = select(usage_anomalies).order_by(usage_anomalies.c.created_ms.desc())
    if status is not None:
        query = query.where(usage_anomalies.c.status == status)
    async with db.read() as conn:
        rows = await conn.execute(query.limit(limit).offset(offset))
        return [dict(r._mapping) for r in rows]


async def review(
    db: Database, ident: str, *, decision: str, by: str, note: str | None, now_ms: int
) -> dict[str, Any]:
    """Close an open anomaly. ``dismissed`` lifts its key's suspension (unless another
    open anomaly still holds the key); ``confirmed`` leaves the key suspended. Returns the
    reviewed row plus ``lifted`` (whether a suspension ended)."""
    async with db.write() as conn:
        found = (
            await conn.execute(select(usage_anomalies).where(usage_anomalies.c.id == ident))
        ).first()
        if found is None:
            raise NotFound(f"no anomaly with id {ident!r}")
        row = dict(found._mapping)
        if row["status"] != "open":
            raise Conflict(f"anomaly {ident!r} was already reviewed ({row['status']})")
        values = {"status": decision, "reviewed_by": by, "reviewed_ms": now_ms, "note": note}
        await conn.execute(
            update(usage_anomalies).where(usage_anomalies.c.id == ident).values(**values)
        )
        lifted = False
        if decision == "dismissed" and row["scope"] == "key" and row["suspended"]:
            others = await conn.scalar(
                select(func.count()).where(
                    usage_anomalies.c.scope == "key",
                    usage_anomalies.c.subject == row["subject"],
                    usage_anomalies.c.status == "open",
                    usage_anomalies.c.suspended.is_(True),
                )
            )
            if not others:
                result = await conn.execute(
                    update(api_keys)
                    .where(api_keys.c.id == row["subject"])
                    .values(suspended_ms=None)
                )
                lifted = bool(result.rowcount)
    return {**row, **values, "lifted": lifted}
