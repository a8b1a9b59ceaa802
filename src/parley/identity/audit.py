"""The audit log: who did what to whom, when and from where, for admin and auth events.

Written after the action succeeds (a refused action is audited by its caller when it
matters, e.g. failed logins); never carries a secret, only ids and key prefixes."""

from __future__ import annotations

from typing import Any

from parley.identity.keys import now_ms
from parley.store.db import Database
from parley.store.tables import audit_log


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
