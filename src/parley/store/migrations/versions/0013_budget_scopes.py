"""budgets: a user's tier, a key's per-request cost ceiling, group spend lookups,
budget alert deliveries

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 02:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tier", sa.String(length=64), nullable=True))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_cost_nusd", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_usage_model_group_time_ms", "usage", ["model_group", "time_ms"], unique=False
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.String(length=300), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("period", sa.String(length=64), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("spent_nusd", sa.BigInteger(), nullable=False),
        sa.Column("budget_nusd", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger(), nullable=False),
        sa.Column("lease_until_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("delivered_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_deliveries")),
    )
    op.create_index(
        "ix_alert_deliveries_status_next_attempt_ms",
        "alert_deliveries",
        ["status", "next_attempt_ms"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_alert_deliveries_status_next_attempt_ms", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index("ix_usage_model_group_time_ms", table_name="usage")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("max_cost_nusd")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("tier")
