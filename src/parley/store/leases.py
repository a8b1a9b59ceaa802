"""Job leases: one instance at a time runs a background job that must not run twice at
once (the usage anomaly scan trains a model and raises alerts).

A lease is a row (name, holder, until). Taking it is a conditional write that succeeds
only if the row is free, expired or already the caller's, so two instances racing for it
cannot both win; the holder renews it each round, and a holder that dies loses it when
``until`` passes.
"""

from __future__ import annotations

from sqlalchemy import or_, update

from parley.store.db import Database, dialect_module
from parley.store.tables import job_leases


async def hold(db: Database, name: str, holder: str, *, ttl_ms: int, now_ms: int) -> bool:
    """Take or renew the lease ``name`` for ``holder``; False when another holds it."""
    builder = dialect_module(db.dialect)
    async with db.write() as conn:
        created = await conn.execute(
            builder.insert(job_leases)
            .values(name=name, holder=holder, until_ms=now_ms + ttl_ms)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        if created.rowcount:
            return True
        taken = await conn.execute(
            update(job_leases)
            .where(
                job_leases.c.name == name,
                or_(job_leases.c.holder == holder, job_leases.c.until_ms <= now_ms),
            )
            .values(holder=holder, until_ms=now_ms + ttl_ms)
        )
        return bool(taken.rowcount)


async def release(db: Database, name: str, holder: str) -> None:
    """Give the lease up (graceful shutdown): another instance takes it at once."""
    async with db.write() as conn:
        await conn.execute(
            update(job_leases)
            .where(job_leases.c.name == name, job_leases.c.holder == holder)
            .values(until_ms=0)
        )
