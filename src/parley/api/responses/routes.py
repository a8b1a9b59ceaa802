"""``/v1/responses``: create (JSON or streamed), and read, delete and list the input of
stored responses.

A request is translated once (``translate.to_chat``) and handed to the gateway together
with the body as it came (``gateway/responses.py`` decides per deployment which one is
sent). ``previous_response_id`` is resolved here, from Parley's own store, so a
conversation continues on any provider: the stored response's input and output items are
put before the new input, and an OpenAI upstream is sent the whole conversation with
``store: false`` (the response ids a client sees are Parley's, never the upstream's).
Reasoning items Parley wrote (Claude's thinking, ``reasoning.py``) are kept in stored
output, so a continued conversation sends the signed thinking back to Claude, and are
left out of what an OpenAI upstream is sent, which could not decrypt them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from parley.api.decode_errors import invalid_request
from parley.api.deps import api_caller, call_options, request_id
from parley.api.errors import render_parley_error
from parley.api.jsonbody import too_deep
from parley.api.openai import warning_headers
from parley.api.responses.events import ChunkEvents, Sequencer, passthrough_frames, responses_sse
from parley.api.responses.reasoning import is_parleys_item
from parley.api.responses.render import envelope, from_completion, new_id
from parley.api.responses.translate import input_items, to_chat
from parley.errors import InvalidRequest, NotFound
from parley.gateway.accounting.caller import Caller
from parley.gateway.responses import ResponsesCalls, ResponsesJob
from parley.schema.responses import (
    RESPONSES_FIELDS,
    ResponsesRequest,
    decode_responses_request,
)
from parley.store.responses import ResponseArchive

router = APIRouter(prefix="/v1", tags=["responses"])
_JSON = "application/json"
_ID_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}
_DROPPED_HISTORY = frozenset(
    {
        # OpenAI's own tool calls: with store false upstream their ids mean nothing there,
        # and no other provider can read them.
        "web_search_call",
        "file_search_call",
        "computer_call",
        "code_interpreter_call",
        "image_generation_call",
        "mcp_list_tools",
        "mcp_call",
        "local_shell_call",
    }
)


def owner_of(caller: Caller) -> str:
    """Whose stored responses these are: the key, else the user, else the tier's one
    anonymous (or admin) caller."""
    if caller.key_id:
        return f"key:{caller.key_id}"
    if caller.user_id:
        return f"user:{caller.user_id}"
    return "admin" if caller.is_admin else "anonymous"


def _archive(request: Request) -> ResponseArchive:
    archive: ResponseArchive = request.app.state.services.stored_responses
    return archive


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", param="response_id")


async def _decode(request: Request) -> tuple[ResponsesRequest, dict[str, Any]]:
    body = await request.body()
    if not body:
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        return decode_responses_request(body)
    except msgspec.MsgspecError as exc:
        raise invalid_request(exc) from None
    except RecursionError:
        raise too_deep(None) from None


def _as_input(item: dict[str, Any]) -> dict[str, Any] | None:
    """An earlier answer's output item as the next request's input item (None: left out)."""
    kind = item.get("type")
    if kind in _DROPPED_HISTORY:
        return None
    if kind == "reasoning" and not item.get("encrypted_content"):
        return None  # without it, reasoning cannot be sent back (store is false upstream)
    return item


def _with_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items as stored and listed, in the shape OpenAI lists them: each with an id
    and a type, a message's string content as one text part."""
    out = []
    for item in items:
        kind = str(item.get("type", "message"))
        item = {"id": new_id(_ID_PREFIXES.get(kind, "item")), **item, "type": kind}  # noqa: PLW2901
        if kind == "message" and isinstance(item.get("content"), str):
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": part, "text": item["content"]}]
        out.append(item)
    return out


