"""deploy/compose.yaml: valid against the Compose specification's JSON schema (the copy
check-jsonschema ships, with its licence), and its parts agree with one another: three
Parley instances with one configuration behind nginx, Prometheus scraping each of them,
Parley trusting nginx's address, the files it mounts present, a stop grace longer than
the drain."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from parley.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # anchors and merge keys
    return loaded


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    return subprocess.run(
        [*command, str(path)], capture_output=True, text=True, check=False, timeout=60
    )


def test_valid_against_the_compose_specification() -> None:
    result = _validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_refuses_a_broken_file(tmp_path: Path) -> None:
    """The check has teeth: a misspelt key in a copy of the file is an error."""
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("stop_grace_period:", "stop_grace_periods:"))
    result = _validate(broken)
    assert result.returncode == 1
    assert "stop_grace_periods" in result.stdout


def _parley_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if re.fullmatch(r"parley-\d+", name)
    }


def test_three_identical_instances_on_the_shared_backends(compose: dict[str, Any]) -> None:
    instances = _parley_services(compose)
    assert sorted(instances) == ["parley-1", "parley-2", "parley-3"]
    environments = [service["environment"] for service in instances.values()]
    assert all(env == environments[0] for env in environments)
    env = environments[0]
    assert env["PARLEY_DATABASE_URL"].startswith("postgresql://")
    assert env["PARLEY_DATABASE_URL"].split("@")[1].startswith("postgres:")
    assert env["PARLEY_REDIS_URL"].startswith("redis://redis:")
    assert env["PARLEY_NATS_URL"] == "nats://nats:4222"
    assert env["PARLEY_AUTO_MIGRATE"] == "false"  # the migrate service ran first
    for service in instances.values():
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert compose["services"]["migrate"]["entrypoint"] == ["parley", "db", "upgrade"]
    assert "--jetstream" in compose["services"]["nats"]["command"]


def test_nginx_and_prometheus_reach_every_instance(compose: dict[str, Any]) -> None:
    instances = sorted(_parley_services(compose))
    waits = compose["services"]["nginx"]["depends_on"]
    assert {name: w["condition"] for name, w in waits.items()} == dict.fromkeys(
        instances, "service_healthy"
    )
    nginx_conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert re.findall(r"server (parley-\d+):4000", nginx_conf) == instances
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    address = _parley_services(compose)["parley-1"]["environment"]["PARLEY_METRICS_ADDRESS"]
    port = address.rpartition(":")[2]
    assert job["static_configs"][0]["targets"] == [f"{name}:{port}" for name in instances]


def test_every_parley_setting_is_one_parley_reads(compose: dict[str, Any]) -> None:
    """A misspelt PARLEY_* variable is silently ignored by Parley; here it fails."""
    env = _parley_services(compose)["parley-1"]["environment"]
    names = [key.removeprefix("PARLEY_").lower() for key in env if key.startswith("PARLEY_")]
    assert len(names) >= 8
    assert set(names) <= set(Settings.model_fields)


def test_parley_trusts_exactly_nginx(compose: dict[str, Any]) -> None:
    nginx_address = compose["services"]["nginx"]["networks"]["parley"]["ipv4_address"]
    env = _parley_services(compose)["parley-1"]["environment"]
    assert env["PARLEY_TRUSTED_PROXIES"] == nginx_address


def test_stop_grace_outlasts_the_drain(compose: dict[str, Any]) -> None:
    service = _parley_services(compose)["parley-1"]
    grace = int(service["stop_grace_period"].removesuffix("s"))
    assert grace > float(service["environment"]["PARLEY_DRAIN_TIMEOUT_SECONDS"])


def test_every_mounted_file_exists(compose: dict[str, Any]) -> None:
    mounts = [
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert len(mounts) >= 5
    for source in mounts:
        assert (DEPLOY / source).exists(), source
    assert (ROOT / compose["x-parley"]["build"]["dockerfile"]).is_file()
