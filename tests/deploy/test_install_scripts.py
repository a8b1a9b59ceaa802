"""The README's test command is what CI runs, and the install scripts it starts with cost
nothing once their tool is there: they exit 0 and print nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None
    return block.group(1).strip().splitlines()


def test_ci_runs_the_readme_test_command_with_every_install_script() -> None:
    commands = _readme_commands()
    assert len(commands) == 2  # run it, test it
    ci_last = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci_last == commands[1]
    for script in ("install-pgvector.sh", "install-chromium.sh", "install-promtool.sh"):
        assert f"sh scripts/{script} && " in commands[1]
    assert "sh scripts/install-kubectl.sh && sh scripts/install-oidc-provider.sh && " in commands[1]


@pytest.mark.parametrize(
    ("script", "tool"), [("install-promtool.sh", "promtool"), ("install-kubectl.sh", "kubectl")]
)
def test_an_install_script_is_a_quiet_no_op_once_installed(script: str, tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed here")
    result = subprocess.run(
        ["sh", str(ROOT / "scripts" / script)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_oidc_provider_install_is_a_quiet_no_op_once_installed() -> None:
    """tests/oidc's pinned oidc-provider: installed once, then the script does nothing."""
    installed = ROOT / "tests" / "oidc" / "node_modules" / "oidc-provider" / "package.json"
    if not installed.exists():
        pytest.skip("oidc-provider is not installed here (scripts/install-oidc-provider.sh)")
    result = subprocess.run(
        ["sh", str(ROOT / "scripts" / "install-oidc-provider.sh")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
