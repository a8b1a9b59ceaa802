"""Every app module parses as an ES module: one that does not (a name declared twice, say,
after a merge) breaks each page that imports it, and only a browser would notice."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.oidc import require_node

APP = Path(__file__).parents[3] / "src" / "parley" / "web" / "app"
MODULES = sorted(APP.rglob("*.js"))


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(APP)))
def test_the_module_parses(module: Path) -> None:
    checked = subprocess.run(
        [require_node(), "--input-type=module", "--check"],
        input=module.read_bytes(),
        capture_output=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr.decode()
