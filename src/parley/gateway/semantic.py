"""The semantic cache: answer a question that means the same as one already answered.

Only the final user turn is compared by meaning. Everything else must match exactly: the
namespace, the serving group, the system prompt, the earlier conversation and every
parameter that changes the answer. That is one *context* (a hash), and each context has its
own vector index, so a lookup can never cross tenants, groups, or conversations.

A candidate is served when its cosine similarity reaches the group's threshold *and* the
two questions agree on numbers, negation, names and requested language (``agreement.py``).
The answer itself lives in the exact cache under the original question's address; an entry
whose answer has expired there is forgotten.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec
import numpy as np

from parley.config.loader import ModelGroup
from parley.errors import ConfigError, ParleyError
from parley.gateway.agreement import Signature, agree, signature
from parley.gateway.cachekey import Question, within
from parley.gateway.embedders import (
    EmbedTexts,
    GroupEmbedder,
    LocalEmbedder,
    MicroBatcher,
    Vectors,
)
from parley.gateway.vectors import ExactIndex
from parley.observability.logging import get_logger
from parley.state import SharedEntries

log = get_logger(__name__)
CANDIDATES = 8
"""Nearest neighbours checked for agreement before giving up."""


@dataclass(frozen=True, slots=True)
class Match:
    address: str
    similarity: float
    context: str


@dataclass(slots=True)
class _Entry:
    address: str
    signature: Signature
    expires_ms: int


@dataclass(slots=True)
class _Partition:
    namespace: str
    group: str
    index: ExactIndex
    entries: dict[int, _Entry] = field(default_factory=dict)


class _Shared(msgspec.Struct, array_like=True):
    """One indexed question as it travels between instances."""

    instance: str
    context: str
    namespace: str
    group: str
    text: str
    address: str
    expires_ms: int
    vector: bytes


_encode_shared = msgspec.msgpack.Encoder().encode
_decode_shared = msgspec.msgpack.Decoder(_Shared).decode


class SemanticCache:
    def __init__(
        self,
        embedders: Mapping[str, MicroBatcher],
        *,
        max_entries: int,
        shared: SharedEntries | None = None,
        instance: str = "",
    ) -> None:
        self.embedders = embedders
        self.shared = shared
        self._instance = instance
        self._max_entries = max_entries
        self._partitions: dict[str, _Partition] = {}
        self._by_address: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._next_key = 0

    def __len__(self) -> int:
        return len(self._by_address)

    @property
    def nbytes(self) -> int:
        return sum(p.index.nbytes for p in self._partitions.values())

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

    def nearest(
        self, question: Question, vector: Vectors, threshold: float, now_ms: int
    ) -> Match | None:
        partition = self._partitions.get(question.context)
        if partition is None:
            return None
        asked: Signature | None = None
        for key, similarity in partition.index.search(vector, CANDIDATES):
            if similarity < threshold:
                break
            entry = partition.entries[key]
            if entry.expires_ms <= now_ms:
                self.forget(entry.address)
                continue
            asked = asked or signature(question.text)
            if agree(asked, entry.signature):
                return Match(entry.address, similarity, question.context)
        return None

    def candidates(
        self, question: Question, vector: Vectors, k: int
    ) -> list[tuple[str, float, bool]]:
        """(address, similarity, agrees) of the ``k`` nearest: for the evaluation."""
        partition = self._partitions.get(question.context)
        if partition is None:
            return []
        asked = signature(question.text)
        found = []
        for key, similarity in partition.index.search(vector, k):
            entry = partition.entries[key]
            found.append((entry.address, similarity, agree(asked, entry.signature)))
        return found

    def add(self, question: Question, vector: Vectors, address: str, expires_ms: int) -> None:
        self.forget(address)
        partition = self._partitions.get(question.context)
        if partition is None:
            partition = self._partitions[question.context] = _Partition(
                question.namespace, question.group, ExactIndex(vector.shape[-1])
            )
        key = self._next_key
        self._next_key += 1
        partition.index.add(key, vector)
        partition.entries[key] = _Entry(address, signature(question.text), expires_ms)
        self._by_address[address] = (question.context, key)
        while len(self._by_address) > self._max_entries:
            oldest = next(iter(self._by_address))
            self.forget(oldest)

    async def remember(
        self, question: Question, vector: Vectors, address: str, expires_ms: int
    ) -> None:
        """Index a question here and, with Redis, on every other instance."""
        self.add(question, vector, address, expires_ms)
        if self.shared is None:
            return
        entry = _Shared(
            self._instance,
            question.context,
            question.namespace,
            question.group,
            question.text,
            address,
            expires_ms,
            vector.astype(np.float32).tobytes(),
        )
        try:
            await self.shared.append(_encode_shared(entry))
        except ParleyError as exc:
            log.warning("could not share a semantic cache entry", error=exc.message)

    def apply_shared(self, data: bytes) -> None:
        """Another instance's indexed question (``SharedEntries.follow`` calls this)."""
        try:
            entry = _decode_shared(data)
        except msgspec.DecodeError:
            return
        if entry.instance == self._instance or entry.expires_ms <= time.time() * 1000:
            return
        vector = np.frombuffer(entry.vector, dtype=np.float32).reshape(1, -1)
        question = Question(entry.context, entry.text, entry.namespace, entry.group)
        self.add(question, vector, entry.address, entry.expires_ms)

    def forget(self, address: str) -> None:
        found = self._by_address.pop(address, None)
        if found is None:
            return
        context, key = found
        partition = self._partitions[context]
        partition.index.remove(key)
        del partition.entries[key]
        if not partition.entries:
            del self._partitions[context]

    def drop(self, namespace: str | None, group: str | None) -> None:
        """Invalidation: forget every entry of the matching partitions."""
        for context, partition in list(self._partitions.items()):
            if group is not None and partition.group != group:
                continue
            if not within(partition.namespace, namespace):
                continue
            for entry in list(partition.entries.values()):
                self.forget(entry.address)
            self._partitions.pop(context, None)


def build_semantic_cache(
    groups: list[ModelGroup],
    embed_texts: EmbedTexts,
    *,
    max_entries: int,
    shared: SharedEntries | None = None,
    instance: str = "",
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
        if config.embedder == "local":
            LocalEmbedder.check_installed(f"models.{group.name}.cache")
            local = LocalEmbedder()
            local.start()
            embedders["local"] = MicroBatcher(local)
        elif config.embedder in names:
            embedders[config.embedder] = MicroBatcher(GroupEmbedder(config.embedder, embed_texts))
        else:
            raise ConfigError(
                [
                    f"models.{group.name}.cache.embedder: {config.embedder!r} is neither "
                    "'local' nor a model group"
                ]
            )
    if not embedders:
        return None
    return SemanticCache(embedders, max_entries=max_entries, shared=shared, instance=instance)
