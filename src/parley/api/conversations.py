"""``/api/conversations``: a logged-in user's conversations (JSON; user access tokens).

Every route answers 404 for a conversation that is not the caller's, exactly as for one
that does not exist. Writes take an optional ``expected_version`` (the ``version`` the
client last saw); a write that lost a race answers 409 and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import Field, StringConstraints
from starlette.responses import Response, StreamingResponse

from parley.api.auth import chat_user
from parley.api.bodies import Body, ChatSettings, settings_dict
from parley.api.deps import client_ip, int_param, json_body, json_response, services
from parley.chat.conversations import FORK_LIMIT, Conversations
from parley.chat.generation import Generation, Generations, sendable, sse_frame
from parley.chat.parts import checked, text_of, text_part
from parley.chat.purge import purge
from parley.errors import InvalidRequest, NotFound
from parley.gateway.accounting.caller import Caller, Principal
from parley.identity.schemas import validated
from parley.store.search import Filters

router = APIRouter(prefix="/api/conversations", tags=["conversations"])

Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
"""A conversation tag: what the sidebar shows as a chip and filters by."""


class ConversationCreate(Body):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    settings: ChatSettings | None = None
    preset_id: str | None = Field(default=None, min_length=1, max_length=64)
    """Start from a saved preset: its model and settings (``model`` and ``settings``
    given here win)."""


class ConversationUpdate(Body):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    archived: bool | None = None
    pinned: bool | None = None
    tags: list[Tag] | None = Field(default=None, max_length=32)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    settings: ChatSettings | None = None
    expected_version: int | None = Field(default=None, ge=1)


UserContent = str | list[dict[str, Any]]
"""Text, or a list of parts: ``{"type": "text", "text"}`` and ``{"type": "image", "url"}``."""


def user_parts(content: UserContent) -> list[dict[str, Any]]:
    """A user's message as parts: text and images only, some text or an image, within the
    size limit; else a 400 naming the bad part."""
    if isinstance(content, str):
        return text_part(content)
    parts = checked(content, "content")
    for index, part in enumerate(parts):
        if part["type"] not in ("text", "image"):
            raise InvalidRequest(
                "a user's message holds text and image parts", param=f"content[{index}].type"
            )
        if part["type"] == "image" and not sendable(part["url"]):
            raise InvalidRequest(
                "an image is an https:// or data:image/ URL", param=f"content[{index}].url"
            )
    if not parts or not (text_of(parts).strip() or any(p["type"] == "image" for p in parts)):
        raise InvalidRequest("the message is empty", param="content")
    if len(text_of(parts)) > 200_000:
        raise InvalidRequest("the message is longer than 200,000 characters", param="content")
    return parts


class MessageSend(Body):
    content: UserContent = Field(min_length=1, max_length=200_000)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    parent_id: str | None = Field(default=None, min_length=1, max_length=64)


class MessageEdit(Body):
    content: UserContent = Field(min_length=1, max_length=200_000)
    model: str | None = Field(default=None, min_length=1, max_length=200)


class Regenerate(Body):
    model: str | None = Field(default=None, min_length=1, max_length=200)


class Fork(Body):
    message_id: str = Field(min_length=1, max_length=64)


class ShareCreate(Body):
    message_id: str | None = Field(default=None, min_length=1, max_length=64)
    """Share the branch ending here (default: the current branch)."""
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)


class BranchSelect(Body):
    leaf_id: str | None = Field(default=None, min_length=1, max_length=64)
    """Make this message the current leaf."""
    message_id: str | None = Field(default=None, min_length=1, max_length=64)
    """Show this version: the current leaf becomes the newest message under it."""


def _conversations(request: Request) -> Conversations:
    chat: Conversations = services(request).conversations
    return chat


def _flag(raw: str | None, name: str) -> bool | None:
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise InvalidRequest(f"{name} must be true or false", param=name)
    return raw == "true"


@router.post("")
async def create(request: Request) -> Response:
    user = (await chat_user(request)).user
    body: ConversationCreate = validated(ConversationCreate, await json_body(request))
    model, settings = body.model, settings_dict(body.settings)
    if body.preset_id is not None:
        preset = await services(request).presets.get(user.id, body.preset_id)
        model = model or preset["model"]
        settings = {**preset["settings"], **(settings or {})}
    created = await _conversations(request).create(
        user.id, title=body.title, model=model, settings=settings
    )
    return json_response(created, 201)


@router.get("")
async def list_conversations(request: Request) -> Response:
    """Newest activity first. ``archived`` defaults to false; ``pinned`` and ``tag`` filter."""
    user = (await chat_user(request)).user
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
    return json_response({"object": "list", "data": rows, "next_cursor": cursor})


@router.post("/import")
async def import_conversation(request: Request) -> Response:
    """A Parley JSON export (``GET .../export``) as a new conversation of the caller's;
    or ChatGPT's ``conversations.json`` (or one conversation of it) as new conversations,
    answered as a list. All or nothing; parsed off the event loop and written in batches
    (``chat/imports.py``); one at a time per user."""
    user = (await chat_user(request)).user
    importer = services(request).imports
    async with importer.slot(user.id):
        plan = await importer.run(user.id, await request.body())
    ids = [c.conversation_id for c in plan.conversations]
    made = await _conversations(request).get_many(user.id, ids)
    if plan.listed:
        return json_response({"object": "list", "data": made}, 201)
    return json_response(made[0], 201)


@router.get("/{conversation_id}/export")
async def export(conversation_id: str, request: Request) -> Response:
    """``format=json`` (default; lossless, every branch, re-importable) or ``markdown``
    (the current branch, for reading)."""
    user = (await chat_user(request)).user
    chat = _conversations(request)
    kind = request.query_params.get("format", "json")
    if kind == "json":
        body = await chat.export(user.id, conversation_id)
        name = f"conversation-{conversation_id}.json"
        return json_response(
            body, headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )
    if kind != "markdown":
        raise InvalidRequest("format must be json or markdown", param="format")
    conversation = await chat.get(user.id, conversation_id)
    branch, _ = await chat.branch_of(conversation, limit=FORK_LIMIT)
    return Response(
        markdown(conversation, branch),
        media_type="text/markdown; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="conversation-{conversation_id}.md"'
        },
    )


def markdown(conversation: dict[str, Any], branch: list[dict[str, Any]]) -> str:
    lines = [f"# {conversation['title']}", ""]
    for message in branch:
        text = text_of(message["content"])
        who = {"user": "You", "assistant": message.get("model") or "Assistant"}.get(
            message["role"], message["role"]
        )
        lines += [f"**{who}**", "", text, ""]
    return "\n".join(lines)


@router.get("/{conversation_id}")
async def get(conversation_id: str, request: Request) -> Response:
    """The conversation with a page of its current branch (oldest first); pass
    ``before=<next_before>`` for the page before it."""
    user = (await chat_user(request)).user
    chat = _conversations(request)
    q = request.query_params
    conversation = await chat.get(user.id, conversation_id)
    page, before = await chat.branch_of(
        conversation,
        limit=int_param(q.get("limit"), "limit", 50, 1, 500),
        before=q.get("before"),
        versions=True,
    )
    return json_response({**conversation, "messages": page, "next_before": before})


@router.patch("/{conversation_id}")
async def update(conversation_id: str, request: Request) -> Response:
    user = (await chat_user(request)).user
    body: ConversationUpdate = validated(ConversationUpdate, await json_body(request))
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
    return json_response(await chat.get(user.id, conversation_id))


@router.delete("/{conversation_id}")
async def delete(conversation_id: str, request: Request) -> Response:
    """Soft by default (purged after ``PARLEY_CHAT_PURGE_AFTER_DAYS``); ``purge=true``
    removes it and its history now."""
    user = (await chat_user(request)).user
    now = _flag(request.query_params.get("purge"), "purge")
    await _conversations(request).delete(user.id, conversation_id)
    if now:
        await purge(services(request).db, int(time.time() * 1000), conversation_id=conversation_id)
    return Response(status_code=204)


@router.post("/{conversation_id}/branch")
async def select_branch(conversation_id: str, request: Request) -> Response:
    """Make ``leaf_id`` (any message of the conversation) the current leaf, or show
    ``message_id``'s version (the newest branch under it)."""
    user = (await chat_user(request)).user
    body: BranchSelect = validated(BranchSelect, await json_body(request))
    if (body.leaf_id is None) == (body.message_id is None):
        raise InvalidRequest("give exactly one of leaf_id and message_id", param="leaf_id")
    chat = _conversations(request)
    if body.leaf_id is not None:
        await chat.select_branch(user.id, conversation_id, body.leaf_id)
    else:
        assert body.message_id is not None
        await chat.select_version(user.id, conversation_id, body.message_id)
    return json_response(await chat.get(user.id, conversation_id))


