"""Model groups by name, each with its deployments' provider adapters ready to call.
Which deployment serves a request is the router's business (``router.py``).

A registry never changes: when model groups change at run time (``/admin/models``), the
gateway swaps in a new one (``Gateway.swap``)."""

from __future__ import annotations

from collections.abc import Callable

from parley.config.loader import Deployment, ModelGroup
from parley.errors import ModelNotFound
from parley.providers.base import Provider

ProviderFactory = Callable[[Deployment], Provider]


class ModelRegistry:
    def __init__(self, groups: list[ModelGroup], factory: ProviderFactory) -> None:
        self._factory = factory
        self._groups = {group.name: group for group in groups}
        self._providers: dict[str, Provider] = {
            dep.label: factory(dep) for group in groups for dep in group.deployments
        }

    def replaced(self, groups: list[ModelGroup]) -> ModelRegistry:
        """A registry of ``groups`` on the same factory, keeping the adapters of
        deployments that did not change."""
        fresh = ModelRegistry.__new__(ModelRegistry)
        fresh._factory = self._factory
        fresh._groups = {group.name: group for group in groups}
        fresh._providers = {}
        for group in groups:
            for dep in group.deployments:
                old = self._providers.get(dep.label)
                same = old is not None and (old.deployment is dep or old.deployment == dep)
                fresh._providers[dep.label] = (
                    old if same and old is not None else self._factory(dep)
                )
        return fresh

    @property
    def groups(self) -> list[ModelGroup]:
        return list(self._groups.values())

    def group(self, name: str) -> ModelGroup:
        group = self._groups.get(name)
        if group is None:
            raise ModelNotFound(
                f"The model {name!r} does not exist or you do not have access to it.",
                param="model",
            )
        return group

    @property
    def by_name(self) -> dict[str, ModelGroup]:
        return dict(self._groups)

    def provider(self, deployment: Deployment) -> Provider:
        """The adapter of ``deployment``. A request that began before the groups were
        swapped (``Gateway.swap``) may hold a deployment this registry no longer has, or
        has changed: it gets an adapter of its own, so it finishes where it started."""
        found = self._providers.get(deployment.label)
        if found is not None and (found.deployment is deployment or found.deployment == deployment):
            return found
        return self._factory(deployment)

    def one_off(self, deployment: Deployment) -> Provider:
        """A one-off adapter for a deployment built per request (a client-chosen base URL,
        ``client_base.py``), on the shared pool."""
        return self._factory(deployment)
