"""``GET /api/models``: the model groups a signed-in user may chat with (the web app's
model picker). Users are not limited to some groups today, so this is every group and
every tiered name ``/v1/models`` lists."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from parley.api.auth import current_user
from parley.api.deps import json_response
from parley.api.openai import model_names

router = APIRouter(prefix="/api/models", tags=["chat"])


@router.get("")
async def chat_models(request: Request) -> Response:
    await current_user(request)
    return json_response({"data": [{"id": name} for name in model_names(request)]})
