"""The OpenAI-compatible surface: ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models``.

Thin on purpose: decode and validate the body (msgspec, errors naming the JSON path),
hand it to the gateway, render the result. Bodies are read raw rather than through FastAPI's
pydantic models because this is the hot path and msgspec validates several times faster.
"""

from __future__ import annotations

import base64
import contextlib
import time
from array import array
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from parley.api.decode_errors import invalid_request
from parley.api.deps import api_caller, call_options, request_id
from parley.api.errors import render_parley_error
from parley.api.jsonbody import too_deep
from parley.api.sse import SSEResponse
from parley.errors import InvalidRequest, ModelNotFound
from parley.gateway.accounting.caller import Caller
from parley.gateway.pipeline import Gateway
from parley.gateway.registry import ModelRegistry
from parley.providers.base import ChunkStream
from parley.schema.chat import (
    ChatRequest,
    EmbeddingRequest,
    ModelCard,
    decode_chat_request,
    decode_embedding_request,
)

T = TypeVar("T")
router = APIRouter(prefix="/v1", tags=["openai"])
_JSON = "application/json"
NO_MODELS_HINT = (
    "No models are configured. Set OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or "
    "AZURE_OPENAI_API_KEY with AZURE_OPENAI_ENDPOINT, or start with --config FILE "
    "(see docs/configuration.md)."
)


def _gateway(request: Request) -> Gateway:
    # Not a FastAPI dependency on purpose: FastAPI runs sync dependencies in a thread pool,
    # a thread hop per request that the overhead benchmark showed.
    gateway: Gateway = request.app.state.gateway
    return gateway


async def decode_body(request: Request, decoder: Callable[[bytes], T]) -> T:
    """Read and validate the body; every failure becomes a 400 naming the bad field."""
    body = await request.body()
    if not body:
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        return decoder(body)
    except msgspec.MsgspecError as exc:
        raise invalid_request(exc) from None
    except RecursionError:  # nested past the decoder's stack
        raise too_deep(None) from None


def warning_headers(deployment: str, dropped: list[str], limits: dict[str, str]) -> dict[str, str]:
    headers = {"x-parley-deployment": deployment, **limits}
    if dropped:
        headers["x-parley-dropped-params"] = ",".join(dropped)
        headers["x-parley-warning"] = (
            f"dropped what {deployment} cannot honour: {', '.join(dropped)}"
        )
    return headers


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    gateway = _gateway(request)
    caller = await api_caller(request)
    chat = await decode_body(request, decode_chat_request)
    if chat.stream:
        return await _stream(chat, gateway, request, caller)
    outcome = await gateway.chat(chat, caller, request_id(request), call_options(request, caller))
    return Response(
        msgspec.json.encode(outcome.completion),
        media_type=_JSON,
        headers=warning_headers(outcome.deployment, outcome.dropped, outcome.headers),
    )


async def _stream(
    chat: ChatRequest, gateway: Gateway, request: Request, caller: Caller
) -> Response:
    rid = request_id(request)
    options = call_options(request, caller)

    @contextlib.asynccontextmanager
    async def opener() -> AsyncIterator[_Opened]:
        async with gateway.chat_stream(chat, caller, rid, options) as outcome:
            headers = warning_headers(outcome.deployment, outcome.dropped, outcome.headers)
            yield _Opened(outcome.chunks, headers)

    settings = request.app.state.settings
    return SSEResponse(
        opener, keepalive=settings.stream_keepalive_seconds, render_error=render_parley_error
    )


@dataclass(slots=True)
class _Opened:
    chunks: ChunkStream
    headers: dict[str, str]


@router.post("/embeddings")
async def embeddings(request: Request) -> Response:
    gateway = _gateway(request)
    caller = await api_caller(request)
    embedding = await decode_body(request, decode_embedding_request)
    outcome = await gateway.embed(
        embedding, caller, request_id(request), call_options(request, caller)
    )
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode_vector(vector, embedding)}
            for i, vector in enumerate(outcome.result.vectors)
        ],
        "model": outcome.result.model,
        "usage": {"prompt_tokens": outcome.prompt_tokens, "total_tokens": outcome.prompt_tokens},
    }
    return Response(
        msgspec.json.encode(body),
        media_type=_JSON,
        headers={"x-parley-deployment": outcome.deployment, **outcome.headers},
    )


def _encode_vector(vector: list[float], request: EmbeddingRequest) -> Any:
    if request.encoding_format == "base64":
        # OpenAI's base64 format: little-endian float32, which is what array('f') holds on
        # every platform Parley runs on.
        return base64.b64encode(array("f", vector).tobytes()).decode()
    return vector


def _card(name: str) -> ModelCard:
    return ModelCard(id=name, created=int(time.time()))


def model_names(request: Request) -> list[str]:
    """Every name a client may ask for: the model groups, then the tiered selectors."""
    registry: ModelRegistry = request.app.state.gateway.registry
    selector_names: list[str] = request.app.state.gateway.selector.names
    return [g.name for g in registry.groups] + selector_names


@router.get("/models")
async def list_models(request: Request) -> Response:
    caller = await api_caller(request)
    names = model_names(request)
    cards = [_card(name) for name in names if caller.may_use(name)]
    body: dict[str, Any] = {"object": "list", "data": cards}
    if not body["data"]:
        body["parley_hint"] = NO_MODELS_HINT
    return Response(msgspec.json.encode(body), media_type=_JSON)


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> Response:
    caller = await api_caller(request)
    registry: ModelRegistry = request.app.state.gateway.registry
    group = registry.group(model_id)
    if not caller.may_use(group.name):
        raise ModelNotFound(
            f"The model {model_id!r} does not exist or you do not have access to it.",
            param="model",
        )
    return Response(msgspec.json.encode(_card(group.name)), media_type=_JSON)
