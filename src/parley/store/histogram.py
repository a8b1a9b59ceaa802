"""Fixed latency buckets shared by the rollup tables and their readers.

A rollup row cannot keep every request's latency, and percentiles do not add up; bucket
counts do. Each rollup row therefore keeps how many requests fell in each of these
log-spaced ranges (about x1.5 apart, 5 ms to 2 minutes, then "longer"), so p50 and p99
over any set of rows are the sums of their counts, read back with linear interpolation
inside the bucket that holds the rank. The error is at most one bucket's width (~25% of
the value in the worst case); the raw rows stay the exact record while retained.

Changing the bounds changes the schema (a migration), so they are frozen here.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

BOUNDS_MS: tuple[int, ...] = (
    5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000,
    5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000,
)  # fmt: skip
"""Upper bounds (inclusive) of each bucket; one more bucket holds everything above."""

BUCKETS = len(BOUNDS_MS) + 1


def bucket_of(ms: int) -> int:
    """The index of the bucket a latency of ``ms`` falls in."""
    return bisect.bisect_left(BOUNDS_MS, ms)


def latency_columns(prefix: str) -> list[str]:
    """The rollup columns of one histogram: ``<prefix>_0`` .. ``<prefix>_24``."""
    return [f"{prefix}_{i}" for i in range(BUCKETS)]


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a histogram, None when it is empty. The last bucket has
    no upper bound: a rank in it reads as twice the last bound (a floor, said in the docs)."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low = 0 if index == 0 else BOUNDS_MS[index - 1]
            high = BOUNDS_MS[index] if index < len(BOUNDS_MS) else BOUNDS_MS[-1] * 2
            share = (rank - seen) / count
            return round(low + (high - low) * share, 1)
        seen += count
    return float(BOUNDS_MS[-1] * 2)  # pragma: no cover - rank <= total always lands above
