"""usage rollups per hour and per day, filled from the raw usage rows already stored

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-02 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None

# Frozen copy of parley.store.histogram.BOUNDS_MS as of this revision.
BOUNDS_MS = (
    5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000,
    5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000,
)  # fmt: skip
BUCKETS = len(BOUNDS_MS) + 1
GRAINS = {"usage_hourly": 3_600_000, "usage_daily": 86_400_000}
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


def _create(name: str) -> None:
    op.create_table(
        name,
        sa.Column("bucket_ms", sa.BigInteger(), nullable=False),
        sa.Column("model_group", sa.String(length=200), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in SUMS),
        *(sa.Column(f"lat_{i}", sa.Integer(), nullable=False) for i in range(BUCKETS)),
        *(sa.Column(f"ttft_{i}", sa.Integer(), nullable=False) for i in range(BUCKETS)),
        sa.PrimaryKeyConstraint(
            "bucket_ms", "model_group", "team_id", "user_id", "key_id", name=op.f(f"pk_{name}")
        ),
    )
    for column in ("team_id", "key_id", "user_id", "model_group"):
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
        parts.append(f"SUM(CASE WHEN {' AND '.join(tests)} THEN 1 ELSE 0 END) AS {prefix}_{i}")
    return parts


def _backfill(name: str, size: int) -> None:
    columns = [
        "bucket_ms",
        "model_group",
        "team_id",
        "user_id",
        "key_id",
        *SUMS,
        *(f"lat_{i}" for i in range(BUCKETS)),
        *(f"ttft_{i}" for i in range(BUCKETS)),
    ]
    selects = [
        f"(time_ms / {size}) * {size}",
        "model_group",
        "COALESCE(team_id, '')",
        "COALESCE(user_id, '')",
        "COALESCE(key_id, '')",
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
        *_histogram("latency_ms", "lat"),
        *_histogram("ttft_ms", "ttft"),
    ]
    into, picked, keys = ", ".join(columns), ", ".join(selects), ", ".join(selects[:5])
    sql = f"INSERT INTO {name} ({into}) SELECT {picked} FROM usage GROUP BY {keys}"  # noqa: S608
    op.execute(sql)  # only this module's constants above, no input


def upgrade() -> None:
    for name, size in GRAINS.items():
        _create(name)
        _backfill(name, size)


def downgrade() -> None:
    for name in GRAINS:
        for column in ("team_id", "key_id", "user_id", "model_group"):
            op.drop_index(f"ix_{name}_{column}_bucket_ms", table_name=name)
        op.drop_table(name)
