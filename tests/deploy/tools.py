"""The command-line tools the deploy tests run, found or reported missing the way the
browser tests treat Chromium: skipped on a workstation without them, a failure under
``CI=true`` (where the README's test command installed them with scripts/install-*.sh)."""

from __future__ import annotations

import os
import shutil

import pytest


def require(tool: str, script: str) -> str:
    found = shutil.which(tool)
    if found:
        return found
    message = f"{tool} is not installed: sh scripts/{script} installs it"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
