"""Queries over a conversation's message tree beyond the branch walk: the versions
(siblings) of each message on a page, and the newest leaf under a message.

A message's versions are the messages sharing its parent (an edit or a regeneration adds
one). Switching to a version shows the branch worked on most recently under it: the newest
message of its subtree, which is always a leaf (a child is newer than its parent).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from parley.store.tables import messages

_NEWEST_LEAF = text(
    """
    WITH RECURSIVE subtree(id) AS (
        SELECT id FROM messages WHERE id = :start AND conversation_id = :conversation
        UNION ALL
        SELECT m.id FROM messages m JOIN subtree ON m.parent_id = subtree.id
    )
    SELECT messages.id FROM subtree JOIN messages ON messages.id = subtree.id
    ORDER BY messages.seq DESC
    LIMIT 1
    """
)


async def newest_leaf(conn: AsyncConnection, conversation_id: str, message_id: str) -> str | None:
    """The newest message under ``message_id`` (itself when it has no children); None when
    the message is not in the conversation."""
    row = (
        await conn.execute(_NEWEST_LEAF, {"start": message_id, "conversation": conversation_id})
    ).first()
    return None if row is None else str(row[0])


async def add_versions(
    conn: AsyncConnection, conversation_id: str, page: Sequence[dict[str, Any]]
) -> None:
    """Set ``version_ids`` on each message of ``page``: it and its siblings, oldest first.
    One indexed query for the whole page."""
    if not page:
        return
    parents = {m["parent_id"] for m in page if m["parent_id"] is not None}
    m = messages.c
    clauses = []
    if parents:
        clauses.append(m.parent_id.in_(parents))
    if any(message["parent_id"] is None for message in page):
        clauses.append(m.parent_id.is_(None))
    query = (
        select(m.id, m.parent_id)
        .where(m.conversation_id == conversation_id)
        .where(clauses[0] if len(clauses) == 1 else clauses[0] | clauses[1])
        .order_by(m.seq)
    )
    by_parent: dict[str | None, list[str]] = {}
    for row in await conn.execute(query):
        by_parent.setdefault(row.parent_id, []).append(row.id)
    for message in page:
        message["version_ids"] = by_parent.get(message["parent_id"], [message["id"]])
