"""One-time links for password reset and email verification.

The token (32 random bytes, URL-safe) exists only in the message sent and in the
recipient's hands; the table keeps its SHA-256, so a leaked database or backup holds no
usable link. A token is spent by the single ``UPDATE ... WHERE used_ms IS NULL AND
expires_ms > now`` that wins, so two clicks (or two instances) cannot both use it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from parley.errors import InvalidRequest
from parley.identity.keys import now_ms
from parley.store.db import Database
from parley.store.tables import account_tokens

Purpose = Literal["reset", "verify"]
PREFIXES: dict[Purpose, str] = {"reset": "prs_", "verify": "pev_"}
_INVALID = "this link is invalid, already used or expired; ask for a new one"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenRow:
    token_hash: str
    user_id: str
    email: str


async def mint(db: Database, *, user_id: str, purpose: Purpose, email: str, seconds: float) -> str:
    token = PREFIXES[purpose] + secrets.token_urlsafe(32)
    now = now_ms()
    async with db.write() as conn:
        await conn.execute(
            account_tokens.insert().values(
                token_hash=digest(token),
                user_id=user_id,
                purpose=purpose,
                email=email,
                created_ms=now,
                expires_ms=now + int(seconds * 1000),
            )
        )
    return token


def _live(purpose: Purpose, token_hash: str, now: int) -> tuple[ColumnElement[bool], ...]:
    c = account_tokens.c
    return (
        c.token_hash == token_hash,
        c.purpose == purpose,
        c.used_ms.is_(None),
        c.expires_ms > now,
    )


async def peek(db: Database, token: str, purpose: Purpose) -> TokenRow:
    """The live token's row, or a 400 ``invalid_token`` (unknown, spent, expired alike)."""
    if not token.startswith(PREFIXES[purpose]) or len(token) > 100:
        raise InvalidRequest(_INVALID, param="token", code="invalid_token")
    c = account_tokens.c
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(c.token_hash, c.user_id, c.email).where(
                    *_live(purpose, digest(token), now_ms())
                )
            )
        ).first()
    if row is None:
        raise InvalidRequest(_INVALID, param="token", code="invalid_token")
    return TokenRow(row.token_hash, row.user_id, row.email)


async def spend(conn: AsyncConnection, row: TokenRow, purpose: Purpose) -> None:
    """Use the token inside the caller's transaction; 400 when another use won the race."""
    now = now_ms()
    result = await conn.execute(
        update(account_tokens).where(*_live(purpose, row.token_hash, now)).values(used_ms=now)
    )
    if result.rowcount != 1:
        raise InvalidRequest(_INVALID, param="token", code="invalid_token")
    # every other live link of the same purpose dies with it (an older mail, a second ask)
    await conn.execute(
        update(account_tokens)
        .where(
            account_tokens.c.user_id == row.user_id,
            account_tokens.c.purpose == purpose,
            account_tokens.c.used_ms.is_(None),
        )
        .values(used_ms=now)
    )
