"""``/api/presets``: a user's saved conversation settings (``chat/presets.py``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.responses import Response

from parley.api.auth import current_user
from parley.api.bodies import Body, ChatSettings, settings_dict
from parley.api.deps import json_body, json_response, services
from parley.errors import InvalidRequest
from parley.identity.schemas import validated

router = APIRouter(prefix="/api/presets", tags=["presets"])


class PresetCreate(Body):
    name: str = Field(min_length=1, max_length=100)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    settings: ChatSettings = Field(default_factory=ChatSettings)


class PresetUpdate(Body):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    settings: ChatSettings | None = None


@router.post("")
async def create(request: Request) -> Response:
    user = (await current_user(request)).user
    body: PresetCreate = validated(PresetCreate, await json_body(request))
    made = await services(request).presets.create(
        user.id, name=body.name, model=body.model, settings=settings_dict(body.settings) or {}
    )
    return json_response(made, 201)


@router.get("")
async def list_presets(request: Request) -> Response:
    user = (await current_user(request)).user
    return json_response({"object": "list", "data": await services(request).presets.list(user.id)})


@router.get("/{preset_id}")
async def get(preset_id: str, request: Request) -> Response:
    user = (await current_user(request)).user
    return json_response(await services(request).presets.get(user.id, preset_id))


@router.patch("/{preset_id}")
async def update(preset_id: str, request: Request) -> Response:
    """Fields given replace the preset's (``settings`` as a whole)."""
    user = (await current_user(request)).user
    body: PresetUpdate = validated(PresetUpdate, await json_body(request))
    changes = body.model_dump(exclude_none=True, exclude={"settings"})
    if body.settings is not None:
        changes["settings"] = settings_dict(body.settings)
    if not changes:
        raise InvalidRequest("nothing to change")
    return json_response(await services(request).presets.update(user.id, preset_id, changes))


@router.delete("/{preset_id}")
async def delete(preset_id: str, request: Request) -> Response:
    user = (await current_user(request)).user
    await services(request).presets.delete(user.id, preset_id)
    return Response(status_code=204)
