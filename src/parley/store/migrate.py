"""Alembic, driven from code: ``parley db upgrade`` and the embedded tier's self-migration.

On PostgreSQL the upgrade holds a transaction-scoped advisory lock, so instances that start
together migrate one at a time instead of racing to create the same tables.

Alembic (~10 MB of imports) is only loaded when the schema is behind: a start-up against
an up-to-date database reads ``alembic_version`` with one query and compares it with
``HEAD``, which a test keeps equal to the newest migration.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from parley.store.db import Database, map_store_errors

if TYPE_CHECKING:
    from alembic.config import Config

HEAD = "0022"
"""The newest migration's revision id; update it with every new migration."""

_SCRIPTS = Path(__file__).with_name("migrations")
_LOCK_ID = 0x7061726C6579  # "parley"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config  # noqa: PLC0415 - see the module docstring

    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    head: str | None = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return head


async def upgrade(db: Database, revision: str = "head") -> None:
    if revision == "head" and await current_revision(db) == HEAD:
        return
    with map_store_errors():
        async with db.engine.begin() as conn:
            if db.dialect == "postgresql":
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_ID})"))
            await conn.run_sync(_upgrade, revision)


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command  # noqa: PLC0415

    command.upgrade(alembic_config(connection), revision)


async def current_revision(db: Database) -> str | None:
    """The database's revision; None for an empty database."""
    try:
        async with db.engine.connect() as conn:
            rows: Any = await conn.execute(text("SELECT version_num FROM alembic_version"))
            found = [str(r[0]) for r in rows]
    except SQLAlchemyError:
        return None  # no alembic_version table yet
    return found[0] if found else None
