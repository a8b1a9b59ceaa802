"""chat: full-text search (SQLite FTS5, PostgreSQL tsvector with GIN)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 03:55:00

The search table is engine-specific, so it is created here in SQL rather than declared in
``store/tables.py`` (the schema test skips it by name: ``store/search.py`` owns it).
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # owner_id is an indexed column so a search matches "this owner AND the terms"
        # inside the full-text index instead of filtering every owner's matches.
        op.execute(
            "CREATE VIRTUAL TABLE message_search USING fts5("
            "body, owner_id, conversation_id UNINDEXED, message_id UNINDEXED, "
            "kind UNINDEXED, tokenize='unicode61 remove_diacritics 2')"
        )
        return
    op.execute(
        "CREATE TABLE message_search ("
        "id text PRIMARY KEY, owner_id text NOT NULL, conversation_id text NOT NULL, "
        "message_id text, kind text NOT NULL, body text NOT NULL, "
        "tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED)"
    )
    op.execute("CREATE INDEX ix_message_search_tsv ON message_search USING gin (tsv)")
    op.execute("CREATE INDEX ix_message_search_owner ON message_search (owner_id)")
    op.execute("CREATE INDEX ix_message_search_conversation ON message_search (conversation_id)")


def downgrade() -> None:
    op.execute("DROP TABLE message_search")
