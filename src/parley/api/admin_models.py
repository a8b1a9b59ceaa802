"""``/admin/models``: model groups managed at run time (global admins only).

Groups the model file declares are listed read-only (``"source": "file"``, labelled "from
parley.yaml"); the others live in the database (``gateway/catalog.py``), each change a new
revision. A change is served by this instance before the answer is sent, and by every other
one as soon as it hears of it on the bus (or at its next poll). Secrets are never answered:
a stored one shows as its last four characters at most (``"…abcd"``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from parley.api.admin import Actor, actor
from parley.api.deps import client_ip, int_param, json_body, json_response, services
from parley.config.loader import Deployment
from parley.config.stored import credential_headers
from parley.errors import InvalidRequest, ParleyError, PermissionDenied
from parley.gateway.catalog import ModelCatalog
from parley.gateway.live_models import LiveModels
from parley.gateway.routing.probes import PROBE
from parley.identity.audit import audit
from parley.identity.schemas import validated
from parley.observability.redact import redactor
from parley.store.model_groups import Revision

router = APIRouter(prefix="/admin/models", tags=["admin"])
PROBE_TIMEOUT_S = 10.0


class Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    revision: int = Field(ge=1)
    """The revision to restore; the restored group becomes a new revision."""


async def _admin(request: Request) -> Actor:
    """Only global admins manage models: ``api_base`` (where Parley sends requests and
    credentials) is an admin's choice, never a team's (the SSRF rule)."""
    who = await actor(request)
    if not who.is_admin:
        raise PermissionDenied("only a global admin may manage model groups")
    return who


def _live(request: Request) -> LiveModels:
    found: LiveModels = request.app.state.live_models
    return found


def _catalog(request: Request) -> ModelCatalog:
    return _live(request).catalog


async def _changed(
    request: Request, who: Actor, action: str, revision: Revision, **detail: Any
) -> None:
    """Serve the change here at once, and audit it (never with a secret: names only)."""
    await _live(request).refresh()
    await audit(
        services(request).db,
        actor=who.id,
        action=f"model.{action}",
        target=revision.group,
        ip=client_ip(request),
        detail={"revision": revision.revision, **detail},
    )


async def _shown(catalog: ModelCatalog, name: str) -> dict[str, Any]:
    return catalog.shown(await catalog.get(name))


@router.get("")
async def list_models(request: Request) -> Response:
    """Every group served (the file's and the stored ones); ``?deleted=true`` lists the
    deleted stored groups instead, each with the revision ``rollback`` restores. A query
    parameter, not a path: any name, ``deleted`` too, may be a group's."""
    await _admin(request)
    catalog = _catalog(request)
    deleted = request.query_params.get("deleted", "false")
    if deleted not in ("true", "false"):
        raise InvalidRequest(f"deleted must be true or false, got {deleted!r}", param="deleted")
    found = await (catalog.deleted() if deleted == "true" else catalog.listing())
    return json_response({"object": "list", "data": found})


@router.post("")
async def create_model(request: Request) -> Response:
    who = await _admin(request)
    catalog = _catalog(request)
    saved = await catalog.create(await json_body(request), who.id)
    await _changed(request, who, "create", saved)
    return json_response(await _shown(catalog, saved.group), 201)


@router.post("/test")
async def test_unsaved(request: Request) -> Response:
    """The connection test for a group not saved yet (``?deployment=`` its index, 0 by
    default): the console's "Test connection" before "Save". Nothing is stored."""
    await _admin(request)
    index = int_param(request.query_params.get("deployment"), "deployment", 0, 0, 1000)
    deployment = await _catalog(request).trial(await json_body(request), index)
    return await _probe(request, deployment)


@router.get("/{name:path}/revisions")
async def list_revisions(name: str, request: Request) -> Response:
    await _admin(request)
    limit = int_param(request.query_params.get("limit"), "limit", 100, 1, 1000)
    found = await _catalog(request).revisions(name, limit)
    return json_response({"object": "list", "data": found})


@router.post("/{name:path}/rollback")
async def rollback_model(name: str, request: Request) -> Response:
    who = await _admin(request)
    body: Rollback = validated(Rollback, await json_body(request))
    catalog = _catalog(request)
    saved = await catalog.rollback(name, body.revision, who.id)
    await _changed(request, who, "rollback", saved, restored=body.revision)
    return json_response(await _shown(catalog, name))


@router.post("/{name:path}/deployments/{index}/test")
async def test_deployment(name: str, index: int, request: Request) -> Response:
    """A one-token completion through the deployment's real adapter: ``ok`` and the
    latency, or the upstream's error (secrets scrubbed). Works on a disabled deployment
    too, so it can be checked before it is enabled."""
    await _admin(request)
    return await _probe(request, await _catalog(request).deployment(name, index))


async def _probe(request: Request, deployment: Deployment) -> Response:
    redactor.register(_secrets_of(deployment))
    provider = request.app.state.gateway.registry.one_off(deployment)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            await provider.complete(PROBE)
    except ParleyError as exc:
        return json_response(
            {
                "ok": False,
                "deployment": deployment.label,
                "error": {
                    "status": exc.status_code,
                    "type": exc.error_type,
                    "code": exc.code,
                    "message": redactor.scrub(exc.message),
                },
            }
        )
    except TimeoutError:
        return json_response(
            {
                "ok": False,
                "deployment": deployment.label,
                "error": {
                    "status": 504,
                    "type": "timeout",
                    "code": None,
                    "message": f"no answer within {PROBE_TIMEOUT_S:g} s",
                },
            }
        )
    latency = time.perf_counter() - started
    return json_response(
        {"ok": True, "deployment": deployment.label, "latency_ms": round(latency * 1000, 1)}
    )


def _secrets_of(deployment: Deployment) -> list[str]:
    values = [s.reveal() for s in (deployment.api_key, deployment.azure_ad_token) if s]
    if deployment.aws is not None:
        values += [s.reveal() for s in deployment.aws.secrets()]
    return values + credential_headers(deployment.extra_headers)


@router.post("/{name:path}/deployments/{index}/disable")
async def disable_deployment(name: str, index: int, request: Request) -> Response:
    return await _deployment_enabled(request, name, index, enabled=False)


@router.post("/{name:path}/deployments/{index}/enable")
async def enable_deployment(name: str, index: int, request: Request) -> Response:
    return await _deployment_enabled(request, name, index, enabled=True)


async def _deployment_enabled(
    request: Request, name: str, index: int, *, enabled: bool
) -> Response:
    who = await _admin(request)
    catalog = _catalog(request)
    saved = await catalog.set_deployment_enabled(name, index, enabled, who.id)
    action = "deployment_enable" if enabled else "deployment_disable"
    await _changed(request, who, action, saved, deployment=index)
    return json_response(await _shown(catalog, name))


@router.post("/{name:path}/disable")
async def disable_model(name: str, request: Request) -> Response:
    return await _enabled(request, name, enabled=False)


@router.post("/{name:path}/enable")
async def enable_model(name: str, request: Request) -> Response:
    return await _enabled(request, name, enabled=True)


async def _enabled(request: Request, name: str, *, enabled: bool) -> Response:
    who = await _admin(request)
    catalog = _catalog(request)
    saved = await catalog.set_enabled(name, enabled, who.id)
    await _changed(request, who, "enable" if enabled else "disable", saved)
    return json_response(await _shown(catalog, name))


@router.get("/{name:path}")
async def get_model(name: str, request: Request) -> Response:
    await _admin(request)
    catalog = _catalog(request)
    for group in catalog.file.groups:
        if group.name == name:
            return json_response(catalog.file_shown(group))
    return json_response(await _shown(catalog, name))


@router.put("/{name:path}")
async def replace_model(name: str, request: Request) -> Response:
    who = await _admin(request)
    catalog = _catalog(request)
    saved = await catalog.replace(name, await json_body(request), who.id)
    await _changed(request, who, "update", saved)
    return json_response(await _shown(catalog, name))


@router.delete("/{name:path}")
async def delete_model(name: str, request: Request) -> Response:
    who = await _admin(request)
    saved = await _catalog(request).delete(name, who.id)
    await _changed(request, who, "delete", saved)
    return json_response({"name": name, "deleted": True, "revision": saved.revision})
