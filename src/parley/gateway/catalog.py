"""Model groups managed at run time: create, replace, disable, delete and roll back the
groups kept in the database, each change a new revision, and announce it on the bus.

The model file stays the source of what it declares: a group whose name the file declares
(or a tiered/experiment name it declares) cannot be created or changed here (409); the
database holds the rest. Validation is the file's (``config/models.py``) plus what the file
checks across groups: fallbacks and downgrades name known groups, deployment labels are
unique, and the group resolves on this instance (its references are set). Who may call
this (global admins) and the audit log are the API layer's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from parley.bus import Bus, Subjects
from parley.config.loader import Deployment, ModelGroup
from parley.config.models import DeploymentConfig, ModelGroupConfig
from parley.config.stored import (
    FALLBACK_FIELDS,
    labels,
    referenced_groups,
    resolve_stored,
    seal,
    validate_group,
    view,
)
from parley.config.vault import SecretBox
from parley.errors import Conflict, InvalidRequest, NotFound, ParleyError
from parley.observability.logging import get_logger
from parley.store import model_groups as rows
from parley.store.db import Database
from parley.store.model_groups import Revision, StoredGroup

log = get_logger(__name__)
FILE_LABEL = "from parley.yaml"


@dataclass(frozen=True, slots=True)
class FileModels:
    """What the model file declares: its groups (read-only here) and virtual names."""

    groups: list[ModelGroup]
    virtual: frozenset[str] = frozenset()

    @property
    def names(self) -> frozenset[str]:
        return frozenset(g.name for g in self.groups) | self.virtual


def _stored_labels(document: Mapping[str, Any]) -> list[str]:
    name = document.get("name", "")
    return [
        d.get("name") or f"{name}/{d.get('provider')}/{d.get('model')}"
        for d in document.get("deployments", [])
    ]


def _stored_references(document: Mapping[str, Any]) -> list[str]:
    """The groups a stored document names, read without validating it again."""
    names = [t for kind in FALLBACK_FIELDS for t in document.get(kind, [])]
    downgrade = document.get("downgrade")
    if isinstance(downgrade, dict) and isinstance(downgrade.get("to"), str):
        names.append(downgrade["to"])
    return names


def _config_of(document: Mapping[str, Any]) -> ModelGroupConfig | None:
    """A stored document read by the file's schema (for its settings with their
    defaults); None if it no longer validates (it is then named in ``problems``)."""
    try:
        return validate_group(dict(document))
    except InvalidRequest:
        return None


def _group_settings(group: ModelGroup | ModelGroupConfig) -> dict[str, Any]:
    """How a group routes, limits and caches, as it applies (never a credential)."""
    return {
        "strategy": group.strategy,
        "fallbacks": list(group.fallbacks),
        "settings": {
            "context_window_fallbacks": list(group.context_window_fallbacks),
            "content_policy_fallbacks": list(group.content_policy_fallbacks),
            "retries": group.retries,
            "max_concurrency": group.max_concurrency,
            "limits": group.limits.model_dump(mode="json"),
            "cache": group.cache.model_dump(mode="json"),
            "budget": None if group.budget is None else group.budget.model_dump(mode="json"),
            "max_cost_usd": group.max_cost_usd,
        },
    }


def _deployment_details(d: Deployment | DeploymentConfig) -> dict[str, Any]:
    return {
        "weight": d.weight,
        "order": d.order,
        "max_concurrency": d.max_concurrency,
        "rpm": d.rpm,
        "tpm": d.tpm,
        "price": None if d.price is None else d.price.model_dump(mode="json"),
    }


@dataclass(slots=True)
class ModelCatalog:
    db: Database
    box: SecretBox
    file: FileModels
    environ: Mapping[str, str]
    bus: Bus | None = None
    subjects: Subjects = field(default_factory=Subjects)
    problems: dict[str, list[str]] = field(default_factory=dict)
    """Stored groups this instance could not resolve at its last load, by name."""

    # --- reading ----------------------------------------------------------------------

    async def load(self) -> list[ModelGroup]:
        """The enabled stored groups this instance can serve, resolved. The file wins a
        name both hold; a group that fails to resolve is left out and logged (by name)."""
        problems: dict[str, list[str]] = {}
        groups: list[ModelGroup] = []
        file_labels = {d.label for g in self.file.groups for d in g.deployments}
        for stored in await rows.list_groups(self.db):
            if stored.name in self.file.names:
                problems[stored.name] = [f"shadowed: the model file declares {stored.name!r}"]
                continue
            clash = sorted(file_labels.intersection(_stored_labels(stored.document)))
            if clash:  # labels key health, breakers and adapters: they must stay unique
                problems[stored.name] = [f"shadowed: the model file has deployment {clash[0]!r}"]
                continue
            if not stored.enabled:
                continue
            found, trouble = resolve_stored([stored.document], self.box, self.environ)
            groups += found
            if trouble:
                problems[stored.name] = trouble
                log.warning("stored model group not served", group=stored.name, problems=trouble)
        self.problems = problems
        return groups

    async def get(self, name: str) -> StoredGroup:
        found = await rows.get_group(self.db, name)
        if found is None:
            if name in self.file.names:
                raise Conflict(self._file_refusal(name))
            raise NotFound(f"no model group {name!r} is stored", param="name")
        return found

    def shown(self, stored: StoredGroup) -> dict[str, Any]:
        """A stored group as the API shows it (secrets as hints only), with its settings
        as they apply (defaults filled in) in the same shape as a file group's."""
        document = view(stored.document, self.box)
        config = _config_of(stored.document)
        details = [_deployment_details(d) for d in config.deployments] if config else []
        return {
            "name": stored.name,
            "source": "database",
            "read_only": False,
            "enabled": stored.enabled,
            "revision": stored.revision,
            "updated_ms": stored.updated_ms,
            "updated_by": stored.updated_by,
            **(_group_settings(config) if config else {}),
            "document": document,
            "deployments": [
                {
                    "index": i,
                    "label": label,
                    "provider": d.get("provider"),
                    "model": d.get("model"),
                    "api_base": d.get("api_base"),
                    "enabled": d.get("enabled", True),
                    **(details[i] if i < len(details) else {}),
                }
                for i, (d, label) in enumerate(
                    zip(document.get("deployments", []), _stored_labels(document), strict=True)
                )
            ],
            "problems": self.problems.get(stored.name, []),
        }

    @staticmethod
    def file_shown(group: ModelGroup) -> dict[str, Any]:
        return {
            "name": group.name,
            "source": "file",
            "label": FILE_LABEL,
            "read_only": True,
            "enabled": True,
            **_group_settings(group),
            "deployments": [
                {
                    "index": i,
                    "label": d.label,
                    "provider": d.provider,
                    "model": d.model,
                    "api_base": d.api_base,
                    "enabled": True,
                    **_deployment_details(d),
                }
                for i, d in enumerate(group.deployments)
            ],
        }

    async def listing(self) -> list[dict[str, Any]]:
        shown = [self.file_shown(g) for g in self.file.groups]
        shown += [
            self.shown(s) for s in await rows.list_groups(self.db) if s.name not in self.file.names
        ]
        return shown

    async def deleted(self) -> list[dict[str, Any]]:
        """Deleted stored groups, newest deletion first, with the revision a rollback
        restores; a name the model file now declares cannot come back, so it is left out."""
        return [
            {
                "name": d.name,
                "revision": d.revision,
                "deleted_ms": d.time_ms,
                "deleted_by": d.actor,
                "restorable_revision": d.restorable,
            }
            for d in await rows.deleted_groups(self.db)
            if d.name not in self.file.names
        ]

    async def revisions(self, name: str, limit: int = 100) -> list[dict[str, Any]]:
        found = await rows.revisions(self.db, name, limit)
        if not found:
            await self.get(name)  # 409 for a file group, else 404
        return [self.revision_shown(r) for r in found]

    def revision_shown(self, revision: Revision) -> dict[str, Any]:
        return {
            "group": revision.group,
            "revision": revision.revision,
            "time_ms": revision.time_ms,
            "actor": revision.actor,
            "action": revision.action,
            "enabled": revision.enabled,
            "document": None if revision.document is None else view(revision.document, self.box),
        }

    # --- changing ---------------------------------------------------------------------

    def _file_refusal(self, name: str) -> str:
        return (
            f"model group {name!r} is declared in the model file (parley.yaml), which wins "
            "for the groups it declares: change it there, or choose another name"
        )

    async def _checked(
        self, raw: object, *, previous: StoredGroup | None, name: str | None = None
    ) -> tuple[ModelGroupConfig, dict[str, Any]]:
        if name is not None and isinstance(raw, dict):
            given = raw.get("name", name)
            if given != name:
                raise InvalidRequest(
                    f"the body names {given!r} but the path {name!r}; rename by creating "
                    "the new group and deleting the old one",
                    param="name",
                )
            raw = {**raw, "name": name}
        config = validate_group(raw)
        if config.name in self.file.names:
            raise Conflict(self._file_refusal(config.name))
        stored = {s.name: s for s in await rows.list_groups(self.db)}
        known = {g.name for g in self.file.groups} | set(stored)
        for target in referenced_groups(config):
            where = f"models.{config.name}"
            if target == config.name:
                raise InvalidRequest(f"{where}: falls back or downgrades to itself", param=where)
            if target not in known:
                raise InvalidRequest(f"{where}: names unknown group {target!r}", param=where)
        taken = {d.label for g in self.file.groups for d in g.deployments}
        for other in stored.values():
            if other.name != config.name:
                taken.update(_stored_labels(other.document))
        mine = labels(config)
        for label in mine:
            if label in taken or mine.count(label) > 1:
                raise InvalidRequest(
                    f"models.{config.name}: deployment {label!r} appears twice: give each a "
                    "distinct `name`",
                    param=f"models.{config.name}.deployments",
                )
        document = seal(config, self.box, previous.document if previous else None)
        _, problems = resolve_stored([document], self.box, self.environ)
        if problems:
            raise InvalidRequest("; ".join(problems), param=problems[0].split(":", 1)[0])
        return config, document

    async def deployment(self, name: str, index: int) -> Deployment:
        """Deployment ``index`` of a group (the file's, or a stored one, even a disabled
        one), resolved as it would be served: what a connection test calls."""
        for group in self.file.groups:
            if group.name == name:
                if not 0 <= index < len(group.deployments):
                    raise NotFound(f"model group {name!r} has no deployment {index}", param="index")
                return group.deployments[index]
        stored = await self.get(name)
        deployments = list(stored.document.get("deployments", []))
        if not 0 <= index < len(deployments):
            raise NotFound(f"model group {name!r} has no deployment {index}", param="index")
        one = {**deployments[index], "enabled": True}
        groups, problems = resolve_stored(
            [{**stored.document, "deployments": [one]}], self.box, self.environ
        )
        if problems or not groups:
            raise InvalidRequest(
                f"deployment {index} of {name!r} cannot be used here: " + "; ".join(problems),
                param="index",
            )
        return groups[0].deployments[0]

    async def trial(self, raw: object, index: int) -> Deployment:
        """Deployment ``index`` of a group that is not saved (a connection test before
        saving): validated as a save would be, literal secrets used as given, hints taken
        from the stored group of the same name. Nothing is stored."""
        config = validate_group(raw)
        if not 0 <= index < len(config.deployments):
            raise InvalidRequest(
                f"the group has no deployment {index} (it has {len(config.deployments)})",
                param="deployment",
            )
        previous = await rows.get_group(self.db, config.name)
        box = self.box.ephemeral()
        document = seal(config, box, previous.document if previous else None)
        document["deployments"] = [{**document["deployments"][index], "enabled": True}]
        groups, problems = resolve_stored([document], box, self.environ)
        if problems or not groups:
            raise InvalidRequest("; ".join(problems), param=problems[0].split(":", 1)[0])
        return groups[0].deployments[0]

    async def create(self, raw: object, actor: str) -> Revision:
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str) and name in self.file.names:
            raise Conflict(self._file_refusal(name))
        if isinstance(name, str) and await rows.get_group(self.db, name) is not None:
            raise Conflict(
                f"model group {name!r} already exists; PUT /admin/models/{name} replaces it"
            )
        config, document = await self._checked(raw, previous=None)
        return await self._save(config.name, document, enabled=True, actor=actor, action="create")

    async def replace(self, name: str, raw: object, actor: str) -> Revision:
        previous = await self.get(name)
        _, document = await self._checked(raw, previous=previous, name=name)
        return await self._save(
            name, document, enabled=previous.enabled, actor=actor, action="update"
        )

    async def set_enabled(self, name: str, enabled: bool, actor: str) -> Revision:
        current = await self.get(name)
        action = "enable" if enabled else "disable"
        return await self._save(name, current.document, enabled=enabled, actor=actor, action=action)

    async def set_deployment_enabled(
        self, name: str, index: int, enabled: bool, actor: str
    ) -> Revision:
        current = await self.get(name)
        deployments = list(current.document.get("deployments", []))
        if not 0 <= index < len(deployments):
            raise NotFound(
                f"model group {name!r} has no deployment {index} (it has {len(deployments)})",
                param="index",
            )
        deployments[index] = {**deployments[index], "enabled": enabled}
        if enabled:
            deployments[index].pop("enabled")  # the default: keep documents as written
        document = {**current.document, "deployments": deployments}
        action = "enable" if enabled else "disable"
        return await self._save(
            name, document, enabled=current.enabled, actor=actor, action=f"deployment_{action}"
        )

    async def delete(self, name: str, actor: str) -> Revision:
        await self.get(name)
        for other in await rows.list_groups(self.db):
            if other.name == name:
                continue
            if name in _stored_references(other.document):
                raise Conflict(
                    f"model group {other.name!r} falls back or downgrades to {name!r}: "
                    "change it first"
                )
        return await self._save(name, None, enabled=False, actor=actor, action="delete")

    async def rollback(self, name: str, number: int, actor: str) -> Revision:
        """Restore revision ``number`` as a new revision (validated again: the groups it
        names may have changed since)."""
        if name in self.file.names:
            raise Conflict(self._file_refusal(name))
        target = await rows.revision(self.db, name, number)
        if target is None:
            raise NotFound(f"model group {name!r} has no revision {number}", param="revision")
        if target.document is None:
            raise InvalidRequest(
                f"revision {number} of {name!r} is its deletion; DELETE the group instead",
                param="revision",
            )
        _, document = await self._checked(target.document, previous=None, name=name)
        return await self._save(
            name, document, enabled=target.enabled, actor=actor, action="rollback"
        )

    async def _save(
        self,
        name: str,
        document: dict[str, Any] | None,
        *,
        enabled: bool,
        actor: str,
        action: str,
    ) -> Revision:
        saved = await rows.save(
            self.db, name, document, enabled=enabled, actor=actor, action=action
        )
        await self.announce()
        return saved

    async def announce(self) -> None:
        """Tell every instance to reload (best effort: each also polls)."""
        if self.bus is None:
            return
        try:
            await self.bus.emit(self.subjects.models, b"changed")
        except ParleyError as exc:
            log.warning("could not announce a model change", error=exc.message)
