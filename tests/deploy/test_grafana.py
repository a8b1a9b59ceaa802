"""deploy/grafana: the dashboards are Grafana JSON on the provisioned data source, show
what the docs promise (requests, errors, latency p50/p99, time to first token, tokens,
spend, cache hit rate, breakers, in-flight calls), every query is PromQL that promtool
parses once the dashboard variables are filled in, and reads only metrics and labels
Parley exports. The same parse check covers the autoscaler's adapter queries."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import promql
from tests.deploy.tools import require

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
_LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$")
# What Grafana puts in place of its variables before a query leaves for Prometheus.
_FILLED = {
    "$__rate_interval": "1m",
    "$__range": "3h",
    "$job": "parley",
    "$model_group": ".*",
    "$deployment": ".*",
}


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _queries(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _fill(expression: str) -> str:
    for variable, value in _FILLED.items():
        expression = expression.replace(variable, value)
    assert "$" not in expression, expression
    return expression


def test_three_dashboards_with_unique_ids_on_the_provisioned_data_source() -> None:
    assert [p.name for p in DASHBOARDS] == [
        "deployments.json",
        "model-groups.json",
        "overview.json",
    ]
    source = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (uid,) = [s["uid"] for s in source["datasources"]]
    uids = set()
    for path in DASHBOARDS:
        dashboard = _load(path)
        uids.add(dashboard["uid"])
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == uid
            assert all(t["datasource"]["uid"] == uid for t in panel["targets"])
    assert len(uids) == len(DASHBOARDS)


def test_grafana_loads_them_from_where_compose_mounts_them() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "parley.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    assert f"./grafana/dashboards:{path}:ro" in compose["services"]["grafana"]["volumes"]


def test_the_overview_shows_what_an_operator_watches() -> None:
    overview = _load(GRAFANA / "dashboards" / "overview.json")
    titles = " | ".join(panel["title"].lower() for panel in overview["panels"])
    for subject in (
        "requests",
        "error",
        "latency",
        "first token",
        "tokens",
        "spend",
        "cache hit rate",
        "breaker",
        "in flight",
        "queue",
        "memory",
    ):
        assert subject in titles, subject
    queries = " ".join(_queries(overview))
    assert "histogram_quantile(0.5," in queries
    assert "histogram_quantile(0.99," in queries


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_reads_what_parley_exports(path: Path) -> None:
    known = promql.exported()
    dashboard = _load(path)
    problems = {q: found for q in _queries(dashboard) if (found := promql.unknown(q, known))}
    assert problems == {}
    for variable in dashboard["templating"]["list"]:
        match = _LABEL_VALUES.match(variable["query"]["query"])
        assert match, variable["query"]
        selector, label = match.groups()
        assert promql.unknown(selector, known) == []
        (use,) = promql.uses(selector)
        assert label in known[use.metric] | promql.TARGET_LABELS


def _adapter_queries() -> list[str]:
    adapter = yaml.safe_load(
        (ROOT / "deploy" / "k8s" / "prometheus-adapter" / "rules.yaml").read_text()
    )
    queries = []
    for rule in adapter["rules"]:
        series = promql.uses(rule["seriesQuery"])[0].metric
        queries.append(
            rule["metricsQuery"]
            .replace("<<.Series>>", series)
            .replace("<<.LabelMatchers>>", 'namespace="default", pod=~"parley-.*"')
            .replace("<<.GroupBy>>", "pod")
        )
    return queries


def test_promtool_parses_every_dashboard_and_adapter_query(tmp_path: Path) -> None:
    """Each query becomes a recording rule, and `promtool check rules` parses them all."""
    promtool = require("promtool", "install-promtool.sh")
    queries = [_fill(q) for path in DASHBOARDS for q in _queries(_load(path))]
    queries += _adapter_queries()
    rules = [{"record": f"parley:query_{i}", "expr": q} for i, q in enumerate(queries)]
    (tmp_path / "queries.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "q", "rules": rules}]})
    )
    result = subprocess.run(
        [promtool, "check", "rules", "queries.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout
