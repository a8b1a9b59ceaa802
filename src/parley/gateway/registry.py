"""Model groups by name, each with its deployments' provider adapters ready to call.
Which deployment serves a request is the router's business (``router.py``)."""

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

    def one_off(self, deployment: Deployment) -> Provider:
        """A one-off adapter for a deployment built per request (a client-chosen base URL,
        ``client_base.py``), on the shared pool."""
        return self._factory(deployment)
