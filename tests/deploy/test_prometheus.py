"""deploy/prometheus: promtool accepts the scrape configuration and the alert rules, the
rules' unit tests (alerts_test.yml) pass, and every metric and label the rules read is one
Parley exports."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy import promql
from tests.deploy.tools import require

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    return require("promtool", "install-promtool.sh")


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False, timeout=60
    )


def test_promtool_accepts_the_rules_and_the_scrape_configuration(promtool: str) -> None:
    rules = _promtool(promtool, "check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = _promtool(promtool, "check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout


def test_the_rules_unit_tests_pass(promtool: str) -> None:
    result = _promtool(promtool, "test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    """A rule whose threshold moved makes alerts_test.yml fail: the tests pin behaviour."""
    (tmp_path / "alerts.yml").write_text(
        (PROMETHEUS / "alerts.yml").read_text().replace("> 50", "> 500")  # queue depth
    )
    (tmp_path / "alerts_test.yml").write_text((PROMETHEUS / "alerts_test.yml").read_text())
    result = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert "ParleyQueueBackedUp" in result.stdout + result.stderr


def _rules() -> list[dict[str, str]]:
    loaded = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def test_the_alerts_the_operations_docs_promise_exist() -> None:
    names = {rule["alert"] for rule in _rules()}
    for alert in (
        "ParleyInstanceDown",
        "ParleyHighErrorRate",
        "ParleyHighLatency",
        "ParleyBreakerOpen",
        "ParleyQueueBackedUp",
        "ParleyQueueWaitHigh",
        "ParleyMemoryHigh",
        "ParleyBudgetExhausted",
        "ParleyRateLimitRefusalsHigh",
        "ParleyUsageBacklogGrowing",
    ):
        assert alert in names


def test_every_metric_the_rules_read_is_exported() -> None:
    known = promql.exported()
    problems = {
        rule["alert"]: found for rule in _rules() if (found := promql.unknown(rule["expr"], known))
    }
    assert problems == {}
    read = {use.metric for rule in _rules() for use in promql.uses(rule["expr"])}
    assert {"up", "process_resident_memory_bytes", "parley_queue_depth"} <= read


def test_the_name_check_has_teeth() -> None:
    known = promql.exported()
    assert promql.unknown('rate(parley_http_requests{status="500"}[5m])', known) == [
        "no metric 'parley_http_requests'"  # the counter is exported with its _total suffix
    ]
    assert promql.unknown('sum by (job) (parley_queue_depth{group="a"})', known) == [
        "parley_queue_depth has no label ['group']"
    ]
    assert (
        promql.unknown('sum by (le) (rate(parley_queue_wait_seconds_bucket{le="1"}[1m]))', known)
        == []
    )


def test_the_kubernetes_scrape_job_labels_series_by_pod(promtool: str, tmp_path: Path) -> None:
    """prometheus-kubernetes.yml: Debian's promtool has no Kubernetes discovery, so a copy
    with static targets in its place is checked; the relabelling is the shipped one."""
    config = yaml.safe_load((PROMETHEUS / "prometheus-kubernetes.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "parley"  # what the alert rules select on
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
    job["static_configs"] = [{"targets": ["127.0.0.1:9464"]}]
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"namespace", "pod"} <= targets  # what prometheus-adapter maps to resources
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    (tmp_path / "alerts.yml").write_text((PROMETHEUS / "alerts.yml").read_text())
    result = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_deployment_docs_list_every_alert() -> None:
    docs = (PROMETHEUS.parents[1] / "docs" / "deployment.md").read_text()
    missing = [rule["alert"] for rule in _rules() if f"`{rule['alert']}`" not in docs]
    assert missing == []
