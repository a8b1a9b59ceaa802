"""Model groups by name, each with its deployments' provider adapters ready to call.

Today a group is served by its first deployment; routing strategies, retries and fallbacks
across deployments arrive with the routing issue and replace ``pick``.
"""

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
        self._providers: dict[str, list[Provider]] = {
            group.name: [factory(dep) for dep in group.deployments] for group in groups
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

    def pick(self, name: str) -> Provider:
        self.group(name)
        return self._providers[name][0]

    def with_api_base(self, provider: Provider, api_base: str) -> Provider:
        """A one-off adapter at a client-chosen base URL (only where an admin allowed it)."""
        return self._factory(replace(provider.deployment, api_base=api_base.rstrip("/")))
