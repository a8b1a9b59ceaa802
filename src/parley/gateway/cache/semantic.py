"""The semantic cache: answer a question that means the same as one already answered.

Only the final user turn is compared by meaning. Everything else must match exactly: the
namespace, the serving group, the system prompt, the earlier conversation and every
parameter that changes the answer. That is one *context* (a hash), and each context has its
own vector index, so a lookup can never cross tenants, groups, or conversations.

A candidate is served when its cosine similarity reaches the group's threshold *and* the
two questions agree on numbers, negation, names and requested language (``agreement.py``).
The answer itself lives in the exact cache under the original question's address; an entry
whose answer has expired there is forgotten. Where the questions are indexed (in process,
or pgvector) is ``semantic_index.py``'s business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from parley.config.loader import ModelGroup
from parley.errors import ParleyError
from parley.gateway.cache.agreement import Signature, agree, signature
from parley.gateway.cache.embedders import (
    EmbedTexts,
    MicroBatcher,
    Vectors,
    embedder_for,
)
from parley.gateway.cache.index import SemanticIndex
from parley.gateway.cache.keys import Question
from parley.observability.logging import get_logger

log = get_logger(__name__)
CANDIDATES = 8
"""Nearest neighbours checked for agreement before giving up."""


@dataclass(frozen=True, slots=True)
class Match:
    address: str
    similarity: float


class SemanticCache:
    def __init__(self, embedders: Mapping[str, MicroBatcher], index: SemanticIndex) -> None:
        self.embedders = embedders
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def ready(self, embedder: str) -> bool:
        batcher = self.embedders.get(embedder)
        return batcher is not None and batcher.embedder.ready

    def close(self) -> None:
        for batcher in self.embedders.values():
            batcher.embedder.close()

    async def vector(self, embedder: str, text: str) -> Vectors | None:
        """The question's vector; None while the embedder is still loading or failing (the
        request then goes on without the semantic cache: never an error)."""
        batcher = self.embedders.get(embedder)
        if batcher is None or not batcher.embedder.ready:
            return None
        try:
            return await batcher.one(text)
        except Exception as exc:  # a cache never fails a request
            log.warning(
                "embedding failed; semantic cache skipped", embedder=embedder, error=str(exc)
            )
            return None

    async def nearest(
        self, question: Question, vector: Vectors, threshold: float, now_ms: int
    ) -> Match | None:
        """The most similar stored question at or above ``threshold`` that also agrees
        with this one (``agreement.py``); None when there is none. A store failure (the
        pgvector index unreachable) is a miss."""
        try:
            candidates = await self.index.search(question, vector, CANDIDATES)
        except ParleyError as exc:
            log.warning("semantic index unavailable; treating as a miss", error=exc.message)
            return None
        asked: Signature | None = None
        for candidate in candidates:
            if candidate.similarity < threshold:
                break
            if candidate.expires_ms <= now_ms:
                await self.forget(candidate.address)
                continue
            asked = asked or signature(question.text)
            if agree(asked, candidate.signature):
                return Match(candidate.address, candidate.similarity)
        return None

    async def remember(
        self, question: Question, vector: Vectors, address: str, expires_ms: int
    ) -> None:
        """Index a question (on every instance: the index is shared, or shares itself)."""
        try:
            await self.index.add(question, vector, address, expires_ms)
        except ParleyError as exc:
            log.warning("could not index a semantic cache entry", error=exc.message)

    async def forget(self, address: str) -> None:
        try:
            await self.index.forget(address)
        except ParleyError as exc:
            log.warning("could not forget a semantic cache entry", error=exc.message)

    async def drop(self, namespace: str | None, group: str | None) -> None:
        await self.index.drop(namespace, group)


def build_semantic_cache(
    groups: list[ModelGroup], embed_texts: EmbedTexts, index: SemanticIndex
) -> SemanticCache | None:
    """One embedder per name the groups use (``local`` or an embeddings group), each behind
    a micro-batcher; None when no group has a semantic cache. The local model starts
    loading now, in the background."""
    names = {g.name for g in groups}
    embedders: dict[str, MicroBatcher] = {}
    for group in groups:
        config = group.cache
        if not (config.enabled and config.semantic) or config.embedder in embedders:
            continue
        where = f"models.{group.name}.cache.embedder"
        embedders[config.embedder] = MicroBatcher(
            embedder_for(config.embedder, names, embed_texts, where)
        )
    if not embedders:
        return None
    return SemanticCache(embedders, index)
