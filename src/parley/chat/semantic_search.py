"""Semantic search over a user's messages, fused with full-text search.

When ``PARLEY_CHAT_SEMANTIC_SEARCH`` names an embedder (``local``, the semantic cache's
all-MiniLM-L6-v2, or an embeddings model group), each new message is queued in
``vector_pending`` in the transaction that stores it; an indexer in every instance embeds
queued messages in batches and stores their vectors in ``message_vectors``. Two instances
may embed the same batch; the second write is a no-op. Deleting a conversation drops its
vectors with its search rows.

A query's vector is compared with the owner's vectors only (exactly: a dot product over
the owner's rows, loaded per query), and the best are fused with the full-text hits by
reciprocal rank fusion: each list contributes ``1 / (RRF_K + rank)`` per hit, so a message
both searches find ranks above one found by only one of them, without comparing BM25 and
cosine scores, which live on different scales.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from parley.chat.parts import text_of
from parley.chat.worker import Worker
from parley.store.db import Database, dialect_module
from parley.store.search import NO_FILTERS, Filters
from parley.store.tables import message_vectors, messages, vector_pending

RRF_K = 60
"""The usual constant of reciprocal rank fusion: damps the weight of the very top ranks."""
CANDIDATES = 50
"""Hits each search contributes to the fusion."""
MAX_CHARS = 2000
"""Text embedded per message (the local model reads 256 tokens at most anyway)."""


class Embed(Protocol):
    @property
    def ready(self) -> bool: ...

    async def embed(self, texts: Sequence[str]) -> Any: ...


@dataclass(frozen=True, slots=True)
class Near:
    conversation_id: str
    message_id: str
    similarity: float


async def queue(
    conn: AsyncConnection, owner_id: str, conversation_id: str, message_id: str
) -> None:
    """Queue a stored message for embedding (in the transaction that stores it)."""
    await conn.execute(
        vector_pending.insert().values(
            message_id=message_id,
            owner_id=owner_id,
            conversation_id=conversation_id,
            created_ms=int(time.time() * 1000),
        )
    )


async def queue_many(conn: AsyncConnection, owner_id: str, stored: list[tuple[str, str]]) -> None:
    """``queue`` for several (conversation id, message id) at once (an import's batch)."""
    if stored:
        now = int(time.time() * 1000)
        await conn.execute(
            vector_pending.insert(),
            [
                {
                    "message_id": message_id,
                    "owner_id": owner_id,
                    "conversation_id": conversation_id,
                    "created_ms": now,
                }
                for conversation_id, message_id in stored
            ],
        )


async def forget(conn: AsyncConnection, conversation_ids: list[str]) -> None:
    """A deleted conversation's vectors and queue entries."""
    for table in (message_vectors, vector_pending):
        await conn.execute(delete(table).where(table.c.conversation_id.in_(conversation_ids)))


def fuse(*ranked: Sequence[tuple[str, str]], limit: int) -> list[tuple[tuple[str, str], float]]:
    """Reciprocal rank fusion of ranked lists of (conversation id, message id): the keys
    best first, with their fused scores."""
    scores: dict[tuple[str, str], float] = {}
    for hits in ranked:
        for rank, key in enumerate(hits, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)[:limit]


class SemanticSearch(Worker):
    """The indexer (a ``Worker`` over ``vector_pending``) and the nearest-message query."""

    name = "parley-vectors"

    def __init__(
        self,
        db: Database,
        embedder: Embed,
        *,
        min_similarity: float = 0.35,
        batch: int = 64,
        poll_s: float = 2.0,
    ) -> None:
        super().__init__(poll_s=poll_s)
        self._db = db
        self._embedder = embedder
        self._min_similarity = min_similarity
        self._batch = batch

    async def step(self) -> int:
        """Embed and store one batch of queued messages; how many were indexed."""
        if not self._embedder.ready:
            return 0
        query = (
            select(
                vector_pending.c.message_id,
                vector_pending.c.owner_id,
                vector_pending.c.conversation_id,
                messages.c.content,
            )
            .join(messages, messages.c.id == vector_pending.c.message_id, isouter=True)
            .order_by(vector_pending.c.created_ms)
            .limit(self._batch)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        if not rows:
            return 0
        import numpy as np  # noqa: PLC0415 - only when semantic search is on (start-up, RSS)

        texts = [text_of(r.content or [])[:MAX_CHARS] for r in rows]
        embeddable = [i for i, t in enumerate(texts) if t.strip()]
        vectors = (
            np.asarray(await self._embedder.embed([texts[i] for i in embeddable]), dtype=np.float32)
            if embeddable
            else np.zeros((0, 0), dtype=np.float32)
        )
        async with self._db.write() as conn:
            if embeddable:
                insert = dialect_module(conn.dialect.name).insert
                await conn.execute(
                    insert(message_vectors)
                    .values(
                        [
                            {
                                "message_id": rows[i].message_id,
                                "owner_id": rows[i].owner_id,
                                "conversation_id": rows[i].conversation_id,
                                "vector": vectors[n].tobytes(),
                            }
                            for n, i in enumerate(embeddable)
                        ]
                    )
                    .on_conflict_do_nothing(index_elements=["message_id"])
                )
            await conn.execute(
                delete(vector_pending).where(
                    vector_pending.c.message_id.in_([r.message_id for r in rows])
                )
            )
        return len(rows)

    async def nearest(
        self,
        owner_id: str,
        query: str,
        limit: int = CANDIDATES,
        conversation_id: str | None = None,
    ) -> list[Near]:
        """The owner's messages (of one conversation, if given) closest in meaning to
        ``query``, best first."""
        if not self._embedder.ready:
            return []
        import numpy as np  # noqa: PLC0415 - only when semantic search is on (start-up, RSS)

        wanted = np.asarray(await self._embedder.embed([query[:MAX_CHARS]]), dtype=np.float32)[0]
        rows_query = select(
            message_vectors.c.conversation_id,
            message_vectors.c.message_id,
            message_vectors.c.vector,
        ).where(message_vectors.c.owner_id == owner_id)
        if conversation_id is not None:
            rows_query = rows_query.where(message_vectors.c.conversation_id == conversation_id)
        async with self._db.read() as conn:
            rows = (await conn.execute(rows_query)).all()
        if not rows:
            return []
        matrix = np.frombuffer(b"".join(bytes(r.vector) for r in rows), dtype=np.float32)
        matrix = matrix.reshape(len(rows), -1)
        if matrix.shape[1] != wanted.shape[0]:  # vectors of another embedder: not comparable
            return []
        scores = matrix @ wanted
        best = np.argsort(-scores)[:limit]
        return [
            Near(rows[i].conversation_id, rows[i].message_id, float(scores[i]))
            for i in best
            if scores[i] >= self._min_similarity  # below it, "nearest" is only noise
        ]

    async def hybrid(
        self,
        owner_id: str,
        query: str,
        text_hits: Sequence[Any],
        limit: int,
        filters: Filters = NO_FILTERS,
    ) -> list[dict[str, Any]]:
        """Full-text hits (``store.search.Hit``, best first, already filtered) fused with
        the nearest messages by meaning that pass ``filters``. A message found only by
        meaning gets the start of its text as snippet."""
        near: list[Near] = []
        excerpts: dict[str, str] = {}
        if filters.kind in (None, "message"):
            found = await self.nearest(owner_id, query, conversation_id=filters.conversation_id)
            rows = await self._messages([n.message_id for n in found])
            near = [
                n for n in found if n.message_id in rows and _passes(rows[n.message_id], filters)
            ]
            excerpts = {mid: _excerpt(text_of(row.content)) for mid, row in rows.items()}
        by_text = {(h.conversation_id, h.message_id): h for h in text_hits}
        fused = fuse(
            [(h.conversation_id, h.message_id) for h in text_hits],
            [(n.conversation_id, n.message_id) for n in near],
            limit=limit,
        )
        meaning = {(n.conversation_id, n.message_id) for n in near}
        results = []
        for key, score in fused:
            hit = by_text.get(key)
            results.append(
                {
                    "conversation_id": key[0],
                    "message_id": key[1],
                    "kind": hit.kind if hit is not None else "message",
                    "snippet": hit.snippet if hit is not None else excerpts[str(key[1])],
                    "score": score,
                    "matched": [
                        m
                        for m, found in (("text", hit is not None), ("meaning", key in meaning))
                        if found
                    ],
                }
            )
        return results

    async def _messages(self, ids: list[str]) -> dict[str, Any]:
        """The rows of these messages that still exist (a conversation may have gone)."""
        if not ids:
            return {}
        query = select(
            messages.c.id, messages.c.role, messages.c.created_ms, messages.c.content
        ).where(messages.c.id.in_(ids))
        async with self._db.read() as conn:
            return {r.id: r for r in await conn.execute(query)}


def _passes(row: Any, filters: Filters) -> bool:
    return (
        (filters.role is None or row.role == filters.role)
        and (filters.since_ms is None or row.created_ms >= filters.since_ms)
        and (filters.until_ms is None or row.created_ms < filters.until_ms)
    )


def _excerpt(text: str, length: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= length else flat[: length - 1].rstrip() + "…"
