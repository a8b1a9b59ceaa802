"""usage rollups per hour and per day in three shapes (team x model group, team x user x
key, and all four), filled from the raw usage rows already stored

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# Frozen copy of parley.store.histogram.BOUNDS_MS as of this revision.
BOUNDS_MS = (
    5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000,
    5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000,
)  # fmt: skip
BUCKETS = len(BOUNDS_MS) + 1
SIZES = {"hourly": 3_600_000, "daily": 86_400_000}
SHAPES: dict[str, tuple[tuple[str, ...], bool]] = {
    "usage": (("model_group", "team_id", "user_id", "key_id"), False),
    "usage_groups": (("team_id", "model_group"), True),
    "usage_principals": (("team_id", "user_id", "key_id"), False),
}
"""Table prefix: its dimensions, and whether it keeps latency histograms."""
SUMS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_nusd",
    "cache_lookups",
    "cache_hits",
    "semantic_hits",
    "latency_sum_ms",
)
_SUM_SQL = (
    "COUNT(*)",
    "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END)",
    "SUM(prompt_tokens)",
    "SUM(completion_tokens)",
    "SUM(cached_tokens)",
    "SUM(cost_nusd)",
    "SUM(CASE WHEN cache IN ('hit', 'semantic-hit', 'miss') THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN cache = 'hit' THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN cache = 'semantic-hit' THEN 1 ELSE 0 END)",
    "SUM(latency_ms)",
)


def tables() -> dict[str, tuple[int, tuple[str, ...], bool]]:
    """Every rollup table: its bucket size, dimensions and whether it has histograms."""
    return {
        f"{prefix}_{grain}": (size, dims, histograms)
        for prefix, (dims, histograms) in SHAPES.items()
        for grain, size in SIZES.items()
    }


def _histogram_names() -> list[str]:
    return [f"{p}_{i}" for p in ("lat", "ttft") for i in range(BUCKETS)]


def _create(name: str, dims: tuple[str, ...], histograms: bool) -> None:
    op.create_table(
        name,
        sa.Column("bucket_ms", sa.BigInteger(), nullable=False),
        *(sa.Column(d, sa.String(200 if d == "model_group" else 32), nullable=False) for d in dims),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in SUMS),
        *(
            sa.Column(c, sa.Integer(), nullable=False)
            for c in (_histogram_names() if histograms else [])
        ),
        sa.PrimaryKeyConstraint("bucket_ms", *dims, name=op.f(f"pk_{name}")),
    )
    for column in dims:
        op.create_index(f"ix_{name}_{column}_bucket_ms", name, [column, "bucket_ms"])


def _histogram(column: str, prefix: str) -> list[str]:
    """One SUM(CASE) per bucket: bucket i holds BOUNDS_MS[i-1] < value <= BOUNDS_MS[i]."""
    parts = []
    for i in range(BUCKETS):
        tests = [f"{column} IS NOT NULL"]
        if i > 0:
            tests.append(f"{column} > {BOUNDS_MS[i - 1]}")
        if i < len(BOUNDS_MS):
            tests.append(f"{column} <= {BOUNDS_MS[i]}")
        parts.append(f"SUM(CASE WHEN {' AND '.join(tests)} THEN 1 ELSE 0 END)")
    return parts


def backfill_sql(name: str) -> str:
    """Sum every raw row into rollup ``name`` (``bench/usage_read.py`` fills its rollups
    with this too)."""
    size, dims, histograms = tables()[name]
    keys = [f"(time_ms / {size}) * {size}"]
    keys += [d if d == "model_group" else f"COALESCE({d}, '')" for d in dims]
    columns = ["bucket_ms", *dims, *SUMS]
    selects = [*keys, *_SUM_SQL]
    if histograms:
        columns += _histogram_names()
        selects += _histogram("latency_ms", "lat") + _histogram("ttft_ms", "ttft")
    into, picked, grouped = ", ".join(columns), ", ".join(selects), ", ".join(keys)
    # only this module's constants above, no input:
    return f"INSERT INTO {name} ({into}) SELECT {picked} FROM usage GROUP BY {grouped}"  # noqa: S608


def upgrade() -> None:
    for name, (_size, dims, histograms) in tables().items():
        _create(name, dims, histograms)
        op.execute(backfill_sql(name))


def downgrade() -> None:
    for name, (_size, dims, _histograms) in tables().items():
        for column in dims:
            op.drop_index(f"ix_{name}_{column}_bucket_ms", table_name=name)
        op.drop_table(name)
