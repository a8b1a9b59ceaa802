"""``/api/conversations``: a logged-in user's conversations (JSON; user access tokens).

Every route answers 404 for a conversation that is not the caller's, exactly as for one
that does not exist. Writes take an optional ``expected_version`` (the ``version`` the
client last saw); a write that lost a race answers 409 and changes nothing.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from parley.api.auth import current_user
from parley.api.deps import int_param, services
from parley.chat.conversations import Conversations
from parley.errors import InvalidRequest
from parley.identity.schemas import validated

router = APIRouter(prefix="/api/conversations", tags=["conversations"])
_JSON = "application/json"

Tag = str


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConversationCreate(_Body):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    settings: dict[str, Any] | None = None


class ConversationUpdate(_Body):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    archived: bool | None = None
    pinned: bool | None = None
    tags: list[Tag] | None = Field(default=None, max_length=32)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    settings: dict[str, Any] | None = None
    expected_version: int | None = Field(default=None, ge=1)


class BranchSelect(_Body):
    leaf_id: str = Field(min_length=1, max_length=64)


def _conversations(request: Request) -> Conversations:
    chat: Conversations = services(request).conversations
    return chat


def _json(body: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type=_JSON)


async def _body(request: Request, model: type[_Body]) -> Any:
    raw = await request.body()
    try:
        data = msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError:
        raise InvalidRequest("request body is not valid JSON", code="invalid_json") from None
    return validated(model, data)


def _flag(raw: str | None, name: str) -> bool | None:
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise InvalidRequest(f"{name} must be true or false", param=name)
    return raw == "true"


@router.post("")
async def create(request: Request) -> Response:
    user = (await current_user(request)).user
    body: ConversationCreate = await _body(request, ConversationCreate)
    created = await _conversations(request).create(
        user.id, title=body.title, model=body.model, settings=body.settings
    )
    return _json(created, 201)


@router.get("")
async def list_conversations(request: Request) -> Response:
    """Newest activity first. ``archived`` defaults to false; ``pinned`` and ``tag`` filter."""
    user = (await current_user(request)).user
    q = request.query_params
    archived = _flag(q.get("archived"), "archived")
    rows, cursor = await _conversations(request).page(
        user.id,
        limit=int_param(q.get("limit"), "limit", 50, 1, 200),
        cursor=q.get("cursor"),
        archived=False if archived is None else archived,
        pinned=_flag(q.get("pinned"), "pinned"),
        tag=q.get("tag"),
    )
    return _json({"object": "list", "data": rows, "next_cursor": cursor})


@router.get("/{conversation_id}")
async def get(conversation_id: str, request: Request) -> Response:
    """The conversation with a page of its current branch (oldest first); pass
    ``before=<next_before>`` for the page before it."""
    user = (await current_user(request)).user
    chat = _conversations(request)
    q = request.query_params
    conversation = await chat.get(user.id, conversation_id)
    page, before = await chat.branch(
        user.id,
        conversation_id,
        limit=int_param(q.get("limit"), "limit", 50, 1, 500),
        before=q.get("before"),
    )
    return _json({**conversation, "messages": page, "next_before": before})


@router.patch("/{conversation_id}")
async def update(conversation_id: str, request: Request) -> Response:
    user = (await current_user(request)).user
    body: ConversationUpdate = await _body(request, ConversationUpdate)
    fields = body.model_dump(exclude_none=True, exclude={"title", "expected_version"})
    chat = _conversations(request)
    if body.title is None and not fields:
        raise InvalidRequest("nothing to change")
    expected = body.expected_version
    if body.title is not None:
        await chat.rename(user.id, conversation_id, body.title, expected)
        expected = None if expected is None else expected + 1
    if fields:
        await chat.update(user.id, conversation_id, fields, expected)
    return _json(await chat.get(user.id, conversation_id))


@router.delete("/{conversation_id}")
async def delete(conversation_id: str, request: Request) -> Response:
    user = (await current_user(request)).user
    await _conversations(request).delete(user.id, conversation_id)
    return Response(status_code=204)


@router.post("/{conversation_id}/branch")
async def select_branch(conversation_id: str, request: Request) -> Response:
    """Make ``leaf_id`` (any message of the conversation) the current leaf."""
    user = (await current_user(request)).user
    body: BranchSelect = await _body(request, BranchSelect)
    chat = _conversations(request)
    await chat.select_branch(user.id, conversation_id, body.leaf_id)
    return _json(await chat.get(user.id, conversation_id))
