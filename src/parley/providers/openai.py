"""OpenAI Chat Completions and Embeddings: Parley's own types are this wire format.

The adapter's work is small: point at the deployment's model, always ask upstream for
usage in streams (so accounting never has to guess), and validate what comes back
(filling the ids, times and indexes some compatible servers leave out: ``openai_fill``).
Azure and OpenAI-compatible servers reuse it with other URLs and headers.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from parley.config.loader import Deployment
from parley.errors import InvalidRequest, UpstreamProtocolError, UpstreamStatusError
from parley.providers.base import (
    ChunkStream,
    check_response,
    check_stream,
    json_body,
    raise_for_status,
    stream_ended_early,
    unexpected,
)
from parley.providers.http import StreamingResponse, UpstreamClient
from parley.providers.openai_fill import Fallback, decode_filled
from parley.providers.sse import iter_data, iter_sse
from parley.schema.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    EmbeddingRequest,
    EmbeddingResult,
    FilePart,
    Message,
    StreamOptions,
    ToolMessage,
)

_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})
_chunk_decoder = msgspec.json.Decoder(ChatCompletionChunk)
_completion_decoder = msgspec.json.Decoder(ChatCompletion)


class OpenAIProvider:
    # OpenAI answers 400 for any parameter it does not document, top_k included.
    unsupported_params: frozenset[str] = frozenset({"top_k"})
    forwards_extra: bool = False
    native_protocol: str | None = None

    def __init__(self, deployment: Deployment, client: UpstreamClient) -> None:
        self.deployment = deployment
        self._client = client
        self._base = deployment.api_base

    # --- hooks Azure and compatible servers override ---------------------------------

    def _url(self, operation: str) -> str:
        return f"{self._base}/{operation}"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.deployment.extra_headers}
        if self.deployment.api_key is not None:
            headers["Authorization"] = f"Bearer {self.deployment.api_key.reveal()}"
        return headers

    def _chat_body(self, request: ChatRequest) -> bytes:
        if (
            request.protocol is not None
            or request.thinking is not None
            or request.anthropic_beta is not None
        ):
            request = openai_shape(request)
        extra = request.extra
        body = json_body(msgspec.structs.replace(request, model=self.deployment.model, extra=None))
        if not extra:
            return body
        # Fields Parley has no type for, spliced in at the top level as they came (the
        # params step let them through only for adapters that forward them).
        return body[:-1] + b"," + json_body(extra)[1:]

    # --- Provider ----------------------------------------------------------------------

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        request = msgspec.structs.replace(request, stream=False, stream_options=None)
        resp = await self._client.post(
            self._url("chat/completions"), self._headers(), self._chat_body(request)
        )
        raise_for_status(resp.status, resp.headers, resp.body, self._client.deployment)
        try:
            return decode_filled(
                resp.body, _completion_decoder, ChatCompletion, Fallback(self.deployment.model)
            )
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamProtocolError(
                f"upstream {self._client.deployment} sent an unexpected completion: {exc}",
                deployment=self._client.deployment,
            ) from exc

    @contextlib.asynccontextmanager
    async def open_stream(self, request: ChatRequest) -> AsyncIterator[ChunkStream]:
        request = msgspec.structs.replace(
            request, stream=True, stream_options=StreamOptions(include_usage=True)
        )
        async with self._client.open_stream(
            self._url("chat/completions"), self._headers(), self._chat_body(request)
        ) as upstream:
            await check_stream(upstream)
            yield self._chunks(upstream)

    async def _chunks(self, upstream: StreamingResponse) -> ChunkStream:
        fallback = Fallback(self.deployment.model)
        async for data in iter_data(upstream.chunks()):
            if data == b"[DONE]":
                return
            try:
                yield decode_filled(data, _chunk_decoder, ChatCompletionChunk, fallback)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise _stream_error(data.decode(errors="replace"), upstream.deployment) from exc
        raise stream_ended_early(upstream.deployment)

    # --- Responses API pass-through (``POST /v1/responses`` to OpenAI itself) -----------

    speaks_responses: bool = True
    """OpenAI serves ``/v1/responses``; Azure and compatible servers are sent Chat
    Completions instead (their subclasses say False)."""

    async def respond(self, body: dict[str, Any]) -> dict[str, Any]:
        """A Responses request sent as it came (model set to the deployment's); the
        Response object as OpenAI answered it."""
        payload = {**body, "model": self.deployment.model, "stream": False}
        resp = await self._client.post(self._url("responses"), self._headers(), json_body(payload))
        data = check_response(resp, self._client.deployment)
        with unexpected(self._client.deployment, "an unexpected response object"):
            if not isinstance(data, dict) or data.get("object") != "response":
                raise ValueError("not a response object")
            return data

    @contextlib.asynccontextmanager
    async def open_responses(self, body: dict[str, Any]) -> AsyncIterator[AsyncIterator[Any]]:
        """The Responses event stream, each event decoded (a JSON object with ``type``)."""
        payload = {**body, "model": self.deployment.model, "stream": True}
        async with self._client.open_stream(
            self._url("responses"), self._headers(), json_body(payload)
        ) as upstream:
            await check_stream(upstream)
            yield self._events(upstream)

    async def _events(self, upstream: StreamingResponse) -> AsyncIterator[Any]:
        async for event in iter_sse(upstream.lines()):
            try:
                data = msgspec.json.decode(event.data)
            except msgspec.DecodeError as exc:
                raise _stream_error(event.data, upstream.deployment) from exc
            if not isinstance(data, dict) or not isinstance(data.get("type"), str):
                raise _stream_error(event.data, upstream.deployment)
            yield data
            if data["type"] in _FINAL_EVENTS:
                return
        raise stream_ended_early(upstream.deployment)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        payload: dict[str, Any] = {
            "model": self.deployment.model,
            "input": request.input,
            "encoding_format": "float",
        }
        if request.dimensions is not None:
            payload["dimensions"] = request.dimensions
        if request.user is not None:
            payload["user"] = request.user
        resp = await self._client.post(self._url("embeddings"), self._headers(), json_body(payload))
        data = check_response(resp, self._client.deployment)
        with unexpected(self._client.deployment, "unexpected embeddings"):
            rows = sorted(data["data"], key=lambda row: row["index"])
            vectors = [list(map(float, row["embedding"])) for row in rows]
            usage = data.get("usage") or {}
            return EmbeddingResult(
                vectors, str(data.get("model", self.deployment.model)), usage.get("prompt_tokens")
            )


def reasoning_effort_for(budget: int) -> str:
    """A thinking budget as ``reasoning_effort``: the inverse of Anthropic's table
    (``providers/thinking.py: REASONING_BUDGETS``), so a round trip keeps the level."""
    if budget < 4096:
        return "low"
    return "medium" if budget < 16384 else "high"


def openai_shape(request: ChatRequest) -> ChatRequest:
    """What an OpenAI-format upstream can take of a request that came through another
    protocol or carries Anthropic's fields: ``thinking`` becomes ``reasoning_effort``
    (unless the client set that too); cache breakpoints, thinking blocks, ``is_error`` and
    beta flags are left out (OpenAI caches prompts by itself and cannot verify another
    provider's reasoning signatures). Only such requests pay for this copy."""
    effort = request.reasoning_effort
    thinking = request.thinking
    if effort is None and thinking is not None and thinking.type == "enabled":
        effort = reasoning_effort_for(thinking.budget_tokens or 1024)
    return msgspec.structs.replace(
        request,
        messages=[_plain_message(m) for m in request.messages],
        tools=[msgspec.structs.replace(t, cache_control=None) for t in request.tools]
        if request.tools
        else request.tools,
        reasoning_effort=effort,
        thinking=None,
        anthropic_beta=None,
        protocol=None,
    )


def _plain_message(message: Message) -> Message:
    if isinstance(message, AssistantMessage):
        content = message.content
        if isinstance(content, list):
            content = [_plain_part(p) for p in content]
        return msgspec.structs.replace(message, content=content, thinking_blocks=None)
    if isinstance(message, ToolMessage):
        content = message.content
        if isinstance(content, list):
            content = [_plain_part(p) for p in content]
        return msgspec.structs.replace(message, content=content, is_error=None, cache_control=None)
    if isinstance(message.content, list):
        parts: Any = [_plain_part(p) for p in message.content]
        return msgspec.structs.replace(message, content=parts)
    return message


def _plain_part(part: Any) -> Any:
    """A content part without the fields OpenAI does not take."""
    if isinstance(part, FilePart):
        file = part.file
        plain = msgspec.structs.replace(part, cache_control=None, title=None, context=None)
        if file.url is not None:  # OpenAI's file part has no URL form
            raise InvalidRequest(
                "a document by URL cannot be sent to an OpenAI-format upstream; send it inline",
                param="file",
            )
        return plain
    if part.cache_control is None:
        return part
    return msgspec.structs.replace(part, cache_control=None)


def _stream_error(data: str, deployment: str) -> Exception:
    """An undecodable chunk is either the upstream reporting an error in-band or garbage."""
    try:
        parsed = msgspec.json.decode(data)
    except msgspec.DecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        error = parsed["error"]
        return UpstreamStatusError(
            502,
            f"upstream {deployment} failed mid-stream: {error.get('message', '')}",
            deployment=deployment,
            error_type=str(error.get("type") or "upstream_error"),
        )
    return UpstreamProtocolError(
        f"upstream {deployment} sent a malformed stream chunk", deployment=deployment
    )
