"""Anthropic's Messages API: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

Claude clients (the Anthropic SDKs, Claude Code) call these with ``x-api-key`` (or a
bearer token) holding a Parley key, and ``anthropic-version``, which is accepted whatever
its value (Parley answers in the 2023-06-01 shape every version shares). The body is
validated, translated to the canonical ``ChatRequest`` (``messages_in.py``) and sent
through the same gateway as ``/v1/chat/completions``: the same key, limit, budget, cache,
routing and fallback; ``drop_params`` decides what a deployment cannot honour exactly as
there. Answers and every error are rendered in Anthropic's shapes (``messages_out.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from parley.api.deps import api_caller, call_options, request_id
from parley.api.messages_in import beta_flags, count_request, to_chat_request
from parley.api.messages_out import EventStream, error_event, render_error, render_message
from parley.api.openai import decode_body, warning_headers
from parley.api.sse import SSEResponse
from parley.errors import ModelNotFound, ParleyError
from parley.gateway.accounting import tokens
from parley.gateway.accounting.caller import Caller
from parley.gateway.pipeline import Gateway
from parley.schema.chat import ChatRequest
from parley.schema.messages import decode_count_tokens_request, decode_messages_request

router = APIRouter(prefix="/v1", tags=["anthropic"])
_JSON = "application/json"


@router.post("/messages")
async def messages(request: Request) -> Response:
    try:
        return await _messages(request)
    except ParleyError as exc:
        return render_error(exc)


async def _messages(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    caller = await api_caller(request)
    body, extra = await decode_body(request, decode_messages_request)
    chat = to_chat_request(body, beta_flags(request.headers.get("anthropic-beta")), extra)
    if chat.stream:
        return _stream(chat, gateway, request, caller)
    outcome = await gateway.chat(chat, caller, request_id(request), call_options(request, caller))
    return Response(
        msgspec.json.encode(render_message(outcome.completion, outcome.deployment)),
        media_type=_JSON,
        headers=warning_headers(outcome.deployment, outcome.dropped, outcome.headers),
    )


@dataclass(slots=True)
class _Opened:
    chunks: AsyncIterator[bytes]
    headers: dict[str, str]


def _stream(chat: ChatRequest, gateway: Gateway, request: Request, caller: Caller) -> Response:
    rid = request_id(request)
    options = call_options(request, caller)

    @contextlib.asynccontextmanager
    async def opener() -> AsyncIterator[_Opened]:
        async with gateway.chat_stream(chat, caller, rid, options) as outcome:
            headers = warning_headers(outcome.deployment, outcome.dropped, outcome.headers)
            yield _Opened(EventStream(outcome.chunks, chat.model).events(), headers)

    return SSEResponse(
        opener,
        keepalive=request.app.state.settings.stream_keepalive_seconds,
        render_error=render_error,
        done=b"",
        render_error_event=error_event,
    )


@router.post("/messages/count_tokens")
async def count_tokens(request: Request) -> Response:
    """Parley's own estimate (the tokenizer it counts with everywhere: cl100k, offline):
    no upstream is called, and no limit or budget is spent."""
    try:
        caller = await api_caller(request)
        body = await decode_body(request, decode_count_tokens_request)
        chat = count_request(body)
        gateway: Gateway = request.app.state.gateway
        if not gateway.selector.is_virtual(chat.model):
            name = gateway.registry.group(chat.model).name
            if not caller.may_use(name):
                raise ModelNotFound(
                    f"The model {chat.model!r} does not exist or you do not have access to it.",
                    param="model",
                )
        counted = {"input_tokens": tokens.count_prompt(chat)}
        return Response(msgspec.json.encode(counted), media_type=_JSON)
    except ParleyError as exc:
        return render_error(exc)
