"""``Gateway.swap``: new groups everywhere at once; what is known of a deployment that stays
is kept, and a request that holds a deployment the new groups lack still gets an adapter."""

from __future__ import annotations

from typing import Any

from parley.gateway.pipeline import Gateway
from parley.gateway.registry import ModelRegistry
from parley.observability.metrics import Metrics
from parley.providers.base import Provider
from parley.testing.servers import models_from


def _groups(*specs: tuple[str, str, int | None]) -> list[Any]:
    """(group, deployment name, group max_concurrency)."""
    return models_from(
        [
            {
                "name": name,
                "max_concurrency": cap,
                "deployments": [
                    {
                        "provider": "openai_compatible",
                        "api_base": "http://127.0.0.1:9/v1",
                        "model": "m",
                        "name": dep,
                    }
                ],
            }
            for name, dep, cap in specs
        ]
    ).groups


class _Fake:
    def __init__(self, deployment: Any) -> None:
        self.deployment = deployment


def _gateway(groups: list[Any]) -> tuple[Gateway, list[Any]]:
    built: list[Any] = []

    def factory(dep: Any) -> Provider:
        built.append(dep)
        provider: Provider = _Fake(dep)  # type: ignore[assignment]  # only .deployment is read
        return provider

    return Gateway(ModelRegistry(groups, factory), Metrics(), drop_params=False), built


def test_a_swap_keeps_what_stays_and_drops_what_went() -> None:
    old = _groups(("a", "a1", 2), ("b", "b1", None))
    gateway, built = _gateway(old)
    kept_health = gateway.health.by_label("a1")
    assert kept_health is not None
    kept_health.started()  # a call in flight
    kept_gate = gateway.resilience.gates["a"]
    old_provider = gateway.registry.provider(old[0].deployments[0])
    new = _groups(("a", "a1", 2), ("c", "c1", None))
    gateway.swap(new)
    assert [g.name for g in gateway.registry.groups] == ["a", "c"]
    assert gateway.health.by_label("a1") is kept_health
    assert kept_health.in_flight == 1
    assert kept_health.deployment is new[0].deployments[0]
    assert gateway.health.by_label("b1") is None
    assert gateway.resilience.gates["a"] is kept_gate
    assert set(gateway.resilience.gates) == {"a", "c"}
    # an unchanged deployment keeps its adapter; a request holding a removed one gets its own
    assert gateway.registry.provider(new[0].deployments[0]) is old_provider
    removed = old[1].deployments[0]
    assert gateway.registry.provider(removed).deployment is removed
    assert built.count(removed) == 2


def test_a_changed_concurrency_gets_a_new_gate() -> None:
    gateway, _ = _gateway(_groups(("a", "a1", 2)))
    first = gateway.resilience.gates["a"]
    gateway.swap(_groups(("a", "a1", 5)))
    assert gateway.resilience.gates["a"] is not first
    assert gateway.resilience.gates["a"].capacity == 5
