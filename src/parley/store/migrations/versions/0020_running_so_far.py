"""chat: a running answer's text as of its last heartbeat, where the bus keeps none

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("running_generations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("so_far", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("running_generations", schema=None) as batch_op:
        batch_op.drop_column("so_far")