# --- messages: answers streamed as SSE, generated independently of the connection -------


def _generations(request: Request) -> Generations:
    found: Generations = request.app.state.generations
    return found


def _sse(frames: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        frames,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _chat_caller(request: Request, user_id: str) -> Caller:
    """The user, billed and limited as themselves."""
    limits, tier = await services(request).accounts.users.billing(user_id)
    return Caller(
        user_id=user_id,
        ip=client_ip(request),
        principals=(Principal("user", user_id, limits),),
        user_tier=tier,
    )


@router.post("/{conversation_id}/messages")
async def send(conversation_id: str, request: Request) -> Response:
    """Append the user's message and stream the answer (``chat/generation.py`` documents
    the events). Leaving early does not stop the answer: it is saved when it ends."""
    user = (await chat_user(request)).user
    body: MessageSend = validated(MessageSend, await json_body(request))
    parts = user_parts(body.content)
    return await _answer(
        request,
        body.model,
        lambda caller: _generations(request).start(
            user.id,
            conversation_id,
            caller,
            content=parts,
            model=body.model,
            parent_id=body.parent_id,
        ),
        user.id,
    )


async def _answer(
    request: Request,
    model: str | None,
    begin: Callable[[Caller], Awaitable[Generation]],
    user_id: str,
) -> Response:
    """What every answering route does: refuse an unknown model before anything is
    written, start the generation as the user, stream it."""
    _check_model(request, model)
    generation = await begin(await _chat_caller(request, user_id))
    return _sse(generation.follow())


async def _running(request: Request, user_id: str, conversation_id: str, message_id: str) -> Any:
    generation = _generations(request).running(message_id)
    if generation is None or generation.owner_id != user_id:
        return None
    if generation.conversation_id != conversation_id:
        return None
    return generation


@router.get("/{conversation_id}/messages/{message_id}/stream")
async def reattach(conversation_id: str, message_id: str, request: Request) -> Response:
    """Follow an answer from its start: live while it is being generated, else the saved
    message as one delta."""
    user = (await chat_user(request)).user
    generation = await _running(request, user.id, conversation_id, message_id)
    if generation is not None:
        return _sse(generation.follow())
    try:
        saved = await _conversations(request).message(user.id, conversation_id, message_id)
    except NotFound:
        generations = _generations(request)
        if not await generations.elsewhere(user.id, conversation_id, message_id):
            raise
        return _sse(generations.follow_elsewhere(user.id, conversation_id, message_id))
    return _sse(_replayed(saved))


async def _replayed(message: dict[str, Any]) -> AsyncIterator[bytes]:
    text = text_of(message["content"])
    events = [
        {"type": "start", "user_message_id": message["parent_id"], "message_id": message["id"]},
        {"type": "delta", "content": text},
        {
            "type": "done",
            "status": message["status"],
            "user_message_id": message["parent_id"],
            "message_id": message["id"],
        },
    ]
    for event in events:
        yield sse_frame(event)


@router.post("/{conversation_id}/messages/{message_id}/stop")
async def stop(conversation_id: str, message_id: str, request: Request) -> Response:
    """Stop an answer being generated; what it had is saved, marked ``stopped``. An
    answer that already ended is returned as saved."""
    user = (await chat_user(request)).user
    generations = _generations(request)
    generation = await _running(request, user.id, conversation_id, message_id)
    if generation is not None:
        await generations.stop(generation)
    elif await generations.elsewhere(user.id, conversation_id, message_id):
        await generations.stop_elsewhere(user.id, message_id)
        async for _ in generations.follow_elsewhere(user.id, conversation_id, message_id):
            pass  # until its end: the answer is saved before its last frame is sent
    return json_response(
        await _conversations(request).message(user.id, conversation_id, message_id)
    )


@router.post("/{conversation_id}/messages/{message_id}/edit")
async def edit(conversation_id: str, message_id: str, request: Request) -> Response:
    """A new version of a user's message, as a sibling branch, answered as ``send`` is."""
    user = (await chat_user(request)).user
    body: MessageEdit = validated(MessageEdit, await json_body(request))
    parts = user_parts(body.content)
    return await _answer(
        request,
        body.model,
        lambda caller: _generations(request).edit(
            user.id,
            conversation_id,
            caller,
            message_id=message_id,
            content=parts,
            model=body.model,
        ),
        user.id,
    )


@router.post("/{conversation_id}/messages/{message_id}/regenerate")
async def regenerate(conversation_id: str, message_id: str, request: Request) -> Response:
    """Another answer to the same question (optionally another ``model``), as a sibling."""
    user = (await chat_user(request)).user
    body: Regenerate = validated(Regenerate, await json_body(request))
    return await _answer(
        request,
        body.model,
        lambda caller: _generations(request).regenerate(
            user.id, conversation_id, caller, message_id=message_id, model=body.model
        ),
        user.id,
    )


@router.post("/{conversation_id}/fork")
async def fork(conversation_id: str, request: Request) -> Response:
    """A new conversation from the branch ending at ``message_id``."""
    user = (await chat_user(request)).user
    body: Fork = validated(Fork, await json_body(request))
    forked = await _conversations(request).fork(user.id, conversation_id, body.message_id)
    return json_response(forked, 201)


def _check_model(request: Request, model: str | None) -> None:
    """404 for an unknown model before anything is written."""
    if model is not None:
        request.app.state.gateway.registry.group(model)


# --- share links ------------------------------------------------------------------------


@router.post("/{conversation_id}/shares")
async def share(conversation_id: str, request: Request) -> Response:
    """A read-only link to a snapshot of the branch; ``token`` is shown once."""
    user = (await chat_user(request)).user
    body: ShareCreate = validated(ShareCreate, await json_body(request))
    created, token = await services(request).shares.create(
        user.id,
        conversation_id,
        message_id=body.message_id,
        display_name=body.display_name,
        expires_in_days=body.expires_in_days,
    )
    return json_response({**created, "token": token, "path": f"/api/shared/{token}"}, 201)


@router.get("/{conversation_id}/shares")
async def list_shares(conversation_id: str, request: Request) -> Response:
    user = (await chat_user(request)).user
    rows = await services(request).shares.of(user.id, conversation_id)
    return json_response({"object": "list", "data": rows})


@router.delete("/{conversation_id}/shares/{share_id}")
async def revoke_share(conversation_id: str, share_id: str, request: Request) -> Response:
    user = (await chat_user(request)).user
    await services(request).shares.revoke(user.id, conversation_id, share_id)
    return Response(status_code=204)


search_router = APIRouter(prefix="/api/search", tags=["conversations"])


def _choice(raw: str | None, name: str, allowed: tuple[str, ...]) -> str | None:
    if raw is not None and raw not in allowed:
        raise InvalidRequest(f"{name} must be one of {', '.join(allowed)}", param=name)
    return raw


def _ms(raw: str | None, name: str) -> int | None:
    """A time filter: milliseconds since the epoch."""
    return None if raw is None else int_param(raw, name, 0, 0, 2**53)


@search_router.get("")
async def search(request: Request) -> Response:
    """Full-text search over the caller's own messages and titles (every word must match),
    best first, with a ``<mark>``-highlighted snippet (see ``store/search.py``); with
    semantic search configured, fused with the messages nearest in meaning unless
    ``mode=text``."""
    user = (await chat_user(request)).user
    q = request.query_params
    query = q.get("q", "").strip()
    if not query:
        raise InvalidRequest("q is required", param="q")
    if len(query) > 1000:
        raise InvalidRequest("q is longer than 1000 characters", param="q")
    limit = int_param(q.get("limit"), "limit", 20, 1, 100)
    mode = _choice(q.get("mode"), "mode", ("hybrid", "text")) or "hybrid"
    filters = Filters(
        conversation_id=q.get("conversation_id"),
        kind=_choice(q.get("kind"), "kind", ("message", "title")),
        role=_choice(q.get("role"), "role", ("user", "assistant")),
        since_ms=_ms(q.get("since"), "since"),
        until_ms=_ms(q.get("until"), "until"),
    )
    if filters.kind == "title" and filters.by_message:
        raise InvalidRequest("role, since and until filter messages, not titles", param="kind")
    results = await _conversations(request).search(
        user.id, query, limit=limit, mode=mode, filters=filters
    )
    return json_response({"object": "list", "results": results})


shared_router = APIRouter(prefix="/api/shared", tags=["conversations"])


@shared_router.get("/{token}")
async def open_shared(token: str, request: Request) -> Response:
    """Anyone with the link, no login: the snapshot and the sharer's display name only."""
    return json_response(await services(request).shares.open(token))
