"""What ``parley serve`` leaves unimported until first use: building the app (SQLite, no
passkey, no budget webhook yet) must not load py_webauthn, aiohttp or SQLAlchemy's
PostgreSQL dialect package, each a tenth of a second or more of start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEFERRED = ("webauthn", "aiohttp", "sqlalchemy.dialects.postgresql")


def test_building_the_app_imports_none_of_the_deferred_stacks(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from parley.config import Settings\n"
        "from parley.app import create_app\n"
        "create_app(Settings())\n"
        f"print(' '.join(m for m in {DEFERRED!r} if m in sys.modules))\n"
    )
    env = {
        **os.environ,
        "PARLEY_DATABASE_URL": f"sqlite:///{tmp_path}/parley.db",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == []
