"""The start-up heap is frozen out of collections, the young threshold is raised, and the
collector paused for the start-up is on again once the heap is settled."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.runtime import pause_collector, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_settle_heap_freezes_what_exists_and_raises_the_young_threshold() -> None:
    survivor = [object() for _ in range(10)]  # a container the collector tracks
    assert gc.get_freeze_count() == 0
    settle_heap(12_345)
    assert gc.get_threshold()[0] == 12_345
    assert gc.get_freeze_count() > 0
    # A frozen object is outside every generation a collection walks.
    assert not any(obj is survivor for obj in gc.get_objects())
    assert survivor


@pytest.mark.usefixtures("restored_gc")
def test_zero_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    settle_heap(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("restored_gc")
@pytest.mark.parametrize("threshold", [12_345, 0])
def test_settling_turns_the_paused_collector_back_on(threshold: int) -> None:
    pause_collector()
    try:
        assert not gc.isenabled()
        settle_heap(threshold)
        assert gc.isenabled()
    finally:
        gc.enable()


def test_the_workers_supervisor_runs_with_the_collector_on(tmp_path: Path) -> None:
    """``parley serve --workers 2`` pauses the collector for its imports, then hands over
    to uvicorn's supervisor, which builds no app (so no lifespan turns it back on)."""
    code = (
        "import gc, uvicorn\n"
        "uvicorn.run = lambda *a, **k: print('collector on' if gc.isenabled() else 'off')\n"
        "from parley.cli import app\n"
        "app(['serve', '--workers', '2'], standalone_mode=False)\n"
    )
    env = {**os.environ, "PARLEY_DATABASE_URL": f"sqlite:///{tmp_path}/parley.db"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[-2:] == ["collector on", ""]


def test_serve_listens_with_a_backlog_as_deep_as_its_connection_limit(tmp_path: Path) -> None:
    """uvicorn's default backlog (2,048) is below Parley's connection limit: past it, the
    kernel drops handshakes and those clients wait out TCP retransmissions."""
    code = (
        "import uvicorn\n"
        "uvicorn.run = lambda *a, **k: print('backlog', k['backlog'])\n"
        "from parley.cli import app\n"
        "app(['serve'], standalone_mode=False)\n"
    )
    env = {
        **os.environ,
        "PARLEY_DATABASE_URL": f"sqlite:///{tmp_path}/parley.db",
        "PARLEY_MAX_CONNECTIONS": "3000",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines()[-1] == "backlog 3000"
