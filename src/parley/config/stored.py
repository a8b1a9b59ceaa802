"""Model groups kept in the database (``/admin/models``): validated by the model file's own
pydantic models, their literal secrets sealed before they are stored, shown without them,
and resolved into the same ``ModelGroup`` objects the file's groups become.

A stored document is the group as the file would write it (``ModelGroupConfig``, only the
fields the admin set), except that a secret field holds either an ``os.environ/NAME``
reference (kept as it is) or ``sealed:<token>`` (``config/vault.py``). Shown through the
API, a sealed secret is its hint (``…abcd``); a hint sent back in an update means "keep the
secret stored for this deployment", so a console can send a group back as it got it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from parley.config.loader import ModelGroup, describe_error, resolve_groups
from parley.config.models import ModelGroupConfig, ModelsFile
from parley.config.secrets import is_reference
from parley.config.vault import HINT, SecretBox, VaultError, hint, is_sealed
from parley.errors import ConfigError, InvalidRequest

SECRET_FIELDS = (
    "api_key",
    "azure_ad_token",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
)
FALLBACK_FIELDS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")


def validate_group(raw: object) -> ModelGroupConfig:
    """The group as the file's schema reads it; ``InvalidRequest`` names every bad field
    by its path (``models.chat.deployments[1].api_base: ...``), the first as ``param``."""
    if not isinstance(raw, dict):
        raise InvalidRequest("a model group must be a JSON object", param="(top level)")
    try:
        return ModelGroupConfig.model_validate(raw, context={"literal_secrets": True})
    except ValidationError as exc:
        wrapped = {"models": [raw]}
        problems = [
            describe_error({**e, "loc": ("models", 0, *e["loc"])}, wrapped) for e in exc.errors()
        ]
    raise InvalidRequest("; ".join(problems), param=problems[0].split(":", 1)[0])


def referenced_groups(config: ModelGroupConfig) -> list[str]:
    """Other groups this one names (fallbacks, downgrade)."""
    names = [t for kind in FALLBACK_FIELDS for t in getattr(config, kind)]
    if config.downgrade is not None:
        names.append(config.downgrade.to)
    return names


def labels(config: ModelGroupConfig) -> list[str]:
    return [d.label(config.name) for d in config.deployments]


_CREDENTIAL_HEADER = re.compile(r"auth|key|token|secret|password|cookie", re.IGNORECASE)
"""``extra_headers`` whose name says they carry a credential (``Authorization``,
``api-key``, ``X-Api-Token``...): sealed and hinted like ``api_key``. Other headers are
configuration, stored and shown as they are."""


def _slots(dep: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str, str]]:
    """Where a deployment may hold a secret: (the mapping, its key, the field's path
    below the deployment), for each one present."""
    for field in SECRET_FIELDS:
        if isinstance(dep.get(field), str):
            yield dep, field, field
    headers = dep.get("extra_headers")
    if isinstance(headers, dict):
        for header, value in headers.items():
            if isinstance(value, str) and _CREDENTIAL_HEADER.search(header):
                yield headers, header, f"extra_headers.{header.lower()}"


def credential_headers(headers: Mapping[str, str]) -> list[str]:
    """The values of headers that carry a credential, for the log redactor."""
    return [v for k, v in headers.items() if _CREDENTIAL_HEADER.search(k)]


def _label(document: Mapping[str, Any], dep: Mapping[str, Any]) -> str:
    return str(
        dep.get("name") or f"{document.get('name')}/{dep.get('provider')}/{dep.get('model')}"
    )


def _stored_secrets(document: Mapping[str, Any] | None) -> dict[tuple[str, str], str]:
    """(deployment label, field path) -> the stored sealed value, of a stored document."""
    found: dict[tuple[str, str], str] = {}
    for dep in (document or {}).get("deployments", []):
        for holder, key, path in _slots(dep):
            if is_sealed(holder[key]):
                found[(_label(document or {}, dep), path)] = holder[key]
    return found


def seal(
    config: ModelGroupConfig, box: SecretBox, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The document to store: references kept, literal secrets sealed, hints (``…abcd``)
    replaced by the secret ``previous`` holds for the same deployment and field."""
    document = config.model_dump(mode="json", exclude_unset=True)
    kept = _stored_secrets(previous)
    for index, dep in enumerate(document["deployments"]):
        for holder, key, path in _slots(dep):
            value: str = holder[key]
            if is_reference(value) or is_sealed(value):
                continue  # a sealed value comes from a stored revision (a rollback)
            where = f"models.{config.name}.deployments[{index}].{path}"
            if value.startswith(HINT):
                stored = kept.get((_label(document, dep), path))
                if stored is None:
                    raise InvalidRequest(
                        f"{where}: {value!r} stands for a stored secret, but this deployment "
                        "has none stored; enter the secret or an os.environ/NAME reference",
                        param=where,
                    )
                holder[key] = stored
                continue
            try:
                holder[key] = box.seal(value)
            except VaultError as exc:
                raise InvalidRequest(f"{where}: {exc}", param=where) from None
    return document


def view(document: Mapping[str, Any], box: SecretBox) -> dict[str, Any]:
    """The document as the API shows it: sealed secrets as their hint, nothing more."""
    shown = copy.deepcopy(dict(document))
    for dep in shown.get("deployments", []):
        for holder, key, _ in _slots(dep):
            if is_sealed(holder[key]):
                try:
                    holder[key] = hint(box.open(holder[key]).reveal())
                except VaultError:
                    holder[key] = HINT
    return shown


def reseal(document: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """The document with every sealed secret re-encrypted under the first key."""
    fresh = copy.deepcopy(document)
    for dep in fresh.get("deployments", []):
        for holder, key, _ in _slots(dep):
            if is_sealed(holder[key]):
                holder[key] = box.reseal(holder[key])
    return fresh


def resolve_stored(
    documents: list[dict[str, Any]], box: SecretBox, environ: Mapping[str, str]
) -> tuple[list[ModelGroup], list[str]]:
    """Each stored group resolved as the file's are (its sealed secrets opened); a group
    that cannot be (a reference this instance's environment lacks, a key it does not
    have) is left out and named in the problems, so one bad group never takes the rest."""
    groups: list[ModelGroup] = []
    problems: list[str] = []
    for document in documents:
        env = dict(environ)
        doc = copy.deepcopy(document)
        name = doc.get("name", "?")
        try:
            for index, dep in enumerate(doc.get("deployments", [])):
                for number, (holder, key, path) in enumerate(list(_slots(dep))):
                    if not is_sealed(holder[key]):
                        continue
                    opened = box.open(holder[key]).reveal()
                    if path.startswith("extra_headers."):
                        holder[key] = opened  # headers are literal in the file's schema too
                        continue
                    variable = f"_PARLEY_SEALED_{index}_{number}"
                    env[variable] = opened
                    holder[key] = f"os.environ/{variable}"
            config = ModelGroupConfig.model_validate(doc)
            groups += resolve_groups(ModelsFile.model_construct(models=[config]), env)
        except VaultError as exc:
            problems.append(f"models.{name}: {exc}")
        except ConfigError as exc:
            problems += exc.errors
        except ValidationError as exc:
            problems += [f"models.{name}: {e['msg']}" for e in exc.errors()]
    return groups, problems
