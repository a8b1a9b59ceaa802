"""Parley's canonical answers in Anthropic's Messages shape: a ``message`` object, the
stream's event sequence, and Anthropic's error envelope.

``finish_reason`` becomes ``stop_reason`` (``STOP_REASONS``; a stop sequence the upstream
named is ``stop_sequence``); usage is split back into Anthropic's counts (its
``input_tokens`` leaves out cache reads and writes, which get their own fields).

The stream is rebuilt from canonical chunks: one content block per run of text, of
thinking (closed by its signature) and per tool call, each opened by
``content_block_start`` and ended by ``content_block_stop``. Tool-call argument pieces are
sent as ``input_json_delta`` exactly as the upstream split them, so the JSON a client
reassembles is byte-equal to what the upstream produced; tool blocks stay open until the
answer ends, so calls an upstream interleaves keep their own pieces apart.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.responses import Response

from parley.errors import (
    AuthenticationFailed,
    Overloaded,
    ParleyError,
    PermissionDenied,
    UpstreamProtocolError,
    UpstreamStatusError,
)
from parley.observability.logging import get_logger
from parley.observability.redact import redactor
from parley.providers.base import ChunkStream
from parley.schema.chat import ChatCompletion, ChatCompletionChunk, Usage

log = get_logger(__name__)
_encode = msgspec.json.Encoder().encode

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
"""Chat Completions' ``finish_reason`` -> Anthropic's ``stop_reason``."""

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""Anthropic's error types by HTTP status (its errors page); other 5xx are ``api_error``."""
_KNOWN_TYPES = frozenset(ERROR_TYPES.values())
OVERLOADED_STATUS = 529
"""Anthropic's status for "overloaded": Parley's own load shedding answers with it here, so
Anthropic clients back off and retry as they would against Anthropic."""


def message_id(completion_id: str) -> str:
    return completion_id if completion_id.startswith("msg_") else f"msg_{completion_id}"


def stop_reason(finish: str | None, stop_sequence: object) -> str | None:
    if finish is None:
        return None
    if isinstance(stop_sequence, str) and finish == "stop":
        return "stop_sequence"
    return STOP_REASONS.get(finish, "end_turn")


