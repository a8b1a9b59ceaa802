"""A user's identity data, exported or erased (account deletion).

Erased: the user row and what hangs from it (sessions and refresh tokens, recovery codes,
passkeys, memberships, personal API keys, stored ``/v1/responses`` answers, invitations
addressed to their email). Anonymised, because other people's records need the rows:
usage (a team's spend stays true; the user and their keys are dropped from it) and the
audit log (what happened stays; who did it becomes a tombstone id with no link to the
account, and their addresses go).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select, update

from parley.identity.keys import new_id
from parley.store import rollups
from parley.store.db import Database
from parley.store.tables import (
    api_keys,
    audit_log,
    auth_sessions,
    login_devices,
    login_profiles,
    memberships,
    passkeys,
    recovery_codes,
    sso_identities,
    stored_responses,
    team_invitations,
    usage,
    usage_anomalies,
    users,
)

USAGE_EXPORT_ROWS = 100_000


async def export_identity(db: Database, user_id: str) -> dict[str, Any]:
    """The profile, teams, sessions, passkeys, keys (never their hashes), usage and the
    audit entries about the user."""
    async with db.read() as conn:

        async def rows(query: Any) -> list[dict[str, Any]]:
            return [dict(r._mapping) for r in await conn.execute(query)]

        profile = (
            await rows(
                select(
                    users.c.id,
                    users.c.email,
                    users.c.name,
                    users.c.is_admin,
                    users.c.disabled,
                    users.c.created_ms,
                    users.c.mfa_enabled,
                ).where(users.c.id == user_id)
            )
        )[0]
        keys = await rows(
            select(
                api_keys.c.id,
                api_keys.c.prefix,
                api_keys.c.name,
                api_keys.c.team_id,
                api_keys.c.models,
                api_keys.c.created_ms,
                api_keys.c.expires_ms,
                api_keys.c.revoked_ms,
            ).where(api_keys.c.user_id == user_id)
        )
        return {
            "profile": profile,
            "teams": await rows(
                select(memberships.c.team_id, memberships.c.role).where(
                    memberships.c.user_id == user_id
                )
            ),
            "sessions": await rows(
                select(
                    auth_sessions.c.id,
                    auth_sessions.c.created_ms,
                    auth_sessions.c.last_used_ms,
                    auth_sessions.c.revoked_ms,
                    auth_sessions.c.amr,
                    auth_sessions.c.ip,
                    auth_sessions.c.user_agent,
                ).where(auth_sessions.c.user_id == user_id)
            ),
            "passkeys": await rows(
                select(
                    passkeys.c.id,
                    passkeys.c.name,
                    passkeys.c.created_ms,
                    passkeys.c.last_used_ms,
                    passkeys.c.aaguid,
                ).where(passkeys.c.user_id == user_id)
            ),
            "api_keys": keys,
            "usage": await rows(
                select(usage)
                .where(usage.c.user_id == user_id)
                .order_by(usage.c.time_ms)
                .limit(USAGE_EXPORT_ROWS)
            ),
            "audit": await rows(
                select(audit_log)
                .where(or_(audit_log.c.actor == user_id, audit_log.c.target == user_id))
                .order_by(audit_log.c.time_ms)
            ),
        }


async def erase_identity(db: Database, user_id: str, email: str) -> dict[str, Any]:
    """Erase the account; returns the tombstone that stands for it in the audit log and
    the ids of the keys that died (for the caller to revoke in the shared state)."""
    tombstone = f"deleted-{new_id()[:16]}"
    async with db.write() as conn:
        key_ids = list(
            (
                await conn.execute(select(api_keys.c.id).where(api_keys.c.user_id == user_id))
            ).scalars()
        )
        if key_ids:
            await conn.execute(
                update(usage)
                .where(usage.c.key_id.in_(key_ids))
                .values(key_id=None, user_id=None, client_ip=None)
            )
        await conn.execute(
            update(usage).where(usage.c.user_id == user_id).values(user_id=None, client_ip=None)
        )
        await rollups.forget(conn, user_id, key_ids)
        await conn.execute(
            update(audit_log).where(audit_log.c.actor == user_id).values(actor=tombstone, ip=None)
        )
        await conn.execute(
            update(audit_log).where(audit_log.c.target == user_id).values(target=tombstone)
        )
        if key_ids:
            await conn.execute(
                update(audit_log).where(audit_log.c.target.in_(key_ids)).values(target=None)
            )
        await conn.execute(
            update(team_invitations)
            .where(team_invitations.c.invited_by == user_id)
            .values(invited_by=tombstone)
        )
        await conn.execute(
            update(team_invitations)
            .where(team_invitations.c.accepted_by == user_id)
            .values(accepted_by=None)
        )
        await conn.execute(delete(team_invitations).where(team_invitations.c.email == email))
        owners = [f"user:{user_id}", *(f"key:{k}" for k in key_ids)]
        await conn.execute(delete(stored_responses).where(stored_responses.c.owner.in_(owners)))
        await conn.execute(
            delete(usage_anomalies).where(
                ((usage_anomalies.c.scope == "user") & (usage_anomalies.c.subject == user_id))
                | ((usage_anomalies.c.scope == "key") & usage_anomalies.c.subject.in_(key_ids))
            )
        )
        # the foreign keys cascade too; explicit, so no engine setting is relied on
        for table in (
            auth_sessions,
            recovery_codes,
            passkeys,
            login_profiles,
            login_devices,
            memberships,
            api_keys,
            sso_identities,
        ):
            await conn.execute(delete(table).where(table.c.user_id == user_id))
        await conn.execute(delete(users).where(users.c.id == user_id))
    return {"tombstone": tombstone, "key_ids": key_ids}
