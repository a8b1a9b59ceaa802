"""The semantic cache's questions in PostgreSQL with pgvector, shared by every instance.

The table is a cache, not a record: ``ensure()`` creates it (and the extension) when
missing, outside the migrations, and nothing else depends on it. A search reads only its
context's rows through the b-tree on ``context`` and orders them by exact cosine distance
(``<=>``): contexts are small (one team's questions to one group with one system prompt),
so an approximate index would buy nothing there and could miss a neighbour.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from parley.errors import ConfigError
from parley.state.keys import SUB_NAMESPACE
from parley.store.db import Database

TABLE = "parley_semantic_cache"

_SCHEMA = [
    "CREATE EXTENSION IF NOT EXISTS vector",
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        address text PRIMARY KEY,
        context text NOT NULL,
        namespace text NOT NULL,
        model_group text NOT NULL,
        question text NOT NULL,
        expires_ms bigint NOT NULL,
        embedding vector NOT NULL
    )""",
    f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_context ON {TABLE} (context)",
    f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_expires ON {TABLE} (expires_ms)",
]


@dataclass(frozen=True, slots=True)
class Row:
    address: str
    similarity: float
    question: str
    expires_ms: int


def _literal(vector: list[float]) -> str:
    return "[" + ",".join(repr(v) for v in vector) + "]"


class SemanticRows:
    def __init__(self, db: Database, *, sweep_every: int = 200) -> None:
        self._db = db
        self._sweep_every = sweep_every

    async def ensure(self) -> None:
        if self._db.dialect != "postgresql":
            raise ConfigError(
                ["PARLEY_CACHE_SEMANTIC_INDEX=pgvector needs PARLEY_DATABASE_URL on PostgreSQL"]
            )
        try:
            async with self._db.engine.begin() as conn:
                await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": TABLE})
                for statement in _SCHEMA:
                    await conn.execute(text(statement))
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise ConfigError(
                [
                    "the semantic cache's pgvector index could not be set up "
                    f"({type(cause).__name__}: {str(cause).splitlines()[0]}); install pgvector "
                    "in PostgreSQL (scripts/install-pgvector.sh) or unset "
                    "PARLEY_CACHE_SEMANTIC_INDEX"
                ]
            ) from None

    async def search(self, context: str, vector: list[float], k: int, now_ms: int) -> list[Row]:
        query = text(
            f"SELECT address, 1 - (embedding <=> CAST(:v AS vector)) AS similarity, question, "
            f"expires_ms FROM {TABLE} WHERE context = :c AND expires_ms > :now "
            "ORDER BY embedding <=> CAST(:v AS vector) LIMIT :k"
        )
        async with self._db.read() as conn:
            result = await conn.execute(
                query, {"v": _literal(vector), "c": context, "now": now_ms, "k": k}
            )
            return [Row(r[0], float(r[1]), r[2], int(r[3])) for r in result]

    async def add(
        self,
        *,
        address: str,
        context: str,
        namespace: str,
        group: str,
        question: str,
        expires_ms: int,
        vector: list[float],
        now_ms: int = 0,
    ) -> None:
        statement = text(
            f"INSERT INTO {TABLE} (address, context, namespace, model_group, question, "
            "expires_ms, embedding) VALUES (:a, :c, :n, :g, :q, :e, CAST(:v AS vector)) "
            "ON CONFLICT (address) DO UPDATE SET context = EXCLUDED.context, "
            "question = EXCLUDED.question, expires_ms = EXCLUDED.expires_ms, "
            "embedding = EXCLUDED.embedding"
        )
        values = {
            "a": address,
            "c": context,
            "n": namespace,
            "g": group,
            "q": question,
            "e": expires_ms,
            "v": _literal(vector),
        }
        async with self._db.write() as conn:
            await conn.execute(statement, values)
            if now_ms and random.random() < 1 / self._sweep_every:  # noqa: S311 - not security
                await conn.execute(
                    text(f"DELETE FROM {TABLE} WHERE expires_ms <= :now"), {"now": now_ms}
                )

    async def forget(self, address: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(text(f"DELETE FROM {TABLE} WHERE address = :a"), {"a": address})

    async def drop(self, namespace: str | None, group: str | None) -> None:
        clauses: list[str] = []
        values: dict[str, str] = {}
        if namespace is not None:
            clauses.append("(namespace = :n OR starts_with(namespace, :prefix))")
            values |= {"n": namespace, "prefix": namespace + SUB_NAMESPACE}
        if group is not None:
            clauses.append("model_group = :g")
            values["g"] = group
        where = " AND ".join(clauses) or "TRUE"
        async with self._db.write() as conn:
            await conn.execute(text(f"DELETE FROM {TABLE} WHERE {where}"), values)
