"""Alembic, driven from code: ``parley db upgrade`` and the embedded tier's self-migration.

On PostgreSQL the upgrade holds a transaction-scoped advisory lock, so instances that start
together migrate one at a time instead of racing to create the same tables.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from parley.store.db import Database, map_store_errors

_SCRIPTS = Path(__file__).with_name("migrations")
_LOCK_ID = 0x7061726C6579  # "parley"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(db: Database, revision: str = "head") -> None:
    with map_store_errors():
        async with db.engine.begin() as conn:
            if db.dialect == "postgresql":
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_ID})"))
            await conn.run_sync(_upgrade, revision)


def _upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


async def current_revision(db: Database) -> str | None:
    with map_store_errors():
        async with db.engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
