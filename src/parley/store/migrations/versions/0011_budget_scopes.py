"""budgets: a user's tier, a key's per-request cost ceiling, group spend lookups

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 02:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
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


def downgrade() -> None:
    op.drop_index("ix_usage_model_group_time_ms", table_name="usage")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("max_cost_nusd")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("tier")
