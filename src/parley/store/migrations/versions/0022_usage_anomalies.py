"""identity: usage anomaly detection (anomalies, key suspension, client addresses in usage,
webhook payloads, job leases)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_ip", sa.String(length=64), nullable=True))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suspended_ms", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("alert_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payload", sa.Text(), nullable=True))
    op.create_table(
        "usage_anomalies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=32), nullable=False),
        sa.Column("window_start_ms", sa.BigInteger(), nullable=False),
        sa.Column("window_end_ms", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("suspended", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("reviewed_by", sa.String(length=64), nullable=True),
        sa.Column("reviewed_ms", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_anomalies")),
    )
    with op.batch_alter_table("usage_anomalies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_usage_anomalies_scope_subject_status"),
            ["scope", "subject", "status"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_usage_anomalies_created_ms"), ["created_ms"], unique=False
        )
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("until_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_leases")),
    )


def downgrade() -> None:
    op.drop_table("job_leases")
    with op.batch_alter_table("usage_anomalies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_anomalies_created_ms"))
        batch_op.drop_index(batch_op.f("ix_usage_anomalies_scope_subject_status"))
    op.drop_table("usage_anomalies")
    with op.batch_alter_table("alert_deliveries", schema=None) as batch_op:
        batch_op.drop_column("payload")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("suspended_ms")
    with op.batch_alter_table("usage", schema=None) as batch_op:
        batch_op.drop_column("client_ip")
