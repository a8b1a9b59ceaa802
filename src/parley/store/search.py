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

from sqlalchemy import bindparam, text
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
    await add_many(conn, [Row(owner_id, conversation_id, message_id, kind, body)])


@dataclass(frozen=True, slots=True)
class Row:
    """One searchable text: a message's or a conversation's title."""

    owner_id: str
    conversation_id: str
    message_id: str | None
    kind: str
    body: str


async def add_many(conn: AsyncConnection, rows: list[Row]) -> None:
    """Index several texts in one statement (an import's batch); blank ones are skipped."""
    values = [
        {
            "body": r.body,
            "owner": r.owner_id,
            "conversation": r.conversation_id,
            "message": r.message_id,
            "kind": r.kind,
        }
        for r in rows
        if r.body.strip()
    ]
    if not values:
        return
    if conn.dialect.name == "sqlite":
        statement = text(
            "INSERT INTO message_search (body, owner_id, conversation_id, message_id, kind) "
            "VALUES (:body, :owner, :conversation, :message, :kind)"
        )
    else:
        statement = text(
            "INSERT INTO message_search (id, owner_id, conversation_id, message_id, kind, body) "
            "VALUES (:id, :owner, :conversation, :message, :kind, :body)"
        )
        for value in values:
            value["id"] = uuid.uuid4().hex
    await conn.execute(statement, values)


async def remove(conn: AsyncConnection, conversation_id: str, kind: str | None = None) -> None:
    """A conversation's rows (deleted), or only those of one kind (a title replaced)."""
    clause = " AND kind = :kind" if kind is not None else ""
    await conn.execute(
        text(f"DELETE FROM message_search WHERE conversation_id = :c{clause}"),
        {"c": conversation_id, "kind": kind},
    )


async def remove_many(conn: AsyncConnection, conversation_ids: list[str]) -> None:
    """Every row of these conversations (an import rolled back)."""
    if conversation_ids:
        await conn.execute(
            text("DELETE FROM message_search WHERE conversation_id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": conversation_ids},
        )


async def clear(conn: AsyncConnection) -> None:
    await conn.execute(text("DELETE FROM message_search"))


async def compact(conn: AsyncConnection) -> None:
    """Rewrite SQLite's full-text index without the deleted rows' terms. FTS5 records a
    delete as a tombstone and keeps the words in its segments until they merge, where
    the database file (and ``message_search_data``) still holds them: an erasure must
    not leave them there. PostgreSQL's deleted rows are gone from every query at once
    (their dead tuples are reclaimed by VACUUM), so nothing is done there."""
    if conn.dialect.name == "sqlite":
        await conn.execute(text("INSERT INTO message_search(message_search) VALUES ('optimize')"))


@dataclass(frozen=True, slots=True)
class Filters:
    """Narrow a search: one conversation, titles or messages, whose messages (a role),
    a time range of the message (ms; titles have no time, so a range keeps messages
    only). Values reach SQL as bound parameters; only the clause list varies."""

    conversation_id: str | None = None
    kind: str | None = None
    role: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    @property
    def by_message(self) -> bool:
        """Whether the filter reads the message row (role or time)."""
        return self.role is not None or self.since_ms is not None or self.until_ms is not None

    def clauses(self, table: str) -> tuple[str, dict[str, object]]:
        """`` AND ...`` for the search table (aliased ``table``) joined to ``messages``."""
        parts: list[str] = []
        params: dict[str, object] = {}
        for column, value, op in (
            (f"{table}.conversation_id", self.conversation_id, "="),
            (f"{table}.kind", self.kind, "="),
            ("messages.role", self.role, "="),
            ("messages.created_ms", self.since_ms, ">="),
            ("messages.created_ms", self.until_ms, "<"),
        ):
            if value is not None:
                name = f"f{len(params)}"
                parts.append(f" AND {column} {op} :{name}")
                params[name] = value
        return "".join(parts), params


NO_FILTERS = Filters()


def _sqlite_query(filters: Filters) -> tuple[str, dict[str, object]]:
    where, params = filters.clauses("message_search")
    join = " JOIN messages ON messages.id = message_search.message_id" if filters.by_message else ""
    sql = (
        "SELECT message_search.conversation_id, message_search.message_id, message_search.kind, "
        "snippet(message_search, 0, '<mark>', '</mark>', '…', 16) AS snippet, "
        f"bm25(message_search) AS score FROM message_search{join} "
        f"WHERE message_search MATCH :match{where} "
        "ORDER BY score LIMIT :limit"
    )
    return sql, params


def _postgres_query(filters: Filters) -> tuple[str, dict[str, object]]:
    where, params = filters.clauses("s")
    join = " JOIN messages ON messages.id = s.message_id" if filters.by_message else ""
    sql = (
        # rank every match, then build headlines (the costly part) for the page shown only
        "SELECT conversation_id, message_id, kind, "
        "ts_headline('simple', body, q, "
        "'StartSel=<mark>, StopSel=</mark>, MaxWords=24, MinWords=8, MaxFragments=1') "
        "AS snippet, score FROM ("
        "SELECT conversation_id, message_id, kind, body, q, ts_rank_cd(tsv, q) AS score "
        # OFFSET 0 keeps the owner's rows (an index range) as the scan: a common word's
        # GIN posting list spans every user, and building it cost more than checking these
        "FROM (SELECT s.* FROM message_search AS s"
        f"{join} WHERE s.owner_id = :owner{where} OFFSET 0) AS mine, "
        "plainto_tsquery('simple', :q) AS q "
        "WHERE tsv @@ q "
        "ORDER BY score DESC LIMIT :limit) AS best "
        "ORDER BY score DESC"
    )
    return sql, params


async def search(
    db: Database, owner_id: str, query: str, limit: int, filters: Filters = NO_FILTERS
) -> list[Hit]:
    words = terms(query)
    if not words:
        return []
    async with db.read(lag_ok=True) as conn:
        if conn.dialect.name == "sqlite":
            phrases = " AND ".join(f'body:"{w}"' for w in words)
            match = f'owner_id:"{owner_id}" AND {phrases}'
            sql, params = _sqlite_query(filters)
            rows = await conn.execute(text(sql), {"match": match, "limit": limit, **params})
            # bm25 is lower for better matches: negated, so higher is better on both
            return [Hit(r[0], r[1], r[2], r[3], -float(r[4])) for r in rows]
        sql, params = _postgres_query(filters)
        rows = await conn.execute(
            text(sql), {"q": " ".join(words), "owner": owner_id, "limit": limit, **params}
        )
        return [Hit(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]
