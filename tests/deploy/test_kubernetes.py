"""deploy/k8s: every overlay renders with `kubectl kustomize` (no cluster needed), every
rendered object is valid against the Kubernetes API's JSON schemas (the copies the
kubernetes-validate wheel ships, strict: unknown fields are errors) for the oldest and the
newest release it knows, and the parts agree: probes on Parley's health routes, a grace
period that outlasts the preStop pause plus Parley's drain, the HPA's metrics served by
the shipped adapter rules from series Parley exports, the NetworkPolicy on the ports the
container names, and a model file Parley accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from parley.config import Settings, load_models
from tests.deploy import promql
from tests.deploy.tools import require

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("single", "scaled")
VERSIONS = (kubernetes_validate.utils.all_versions()[0], kubernetes_validate.latest_version())

Objects = dict[str, dict[str, Any]]  # "Kind/name" -> object


@pytest.fixture(scope="module")
def kubectl() -> str:
    return require("kubectl", "install-kubectl.sh")


def _render(kubectl: str, directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(kubectl: str) -> dict[str, Objects]:
    out = {}
    for name in (*OVERLAYS, "prometheus-adapter"):
        directory = K8S / "overlays" / name if name in OVERLAYS else K8S / name
        out[name] = {f"{o['kind']}/{o['metadata']['name']}": o for o in _render(kubectl, directory)}
    return out


def _by_kind(objects: Objects, kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects.values() if o["kind"] == kind]
    return found


def _container(objects: Objects) -> dict[str, Any]:
    (container,) = objects["Deployment/parley"]["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_object_is_valid_against_the_kubernetes_schemas(
    rendered: dict[str, Objects], version: str
) -> None:
    for overlay, objects in rendered.items():
        for key, obj in objects.items():
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{overlay}: {key}: {exc.message} at {exc.path}")


def test_the_validator_refuses_a_misspelt_field(rendered: dict[str, Objects]) -> None:
    deployment = rendered["scaled"]["Deployment/parley"]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_what_each_overlay_holds(rendered: dict[str, Objects]) -> None:
    kinds = {
        overlay: sorted(key.split("/")[0] for key in objects)
        for overlay, objects in rendered.items()
    }
    shared = ["ConfigMap", "ConfigMap", "Deployment", "NetworkPolicy", "Service", "ServiceAccount"]
    assert kinds["single"] == sorted([*shared, "PersistentVolumeClaim"])
    assert kinds["scaled"] == sorted([*shared, "HorizontalPodAutoscaler", "PodDisruptionBudget"])
    assert kinds["prometheus-adapter"] == ["ConfigMap"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_on_parleys_health_routes(rendered: dict[str, Objects], overlay: str) -> None:
    container = _container(rendered[overlay])
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": Settings().port,
        "metrics": 9464,
    }
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}


def _settings_map(objects: Objects) -> dict[str, str]:
    (settings,) = [
        o["data"] for key, o in objects.items() if key.startswith("ConfigMap/parley-settings")
    ]
    return dict(settings)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_grace_period_outlasts_the_pause_and_the_drain(
    rendered: dict[str, Objects], overlay: str
) -> None:
    pod = rendered[overlay]["Deployment/parley"]["spec"]["template"]["spec"]
    pause = _container(rendered[overlay])["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    drain = float(_settings_map(rendered[overlay])["PARLEY_DRAIN_TIMEOUT_SECONDS"])
    # the setting the manifests set is the one `parley serve` reads for uvicorn's drain
    assert Settings(drain_timeout_seconds=drain).drain_timeout_seconds == drain
    assert pod["terminationGracePeriodSeconds"] > int(pause[1]) + drain


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_and_secrets_are_wired(
    rendered: dict[str, Objects], overlay: str, tmp_path: Path
) -> None:
    objects = rendered[overlay]
    container = _container(objects)
    sources = {next(iter(s)): next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert f"ConfigMap/{sources['configMapRef']}" in objects  # the generated, hashed name
    assert sources["secretRef"] == "parley-secrets"  # made by the operator, not shipped
    settings = _settings_map(objects)
    for key in settings:
        assert key.removeprefix("PARLEY_").lower() in Settings.model_fields, key
    Settings(**{k.removeprefix("PARLEY_").lower(): v for k, v in settings.items()})
    # The mounted model file is one Parley loads, given the Secret's key.
    volumes = {
        v["name"]: v for v in objects["Deployment/parley"]["spec"]["template"]["spec"]["volumes"]
    }
    (models_map,) = [
        o
        for key, o in objects.items()
        if key == f"ConfigMap/{volumes['models']['configMap']['name']}"
    ]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "models")["mountPath"]
    assert settings["PARLEY_CONFIG"] == f"{mount}/models.yaml"
    (tmp_path / "models.yaml").write_text(models_map["data"]["models.yaml"])
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_API_KEY", "sk-test-not-real")
        loaded = load_models(tmp_path / "models.yaml")
    assert loaded.groups


def test_the_single_overlay_is_one_pod_on_sqlite(rendered: dict[str, Objects]) -> None:
    deployment = rendered["single"]["Deployment/parley"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = _container(rendered["single"])
    url = next(e["value"] for e in container["env"] if e["name"] == "PARLEY_DATABASE_URL")
    data = next(m for m in container["volumeMounts"] if m["name"] == "data")["mountPath"]
    assert url.startswith("sqlite")
    assert url.endswith(f"{data}/parley.db")
    assert Settings(database_url=url).is_sqlite


def test_the_scaled_overlay_spreads_and_budgets_its_pods(rendered: dict[str, Objects]) -> None:
    objects = rendered["scaled"]
    pod_labels = objects["Deployment/parley"]["spec"]["template"]["metadata"]["labels"]
    pdb = _by_kind(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    spread = objects["Deployment/parley"]["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    for constraint in spread:
        assert constraint["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    service = objects["Service/parley"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    names = {p["name"] for p in _container(objects)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= names


def _adapter_rules(rendered: dict[str, Objects]) -> list[dict[str, Any]]:
    config = rendered["prometheus-adapter"]["ConfigMap/prometheus-adapter-parley"]
    rules: list[dict[str, Any]] = yaml.safe_load(config["data"]["config.yaml"])["rules"]
    return rules


def test_the_hpa_scales_on_cpu_and_on_parleys_own_metrics(rendered: dict[str, Objects]) -> None:
    hpa = _by_kind(rendered["scaled"], "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "parley",
    }
    resources = [m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
    assert resources == ["cpu"]
    pods = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    served = {rule["name"]["as"] for rule in _adapter_rules(rendered)}
    assert pods == {"parley_in_flight_requests", "parley_queue_wait_seconds"}
    assert pods <= served  # every metric the HPA asks for, the adapter serves


def test_the_adapter_reads_only_series_parley_exports(rendered: dict[str, Objects]) -> None:
    known = promql.exported()
    for rule in _adapter_rules(rendered):
        assert promql.unknown(rule["seriesQuery"], known) == []
        # <<.Series>> stands for the series the seriesQuery found
        series = promql.uses(rule["seriesQuery"])[0].metric
        query = rule["metricsQuery"].replace("<<.Series>>", series)
        assert promql.unknown(query, known) == [], query
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}


def test_the_network_policy_opens_the_named_ports(rendered: dict[str, Objects]) -> None:
    objects = rendered["scaled"]
    policy = _by_kind(objects, "NetworkPolicy")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        objects["Deployment/parley"]["spec"]["template"]["metadata"]["labels"].items()
    )
    opened = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert opened == {p["name"] for p in _container(objects)["ports"]}
    egress = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
    assert {53, 443, 5432, 6379, 4222} <= egress  # DNS, providers, PostgreSQL, Redis, NATS


def test_pods_run_unprivileged(rendered: dict[str, Objects]) -> None:
    pod = rendered["scaled"]["Deployment/parley"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert f"USER {pod['securityContext']['runAsUser']}:" in dockerfile
    container = _container(rendered["scaled"])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
