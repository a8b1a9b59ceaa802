"""Which modules building ``parley serve``'s app imports: what start-up pays for. Read in
a fresh interpreter, since this one has imported whatever the caller has."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


def imported_by_the_app(
    modules: Sequence[str], env: Mapping[str, str], config: Path | None = None
) -> list[str]:
    """Those of ``modules`` in ``sys.modules`` once the app is built (``Settings`` read from
    ``env``, with ``config`` as its model file when given)."""
    settings = f"Settings(config={str(config)!r})" if config else "Settings()"
    code = (
        "import sys\n"
        "from parley.config import Settings\n"
        "from parley.app import create_app\n"
        f"create_app({settings})\n"
        f"print(' '.join(m for m in {tuple(modules)!r} if m in sys.modules))\n"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, running code built here
        [sys.executable, "-c", code], env=dict(env), capture_output=True, text=True, check=True
    )
    return done.stdout.split()