def _for_upstream(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items an OpenAI upstream (store false) accepts: no ids (nothing is stored there)
    except on reasoning items, which carry their encrypted content, and no statuses; no
    reasoning Parley wrote (Claude's thinking, which OpenAI could not decrypt)."""
    return [
        item
        if item.get("type") == "reasoning"
        else {k: v for k, v in item.items() if k not in ("id", "status")}
        for item in items
        if not is_parleys_item(item)
    ]


@dataclass(slots=True)
class _Prepared:
    request: ResponsesRequest
    job: ResponsesJob
    items: list[dict[str, Any]]
    """Every input item of this response (the conversation continued, then this input)."""
    store: bool
    response_id: str
    owner: str


async def _prepare(request: Request, caller: Caller) -> _Prepared:
    parsed, raw = await _decode(request)
    owner = owner_of(caller)
    settings = request.app.state.settings
    store = settings.responses_store_default if parsed.store is None else parsed.store
    history: list[dict[str, Any]] = []
    if parsed.previous_response_id is not None:
        previous = await _archive(request).get(owner, parsed.previous_response_id)
        if previous is None:
            raise InvalidRequest(
                f"Previous response with id '{parsed.previous_response_id}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        history = previous.input_items + [
            kept
            for item in previous.response.get("output") or []
            if isinstance(item, dict) and (kept := _as_input(item)) is not None
        ]
    items = _with_ids(history + input_items(parsed.input))
    translation = to_chat(parsed, items, history=len(history))
    upstream = {k: v for k, v in raw.items() if k != "previous_response_id"}
    upstream["store"] = False
    if history:
        upstream["input"] = _for_upstream(items)
    elif isinstance(raw.get("input"), list) and any(map(is_parleys_item, raw["input"])):
        upstream["input"] = [item for item in raw["input"] if not is_parleys_item(item)]
    problems = translation.problems + [
        InvalidRequest(f"parameter {name!r} is supported only by OpenAI deployments", param=name)
        for name in sorted(set(raw) - RESPONSES_FIELDS)
    ]
    job = ResponsesJob(translation.chat, upstream, problems)
    return _Prepared(parsed, job, items, store, new_id("resp"), owner)


def _rewrite(prepared: _Prepared) -> Any:
    def rewrite(response: dict[str, Any]) -> None:
        response["id"] = prepared.response_id
        response["store"] = prepared.store
        response["previous_response_id"] = prepared.request.previous_response_id

    return rewrite


async def _keep(request: Request, prepared: _Prepared, response: dict[str, Any]) -> None:
    if prepared.store and response.get("status") != "failed":
        await _archive(request).save(prepared.owner, response, prepared.items)


@router.post("/responses")
async def create_response(request: Request) -> Response:
    calls: ResponsesCalls = request.app.state.responses
    caller = await api_caller(request)
    prepared = await _prepare(request, caller)
    options = call_options(request, caller)
    if prepared.request.stream:
        return _stream(request, calls, caller, prepared)
    answer = await calls.respond(prepared.job, caller, request_id(request), options)
    if answer.completion is not None:
        response = from_completion(
            prepared.request, answer.completion, prepared.response_id, store=prepared.store
        )
    else:
        assert answer.passthrough is not None
        response = answer.passthrough
        _rewrite(prepared)(response)
    await _keep(request, prepared, response)
    return Response(
        msgspec.json.encode(response),
        media_type=_JSON,
        headers=warning_headers(answer.deployment, answer.dropped, answer.headers),
    )


@dataclass(slots=True)
class _Opened:
    chunks: AsyncIterator[bytes]
    headers: dict[str, str]


def _stream(
    request: Request, calls: ResponsesCalls, caller: Caller, prepared: _Prepared
) -> Response:
    rid = request_id(request)
    options = call_options(request, caller)
    seq = Sequencer()
    holder: dict[str, Any] = {}

    async def finished(response: dict[str, Any]) -> None:
        await _keep(request, prepared, response)

    @contextlib.asynccontextmanager
    async def opener() -> AsyncIterator[_Opened]:
        async with calls.respond_stream(prepared.job, caller, rid, options) as outcome:
            headers = warning_headers(outcome.deployment, outcome.dropped, outcome.headers)
            if outcome.events is not None:
                frames = passthrough_frames(
                    outcome.events, seq, _rewrite(prepared), finished, holder
                )
            else:
                assert outcome.chunks is not None
                start = envelope(prepared.request, prepared.response_id, store=prepared.store)
                holder["response"] = start
                writer = ChunkEvents(start, seq, finished, thinking_blocks=outcome.thinking_blocks)
                frames = writer.frames(outcome.chunks)
            yield _Opened(frames, headers)

    settings = request.app.state.settings
    return responses_sse(
        cast(Any, opener),
        keepalive=settings.stream_keepalive_seconds,
        render_error=render_parley_error,
        seq=seq,
        current=lambda: holder.get("response"),
    )


@router.get("/responses/{response_id}")
async def get_response(response_id: str, request: Request) -> Response:
    caller = await api_caller(request)
    stored = await _archive(request).get(owner_of(caller), response_id)
    if stored is None:
        raise _not_found(response_id)
    return Response(msgspec.json.encode(stored.response), media_type=_JSON)


@router.delete("/responses/{response_id}")
async def delete_response(response_id: str, request: Request) -> Response:
    caller = await api_caller(request)
    if not await _archive(request).delete(owner_of(caller), response_id):
        raise _not_found(response_id)
    body = {"id": response_id, "object": "response", "deleted": True}
    return Response(msgspec.json.encode(body), media_type=_JSON)


@router.get("/responses/{response_id}/input_items")
async def list_input_items(response_id: str, request: Request) -> Response:
    caller = await api_caller(request)
    query = request.query_params
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("Invalid value for 'order': expected asc or desc.", param="order")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise InvalidRequest("Invalid value for 'limit': an integer from 1 to 100.", param="limit")
    stored = await _archive(request).get(owner_of(caller), response_id)
    if stored is None:
        raise _not_found(response_id)
    items = list(stored.input_items)
    if order == "desc":
        items.reverse()
    after = query.get("after")
    if after is not None:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    body = {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": len(items) > limit,
    }
    return Response(msgspec.json.encode(body), media_type=_JSON)
