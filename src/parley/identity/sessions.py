"""Login sessions and their refresh tokens.

A session is one login; its refresh tokens form one family. Each refresh consumes the
token (an atomic ``UPDATE ... WHERE used_ms IS NULL``) and issues the next; presenting a
consumed token again is treated as theft: the whole session is revoked, in the database
and, through the shared state, on every instance at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select, update

from parley.errors import AuthenticationFailed, NotFound
from parley.identity.devices import describe
from parley.identity.keys import new_id, now_ms
from parley.store.db import Database
from parley.store.tables import auth_sessions, refresh_tokens

REFRESH_PREFIX = "prt_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


SessionKind = Literal["web", "api"]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    user_id: str
    auth_time_ms: int
    amr: list[str]
    kind: SessionKind = "api"
    expires_ms: int = 0


class Sessions:
    def __init__(self, db: Database, *, refresh_days: float = 30.0) -> None:
        self._db = db
        self._refresh_ms = int(refresh_days * 86_400_000)

    async def start(
        self,
        user_id: str,
        *,
        amr: list[str],
        ip: str | None,
        user_agent: str | None,
        kind: SessionKind = "api",
        absolute_s: float | None = None,
        sso_provider: str | None = None,
    ) -> tuple[SessionInfo, str]:
        """``absolute_s``: the session's whole lifetime, when shorter than a refresh
        token's (the web app's 10 hours). ``sso_provider``: the OpenID provider that signed
        the user in, when one did (its logout ends at that provider)."""
        now = now_ms()
        session_id = new_id()
        token = REFRESH_PREFIX + secrets.token_urlsafe(32)
        expires = now + self._refresh_ms
        if absolute_s is not None:
            expires = min(expires, now + int(absolute_s * 1000))
        async with self._db.write() as conn:
            await conn.execute(
                auth_sessions.insert().values(
                    id=session_id,
                    user_id=user_id,
                    created_ms=now,
                    last_used_ms=now,
                    expires_ms=expires,
                    auth_time_ms=now,
                    amr=amr,
                    ip=ip,
                    user_agent=(user_agent or "")[:300] or None,
                    kind=kind,
                    sso_provider=sso_provider,
                )
            )
            await conn.execute(
                refresh_tokens.insert().values(
                    token_hash=_hash(token),
                    session_id=session_id,
                    created_ms=now,
                    expires_ms=expires,
                )
            )
        return SessionInfo(session_id, user_id, now, amr, kind, expires), token

    async def rotate(self, token: str) -> tuple[SessionInfo, str] | tuple[SessionInfo, None]:
        """(session, next token) on success; (session, None) when the token was replayed,
        in which case the session is already revoked here. Unknown tokens raise 401."""
        now = now_ms()
        digest = _hash(token)
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    select(refresh_tokens, auth_sessions)
                    .select_from(
                        refresh_tokens.join(
                            auth_sessions, auth_sessions.c.id == refresh_tokens.c.session_id
                        )
                    )
                    .where(refresh_tokens.c.token_hash == digest)
                )
            ).first()
            if row is None:
                raise AuthenticationFailed("invalid refresh token", code="invalid_token")
            r = row._mapping
            info = SessionInfo(
                r["session_id"],
                r["user_id"],
                r["auth_time_ms"],
                list(r["amr"]),
                r["kind"],
                r["expires_ms"],
            )
            if r["revoked_ms"] is not None:
                raise AuthenticationFailed("invalid refresh token", code="invalid_token")
            if r["expires_ms"] <= now:
                raise AuthenticationFailed("session expired; sign in again", code="session_expired")
            consumed = await conn.execute(
                update(refresh_tokens)
                .where(refresh_tokens.c.token_hash == digest, refresh_tokens.c.used_ms.is_(None))
                .values(used_ms=now)
            )
            if consumed.rowcount == 0:  # replayed: revoke the family
                await conn.execute(
                    update(auth_sessions)
                    .where(auth_sessions.c.id == info.id)
                    .values(revoked_ms=now)
                )
                return info, None
            following = REFRESH_PREFIX + secrets.token_urlsafe(32)
            await conn.execute(
                refresh_tokens.insert().values(
                    token_hash=_hash(following),
                    session_id=info.id,
                    created_ms=now,
                    expires_ms=r["expires_ms"],
                )
            )
            await conn.execute(
                update(auth_sessions).where(auth_sessions.c.id == info.id).values(last_used_ms=now)
            )
        return info, following

    async def revoke(self, session_id: str, *, user_id: str | None = None) -> None:
        query = update(auth_sessions).where(
            auth_sessions.c.id == session_id, auth_sessions.c.revoked_ms.is_(None)
        )
        if user_id is not None:
            query = query.where(auth_sessions.c.user_id == user_id)
        async with self._db.write() as conn:
            result = await conn.execute(query.values(revoked_ms=now_ms()))
        if result.rowcount == 0:
            raise NotFound("no such active session")

    async def revoke_all(self, user_id: str, *, keep: str | None = None) -> list[str]:
        """Revoke every live session of a user but ``keep``; returns their ids (to flag in
        the shared state)."""
        now = now_ms()
        async with self._db.write() as conn:
            ids = [
                r.id
                for r in await conn.execute(
                    select(auth_sessions.c.id).where(
                        auth_sessions.c.user_id == user_id,
                        auth_sessions.c.revoked_ms.is_(None),
                        auth_sessions.c.expires_ms > now,
                    )
                )
                if r.id != keep
            ]
            if ids:
                await conn.execute(
                    update(auth_sessions).where(auth_sessions.c.id.in_(ids)).values(revoked_ms=now)
                )
        return ids

    async def last_used_ms(self, session_id: str) -> int | None:
        """When a live session was last used as far as the database knows (its sign-in or
        its last refresh, never later than its real last use); None when it is revoked,
        expired or gone."""
        async with self._db.read() as conn:
            found = await conn.scalar(
                select(auth_sessions.c.last_used_ms).where(
                    auth_sessions.c.id == session_id,
                    auth_sessions.c.revoked_ms.is_(None),
                    auth_sessions.c.expires_ms > now_ms(),
                )
            )
        return None if found is None else int(found)

    async def sso_provider(self, session_id: str) -> str | None:
        """The OpenID provider a session was signed in through (None: a local sign-in)."""
        async with self._db.read() as conn:
            found = await conn.scalar(
                select(auth_sessions.c.sso_provider).where(auth_sessions.c.id == session_id)
            )
        return None if found is None else str(found)

    async def list_active(self, user_id: str) -> list[dict[str, Any]]:
        query = (
            select(
                auth_sessions.c.id,
                auth_sessions.c.created_ms,
                auth_sessions.c.last_used_ms,
                auth_sessions.c.ip,
                auth_sessions.c.user_agent,
                auth_sessions.c.amr,
                auth_sessions.c.kind,
                auth_sessions.c.expires_ms,
            )
            .where(
                auth_sessions.c.user_id == user_id,
                auth_sessions.c.revoked_ms.is_(None),
                auth_sessions.c.expires_ms > now_ms(),
            )
            .order_by(auth_sessions.c.last_used_ms.desc())
        )
        async with self._db.read() as conn:
            rows = [dict(r._mapping) for r in await conn.execute(query)]
        for row in rows:
            row["device"] = describe(row["user_agent"])
        return rows
