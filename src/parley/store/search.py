"""Full-text search over a user's messages and conversation titles.

One table, ``message_search``, created per engine by migration 0004: an FTS5 virtual table
on SQLite, a table with a generated ``tsvector`` column and a GIN index on PostgreSQL. The
projections keep it in step with the event log (same transaction), and a rebuild refills
it. Queries are plain words (any syntax is neutralised), all of which must match; results
are ranked (BM25 on SQLite, ``ts_rank_cd`` on PostgreSQL) with a highlighted snippet.

Snippets mark matches with ``<mark>``/``</mark>`` and are otherwise the stored text,
unescaped: a client rendering them as HTML must escape everything but those marks.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from parley.store.db import Database

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 16


@dataclass(frozen=True, slots=True)
class Hit:
    conversation_id: str
    message_id: str | None
    kind: str
    snippet: str
    score: float


def terms(query: str) -> list[str]:
    return _WORD.findall(query.lower())[:MAX_TERMS]


async def add(
    conn: AsyncConnection,
    *,
    owner_id: str,
    conversation_id: str,
    message_id: str | None,
    kind: str,
    body: str,
) -> None:
    if not body.strip():
        return
    if conn.dialect.name == "sqlite":
        statement = text(
            "INSERT INTO message_search (body, owner_id, conversation_id, message_id, kind) "
            "VALUES (:body, :owner, :conversation, :message, :kind)"
        )
        values: dict[str, str] = {}
    else:
        statement = text(
            "INSERT INTO message_search (id, owner_id, conversation_id, message_id, kind, body) "
            "VALUES (:id, :owner, :conversation, :message, :kind, :body)"
        )
        values = {"id": uuid.uuid4().hex}
    await conn.execute(
        statement,
        {
            **values,
            "body": body,
            "owner": owner_id,
            "conversation": conversation_id,
            "message": message_id,
            "kind": kind,
        },
    )


async def remove(conn: AsyncConnection, conversation_id: str, kind: str | None = None) -> None:
    """A conversation's rows (deleted), or only those of one kind (a title replaced)."""
    clause = " AND kind = :kind" if kind is not None else ""
    await conn.execute(
        text(f"DELETE FROM message_search WHERE conversation_id = :c{clause}"),  # noqa: S608
        {"c": conversation_id, "kind": kind},
    )


async def clear(conn: AsyncConnection) -> None:
    await conn.execute(text("DELETE FROM message_search"))


_SQLITE_QUERY = text(
    "SELECT conversation_id, message_id, kind, "
    "snippet(message_search, 0, '<mark>', '</mark>', '…', 16) AS snippet, "
    "bm25(message_search) AS score "
    "FROM message_search WHERE message_search MATCH :match "
    "ORDER BY score LIMIT :limit"
)
_POSTGRES_QUERY = text(
    # rank every match, then build headlines (the costly part) for the page shown only
    "SELECT conversation_id, message_id, kind, "
    "ts_headline('simple', body, q, "
    "'StartSel=<mark>, StopSel=</mark>, MaxWords=24, MinWords=8, MaxFragments=1') AS snippet, "
    "score FROM ("
    "SELECT conversation_id, message_id, kind, body, q, ts_rank_cd(tsv, q) AS score "
    # OFFSET 0 keeps the owner's rows (an index range) as the scan: a common word's GIN
    # posting list spans every user, and building it cost more than checking these rows
    "FROM (SELECT * FROM message_search WHERE owner_id = :owner OFFSET 0) AS mine, "
    "plainto_tsquery('simple', :q) AS q "
    "WHERE tsv @@ q "
    "ORDER BY score DESC LIMIT :limit) AS best "
    "ORDER BY score DESC"
)


async def search(db: Database, owner_id: str, query: str, limit: int) -> list[Hit]:
    words = terms(query)
    if not words:
        return []
    async with db.read() as conn:
        if conn.dialect.name == "sqlite":
            phrases = " AND ".join(f'body:"{w}"' for w in words)
            match = f'owner_id:"{owner_id}" AND {phrases}'
            rows = await conn.execute(_SQLITE_QUERY, {"match": match, "limit": limit})
            # bm25 is lower for better matches: negated, so higher is better on both
            return [Hit(r[0], r[1], r[2], r[3], -float(r[4])) for r in rows]
        q = " ".join(words)
        rows = await conn.execute(_POSTGRES_QUERY, {"q": q, "owner": owner_id, "limit": limit})
        return [Hit(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]
