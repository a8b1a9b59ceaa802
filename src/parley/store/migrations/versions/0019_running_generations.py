"""chat: running generations, so an answer whose instance died is saved as lost

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "running_generations",
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("user_message_id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_running_generations")),
    )
    with op.batch_alter_table("running_generations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_running_generations_heartbeat_ms"), ["heartbeat_ms"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("running_generations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_running_generations_heartbeat_ms"))
    op.drop_table("running_generations")
