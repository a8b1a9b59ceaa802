"""What ``parley serve`` leaves unimported until first use: building the app (SQLite, no
passkey, no budget webhook yet) must not load py_webauthn, aiohttp or SQLAlchemy's
PostgreSQL dialect package, each a tenth of a second or more of start-up."""

from __future__ import annotations

import os
from pathlib import Path

from parley.testing.imports import imported_by_the_app

DEFERRED = ("webauthn", "aiohttp", "sqlalchemy.dialects.postgresql")


def test_building_the_app_imports_none_of_the_deferred_stacks(tmp_path: Path) -> None:
    env = {**os.environ, "PARLEY_DATABASE_URL": f"sqlite:///{tmp_path}/parley.db"}
    assert imported_by_the_app(DEFERRED, env) == []
