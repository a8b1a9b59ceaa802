"""Model groups by name, each with its deployments' provider adapters ready to call.
Which deployment serves a request is the router's business (``router.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

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
        return self._providers[deployment.label]

    def with_api_base(self, provider: Provider, api_base: str) -> Provider:
        """A one-off adapter at a client-chosen base URL (only where an admin allowed it)."""
        return self._factory(replace(provider.deployment, api_base=api_base.rstrip("/")))
