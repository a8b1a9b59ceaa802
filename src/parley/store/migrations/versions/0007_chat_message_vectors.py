"""chat: message vectors for semantic search, and their queue

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 05:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_vectors",
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_message_vectors")),
    )
    with op.batch_alter_table("message_vectors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_message_vectors_owner_id"), ["owner_id"])
        batch_op.create_index(batch_op.f("ix_message_vectors_conversation_id"), ["conversation_id"])
    op.create_table(
        "vector_pending",
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_vector_pending")),
    )
    with op.batch_alter_table("vector_pending", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vector_pending_created_ms"), ["created_ms"])
        batch_op.create_index(batch_op.f("ix_vector_pending_conversation_id"), ["conversation_id"])


def downgrade() -> None:
    op.drop_table("vector_pending")
    op.drop_table("message_vectors")
