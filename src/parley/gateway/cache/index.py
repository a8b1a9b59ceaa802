"""Where the semantic cache's questions are indexed, behind one interface:

* ``MemoryIndex`` (default): one exact in-process index per context; with Redis, each
  indexed question is also appended to a shared log that every instance follows, so all
  in-process indexes hold what any instance answered.
* ``PgVectorIndex``: one PostgreSQL table with a ``vector`` column (pgvector), shared by
  every instance as it is; a search reads only its own context's rows (a b-tree on the
  context), exactly, ordered by cosine distance.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

import msgspec
import numpy as np

from parley.errors import ParleyError
from parley.gateway.cache.agreement import Signature, signature
from parley.gateway.cache.embedders import Vectors
from parley.gateway.cache.keys import Question, within
from parley.gateway.cache.vectors import ExactIndex
from parley.observability.logging import get_logger
from parley.state import SharedEntries
from parley.store.semantic import SemanticRows

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Candidate:
    address: str
    similarity: float
    signature: Signature
    expires_ms: int


class SemanticIndex(Protocol):
    async def search(self, question: Question, vector: Vectors, k: int) -> list[Candidate]:
        """Up to ``k`` of the question's context, most similar first."""

    async def add(
        self, question: Question, vector: Vectors, address: str, expires_ms: int
    ) -> None: ...

    async def forget(self, address: str) -> None: ...

    async def drop(self, namespace: str | None, group: str | None) -> None:
        """Invalidation: forget every entry of a namespace (and its sub-namespaces) and/or
        a group."""

    def drop_local(self, namespace: str | None, group: str | None) -> None:
        """Another instance invalidated: drop what this instance holds of its own."""

    def __len__(self) -> int: ...


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


class MemoryIndex:
    def __init__(
        self, *, max_entries: int, shared: SharedEntries | None = None, instance: str = ""
    ) -> None:
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

    async def search(self, question: Question, vector: Vectors, k: int) -> list[Candidate]:
        partition = self._partitions.get(question.context)
        if partition is None:
            return []
        found = []
        for key, similarity in partition.index.search(vector, k):
            entry = partition.entries[key]
            found.append(Candidate(entry.address, similarity, entry.signature, entry.expires_ms))
        return found

    async def add(self, question: Question, vector: Vectors, address: str, expires_ms: int) -> None:
        self.insert(question, vector, address, expires_ms)
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

    def insert(self, question: Question, vector: Vectors, address: str, expires_ms: int) -> None:
        """Index here only (what ``add`` does before sharing; the evaluation uses it)."""
        self._forget(address)
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
            self._forget(next(iter(self._by_address)))

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
        self.insert(question, vector, entry.address, entry.expires_ms)

    async def forget(self, address: str) -> None:
        self._forget(address)

    def _forget(self, address: str) -> None:
        found = self._by_address.pop(address, None)
        if found is None:
            return
        context, key = found
        partition = self._partitions[context]
        partition.index.remove(key)
        del partition.entries[key]
        if not partition.entries:
            del self._partitions[context]

    async def drop(self, namespace: str | None, group: str | None) -> None:
        self.drop_local(namespace, group)

    def drop_local(self, namespace: str | None, group: str | None) -> None:
        for partition in list(self._partitions.values()):
            if group is not None and partition.group != group:
                continue
            if not within(partition.namespace, namespace):
                continue
            for entry in list(partition.entries.values()):
                self._forget(entry.address)


class PgVectorIndex:
    def __init__(self, rows: SemanticRows) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return 0  # not counted here: the table is shared by every instance

    async def search(self, question: Question, vector: Vectors, k: int) -> list[Candidate]:
        now = int(time.time() * 1000)
        found = await self._rows.search(question.context, _floats(vector), k, now)
        return [
            Candidate(row.address, row.similarity, signature(row.question), row.expires_ms)
            for row in found
        ]

    async def add(self, question: Question, vector: Vectors, address: str, expires_ms: int) -> None:
        await self._rows.add(
            address=address,
            context=question.context,
            namespace=question.namespace,
            group=question.group,
            question=question.text,
            expires_ms=expires_ms,
            vector=_floats(vector),
            now_ms=int(time.time() * 1000),
        )

    async def forget(self, address: str) -> None:
        await self._rows.forget(address)

    async def drop(self, namespace: str | None, group: str | None) -> None:
        await self._rows.drop(namespace, group)

    def drop_local(self, namespace: str | None, group: str | None) -> None:
        pass  # nothing held here: the instance that invalidated deleted the rows


def _floats(vector: Vectors) -> list[float]:
    return [float(v) for v in vector.reshape(-1)]
