"""The process's own memory and CPU in /metrics: what the memory alert reads
(deploy/prometheus/alerts.yml), present for one process and left out with workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.observability.metrics import Metrics


def _value(exposition: str, name: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the exposition")


def test_one_process_reports_its_resident_memory_and_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    text = Metrics().render().decode()
    assert _value(text, "process_resident_memory_bytes") > 1024 * 1024  # an interpreter's worth
    assert _value(text, "process_cpu_seconds_total") > 0


def test_workers_leave_process_figures_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With several workers the answering one's memory would pass for the server's."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert "process_resident_memory_bytes" not in Metrics().render().decode()
