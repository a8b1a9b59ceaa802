"""In-process vector index for the semantic cache, behind one small interface.

``ExactIndex`` searches by brute force over a contiguous float32 matrix: at the sizes one
cache partition reaches (a team's questions to one group with one system prompt), a single
matrix-vector product is faster than an approximate graph, exact (no recall lost), and adds
in O(1). ``bench/vector_index.py`` measures it against usearch's HNSW; see
docs/benchmarks.md for the numbers behind the choice.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from parley.gateway.cache.embedders import Vectors


class VectorIndex(Protocol):
    def add(self, key: int, vector: Vectors) -> None: ...

    def remove(self, key: int) -> None: ...

    def search(self, vector: Vectors, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` (key, cosine similarity), most similar first."""

    def __len__(self) -> int: ...

    @property
    def nbytes(self) -> int: ...


class ExactIndex:
    def __init__(self, dimensions: int, capacity: int = 16) -> None:
        self._matrix = np.zeros((capacity, dimensions), dtype=np.float32)
        self._keys = np.zeros(capacity, dtype=np.int64)
        self._row: dict[int, int] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return int(self._matrix.nbytes + self._keys.nbytes)

    def add(self, key: int, vector: Vectors) -> None:
        if key in self._row:
            self._matrix[self._row[key]] = vector.reshape(-1)
            return
        if self._count == len(self._keys):
            self._matrix = np.concatenate([self._matrix, np.zeros_like(self._matrix)])
            self._keys = np.concatenate([self._keys, np.zeros_like(self._keys)])
        row = self._count
        self._matrix[row] = vector.reshape(-1)
        self._keys[row] = key
        self._row[key] = row
        self._count += 1

    def remove(self, key: int) -> None:
        """Swap the last row into the removed one: O(1), no holes."""
        row = self._row.pop(key, None)
        if row is None:
            return
        last = self._count - 1
        if row != last:
            moved = int(self._keys[last])
            self._matrix[row] = self._matrix[last]
            self._keys[row] = moved
            self._row[moved] = row
        self._count = last

    def search(self, vector: Vectors, k: int) -> list[tuple[int, float]]:
        if self._count == 0:
            return []
        scores = self._matrix[: self._count] @ vector.reshape(-1)
        k = min(k, self._count)
        if k == self._count:
            top = np.argsort(-scores)
        else:
            part = np.argpartition(-scores, k - 1)[:k]
            top = part[np.argsort(-scores[part])]
        return [(int(self._keys[i]), float(scores[i])) for i in top]
