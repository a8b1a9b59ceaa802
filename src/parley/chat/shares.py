"""Read-only share links to a conversation.

A share is a snapshot of the current branch (or of the branch ending at a chosen message)
taken when the link is made: later messages, other branches and the owner's identity are
never visible through it, only the display name the owner chose. The link carries a
random token; only its sha256 is stored, so a database leak does not leak working links.
Links can expire and be revoked; a revoked, expired or deleted one answers 404, exactly as
a link that never existed.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from typing import Any

from sqlalchemy import select, update

from parley.chat.conversations import FORK_LIMIT, Conversations
from parley.errors import NotFound
from parley.store.db import Database
from parley.store.tables import conversations, shares

_DAY_MS = 86_400_000


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "conversation_id": row["conversation_id"],
        "display_name": row["display_name"],
        "created_ms": row["created_ms"],
        "expires_ms": row["expires_ms"],
        "revoked": row["revoked_ms"] is not None,
        "messages": len(row["snapshot"]["messages"]),
    }


class Shares:
    def __init__(self, db: Database, conversations: Conversations) -> None:
        self._db = db
        self._conversations = conversations

    async def create(
        self,
        owner_id: str,
        conversation_id: str,
        *,
        message_id: str | None = None,
        display_name: str | None = None,
        expires_in_days: float | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Returns the share and its token (shown once: only its hash is kept)."""
        conversation = await self._conversations.get(owner_id, conversation_id)
        branch, _ = await self._conversations.branch_of(
            conversation, limit=FORK_LIMIT, before=message_id
        )
        snapshot = {
            "title": conversation["title"],
            "messages": [
                {"role": m["role"], "content": m["content"], "created_ms": m["created_ms"]}
                for m in branch
            ],
        }
        token = secrets.token_urlsafe(32)
        now = int(time.time() * 1000)
        row = {
            "id": uuid.uuid4().hex,
            "token_hash": _hash(token),
            "conversation_id": conversation_id,
            "owner_id": owner_id,
            "display_name": display_name,
            "snapshot": snapshot,
            "created_ms": now,
            "expires_ms": int(now + expires_in_days * _DAY_MS) if expires_in_days else None,
            "revoked_ms": None,
        }
        async with self._db.write() as conn:
            await conn.execute(shares.insert().values(**row))
        return _view(row), token

    async def of(self, owner_id: str, conversation_id: str) -> list[dict[str, Any]]:
        await self._conversations.get(owner_id, conversation_id)
        query = (
            select(shares)
            .where(shares.c.conversation_id == conversation_id, shares.c.owner_id == owner_id)
            .order_by(shares.c.created_ms)
        )
        async with self._db.read(lag_ok=True) as conn:
            return [_view(dict(r._mapping)) for r in await conn.execute(query)]

    async def revoke(self, owner_id: str, conversation_id: str, share_id: str) -> None:
        await self._conversations.get(owner_id, conversation_id)
        async with self._db.write() as conn:
            result = await conn.execute(
                update(shares)
                .where(
                    shares.c.id == share_id,
                    shares.c.conversation_id == conversation_id,
                    shares.c.owner_id == owner_id,
                )
                .values(revoked_ms=int(time.time() * 1000))
            )
        if result.rowcount == 0:
            raise NotFound("no such share")

    async def open(self, token: str) -> dict[str, Any]:
        """What a link shows: the snapshot and the chosen display name, nothing else."""
        now = int(time.time() * 1000)
        query = (
            select(shares.c.snapshot, shares.c.display_name, shares.c.created_ms)
            .select_from(shares.join(conversations, conversations.c.id == shares.c.conversation_id))
            .where(
                shares.c.token_hash == _hash(token),
                shares.c.revoked_ms.is_(None),
                (shares.c.expires_ms.is_(None)) | (shares.c.expires_ms > now),
                conversations.c.deleted_ms.is_(None),
            )
        )
        async with self._db.read(lag_ok=True) as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound("this link does not exist, has expired or was revoked")
        return {
            "title": row.snapshot["title"],
            "shared_by": row.display_name,
            "shared_ms": row.created_ms,
            "messages": row.snapshot["messages"],
        }