def usage_of(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
    read, written = usage.cached_tokens, usage.cache_creation_tokens
    return {
        "input_tokens": max(0, usage.prompt_tokens - read - written),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
    }


def tool_input(arguments: str, deployment: str) -> Any:
    """A whole call's arguments as the object Anthropic's ``input`` is."""
    if not arguments.strip():
        return {}
    try:
        value = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        value = None
    if not isinstance(value, dict):
        raise UpstreamProtocolError(
            f"upstream {deployment} sent tool-call arguments that are not a JSON object",
            deployment=deployment,
        )
    return value


def render_message(completion: ChatCompletion, deployment: str) -> dict[str, Any]:
    """A complete answer as Anthropic's ``message`` object: thinking first, then text, then
    tool calls (Anthropic's own order)."""
    choice = completion.choices[0] if completion.choices else None
    content: list[dict[str, Any]] = []
    finish: str | None = "stop"
    stop_sequence: object = None
    if choice is not None:
        message = choice.message
        finish = choice.finish_reason
        stop_sequence = choice.stop_sequence
        if isinstance(message.thinking_blocks, list):
            content += [msgspec.to_builtins(block) for block in message.thinking_blocks]
        elif isinstance(message.reasoning_content, str) and message.reasoning_content:
            content.append(
                {"type": "thinking", "thinking": message.reasoning_content, "signature": ""}
            )
        text = message.content or message.refusal
        if text or not (message.tool_calls or content):
            content.append({"type": "text", "text": text or ""})
        for call in message.tool_calls or []:
            content.append(
                {
                    "type": "tool_use",
                    "id": call.id,
                    "name": call.function.name,
                    "input": tool_input(call.function.arguments, deployment),
                }
            )
    return {
        "id": message_id(completion.id),
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": content,
        "stop_reason": stop_reason(finish, stop_sequence),
        "stop_sequence": stop_sequence if isinstance(stop_sequence, str) else None,
        "usage": usage_of(completion.usage),
    }


def event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(payload) + b"\n\n"


_PING = event("ping", {"type": "ping"})
_STOP = event("message_stop", {"type": "message_stop"})


class EventStream:
    """Canonical chunks in, Anthropic's stream events out (see the module docstring)."""

    def __init__(self, chunks: ChunkStream, model: str) -> None:
        self._chunks = chunks
        self._model = model
        self._next = 0
        self._current: tuple[int, str] | None = None  # the open text or thinking block
        self._tools: dict[int, int] = {}  # the call's index -> its block's index
        self._open: list[int] = []
        self._finish: str | None = None
        self._stop_sequence: object = None
        self._usage: Usage | None = None
        self._cost: dict[str, Any] | None = None

    async def events(self) -> AsyncIterator[bytes]:
        """One item per upstream chunk: the events a chunk makes (the first one's
        ``message_start``, ``ping`` and block start with its delta; the end's block stops,
        ``message_delta`` and ``message_stop``) go out together, as one write. Each item
        costs the SSE pump a queue hop and a send, far more than its bytes."""
        started = False
        async for chunk in self._chunks:
            frames: list[bytes] = []
            if not started:
                started = True
                frames += (self._message_start(chunk), _PING)
            if chunk.usage is not None:
                self._usage = chunk.usage
            if isinstance(chunk.parley, dict):
                self._cost = chunk.parley
            if chunk.choices:
                frames += self._choice(chunk)
            if frames:
                yield b"".join(frames)
        if not started:
            return
        frames = self._close_all()
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {
                "stop_reason": stop_reason(self._finish or "stop", self._stop_sequence),
                "stop_sequence": self._stop_sequence
                if isinstance(self._stop_sequence, str)
                else None,
            },
            "usage": usage_of(self._usage),
        }
        if self._cost is not None:
            # What x-parley-cost-usd says on a complete answer: a stream's headers leave
            # before its usage is known. Anthropic's SDKs keep unknown fields.
            delta["parley"] = self._cost
        frames += (event("message_delta", delta), _STOP)
        yield b"".join(frames)

    def _message_start(self, chunk: ChatCompletionChunk) -> bytes:
        message: dict[str, Any] = {
            "id": message_id(chunk.id or uuid.uuid4().hex),
            "type": "message",
            "role": "assistant",
            "model": chunk.model or self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_of(chunk.usage),
        }
        return event("message_start", {"type": "message_start", "message": message})

    def _choice(self, chunk: ChatCompletionChunk) -> list[bytes]:
        choice = chunk.choices[0]
        if choice.index != 0:
            return []  # /v1/messages asks for one answer
        delta = choice.delta
        frames: list[bytes] = []
        if delta.redacted_reasoning is not None:
            frames += self._close_current()
            index = self._start(
                frames, {"type": "redacted_thinking", "data": delta.redacted_reasoning}
            )
            frames += self._stop(index)
        if delta.reasoning_content:
            index = self._block(frames, "thinking")
            frames.append(
                _delta(index, {"type": "thinking_delta", "thinking": delta.reasoning_content})
            )
        if delta.reasoning_signature is not None:
            index = self._block(frames, "thinking")
            frames.append(
                _delta(index, {"type": "signature_delta", "signature": delta.reasoning_signature})
            )
            frames += self._close_current()  # the signature ends its thinking block
        if delta.content:
            index = self._block(frames, "text")
            frames.append(_delta(index, {"type": "text_delta", "text": delta.content}))
        for call in delta.tool_calls or ():
            known = self._tools.get(call.index)
            if known is not None:
                index = known
            else:
                frames += self._close_current()
                function = call.function
                block = {
                    "type": "tool_use",
                    "id": call.id or f"toolu_{uuid.uuid4().hex[:24]}",
                    "name": (function.name if function else None) or "",
                    "input": {},
                }
                index = self._tools[call.index] = self._start(frames, block)
            if call.function is not None and call.function.arguments:
                piece = {"type": "input_json_delta", "partial_json": call.function.arguments}
                frames.append(_delta(index, piece))
        if choice.finish_reason is not None:
            self._finish = choice.finish_reason
            self._stop_sequence = choice.stop_sequence
        return frames

    def _block(self, frames: list[bytes], kind: str) -> int:
        """The open block of this kind, or a new one (closing a text or thinking block of
        the other kind first)."""
        if self._current is not None and self._current[1] == kind:
            return self._current[0]
        frames += self._close_current()
        block: dict[str, Any] = (
            {"type": "text", "text": ""}
            if kind == "text"
            else {"type": "thinking", "thinking": "", "signature": ""}
        )
        index = self._start(frames, block)
        self._current = (index, kind)
        return index

    def _start(self, frames: list[bytes], block: dict[str, Any]) -> int:
        index = self._next
        self._next += 1
        self._open.append(index)
        frames.append(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
        )
        return index

    def _stop(self, index: int) -> list[bytes]:
        self._open.remove(index)
        return [event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _close_current(self) -> list[bytes]:
        if self._current is None:
            return []
        index = self._current[0]
        self._current = None
        return self._stop(index)

    def _close_all(self) -> list[bytes]:
        self._current = None
        frames: list[bytes] = []
        for index in sorted(self._open):
            frames += self._stop(index)
        return frames


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return event(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


# --- errors --------------------------------------------------------------------------------


def error_status_and_type(exc: ParleyError) -> tuple[int, str]:
    if isinstance(exc, Overloaded):
        return OVERLOADED_STATUS, "overloaded_error"
    if isinstance(exc, AuthenticationFailed):
        return 401, "authentication_error"
    if isinstance(exc, PermissionDenied):
        return 403, "permission_error"
    status = exc.status_code
    if isinstance(exc, UpstreamStatusError) and exc.error_type in _KNOWN_TYPES:
        return status, exc.error_type  # an Anthropic upstream's own type, kept
    return status, ERROR_TYPES.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )


def error_body(exc: ParleyError) -> dict[str, Any]:
    """Anthropic's envelope has no ``param``: the field a 400 is about leads the message,
    as Anthropic's own messages do (``messages.0.content: ...``)."""
    _, error_type = error_status_and_type(exc)
    message = exc.message
    if exc.param and exc.param not in message:
        message = f"{exc.param}: {message}"
    return {"type": "error", "error": {"type": error_type, "message": redactor.scrub(message)}}


def render_error(exc: ParleyError) -> Response:
    """An error before any answer, in Anthropic's envelope (``{"type": "error", ...}``)."""
    status, _ = error_status_and_type(exc)
    if status >= 500:
        log.warning("request failed", status=status, error=exc.message)
    return Response(
        _encode(error_body(exc)),
        status_code=status,
        media_type="application/json",
        headers=exc.headers,
    )


def error_event(exc: ParleyError) -> bytes:
    """An error after the stream began: Anthropic's ``error`` event."""
    return event("error", error_body(exc))
