"""ConverseStream's events, folded into OpenAI ``chat.completion.chunk``s.

The stream is AWS event-stream framing (``eventstream.py``); each event's ``:event-type``
names it and its payload is JSON: ``messageStart``, then per content block an optional
``contentBlockStart`` (tool calls: id and name), ``contentBlockDelta``s (``text``,
``toolUse.input`` as pieces of JSON text, ``reasoningContent``), ``contentBlockStop``;
then ``messageStop`` (``stopReason``) and ``metadata`` (``usage``). Tool-call pieces are
passed on as they came, so the client reassembles exactly the JSON Bedrock sent; a call
that got no input piece at all is given ``{}``, as OpenAI sends for a call without
arguments. The finish chunk waits for ``metadata`` so a stream broken in between never
shows a finish it did not reach. An exception message (``throttlingException``,
``modelStreamErrorException``, ...) ends the stream as an upstream error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley.errors import UpstreamProtocolError, UpstreamStatusError
from parley.observability.redact import redactor
from parley.providers import convert
from parley.providers.base import (
    ChunkStream,
    decode_json,
    new_completion_id,
    now,
    stream_ended_early,
)
from parley.providers.bedrock_convert import JSON_TOOL, finish_reason, usage_from
from parley.providers.eventstream import StreamMessage, iter_messages
from parley.providers.http import StreamingResponse
from parley.schema.chat import ChatCompletionChunk, Delta

_EXCEPTION_STATUS = {
    "throttlingException": 429,
    "validationException": 400,
    "serviceUnavailableException": 503,
    "internalServerException": 500,
    "modelStreamErrorException": 502,
}
"""A mid-stream exception's status, as its non-streamed twin has (a model failure: 502)."""


class StreamTranslator:
    def __init__(self, upstream: StreamingResponse, model: str, *, json_mode: bool) -> None:
        self._upstream = upstream
        self._model = model
        self._json_mode = json_mode
        self._id = new_completion_id()
        self._created = now()
        self._tool_index: dict[int, int] = {}
        """contentBlockIndex -> the OpenAI tool call's index."""
        self._without_input: set[int] = set()
        self._json_blocks: set[int] = set()
        self._finish: str | None = None

    def _chunk(self, delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
        return convert.chunk(self._id, self._created, self._model, delta, finish)

    async def chunks(self) -> ChunkStream:
        deployment = self._upstream.deployment
        async for message in iter_messages(self._upstream.chunks(), deployment):
            if message.message_type != "event":
                raise _stream_failure(message, deployment)
            data = decode_json(message.payload, deployment)
            if not isinstance(data, dict):
                raise UpstreamProtocolError(
                    f"upstream {deployment} sent a malformed {message.kind} event",
                    deployment=deployment,
                )
            try:
                if message.kind == "metadata":
                    if self._finish is None:
                        raise ValueError("metadata before messageStop")
                    usage = usage_from(data["usage"])
                    yield self._chunk(Delta(), self._finish)
                    yield convert.chunk(self._id, self._created, self._model, None, usage=usage)
                    return
                chunk = self._translate(message.kind, data)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise UpstreamProtocolError(
                    f"upstream {deployment} sent a malformed {message.kind} event",
                    deployment=deployment,
                ) from exc
            if chunk is not None:
                yield chunk
        if self._finish is None:
            raise stream_ended_early(deployment)
        yield self._chunk(Delta(), self._finish)  # complete, only its usage missing

    def _translate(self, kind: str, data: dict[str, Any]) -> ChatCompletionChunk | None:
        if kind == "messageStart":
            return self._chunk(Delta(role="assistant", content=""))
        if kind == "contentBlockStart":
            use = data["start"].get("toolUse")
            if use is None:
                return None
            index = int(data["contentBlockIndex"])
            if self._json_mode and use["name"] == JSON_TOOL:
                self._json_blocks.add(index)
                return None
            tool_index = len(self._tool_index)
            self._tool_index[index] = tool_index
            self._without_input.add(index)
            start = convert.tool_call_delta(
                tool_index, "", call_id=str(use["toolUseId"]), name=str(use["name"])
            )
            return self._chunk(Delta(tool_calls=[start]))
        if kind == "contentBlockDelta":
            return self._delta(int(data["contentBlockIndex"]), data["delta"])
        if kind == "contentBlockStop":
            index = int(data["contentBlockIndex"])
            if index in self._without_input:  # a call without arguments
                self._without_input.discard(index)
                empty = convert.tool_call_delta(self._tool_index[index], "{}")
                return self._chunk(Delta(tool_calls=[empty]))
            return None
        if kind == "messageStop":
            self._finish = finish_reason(data["stopReason"], has_calls=bool(self._tool_index))
            return None
        return None  # an event type newer than this translator

    def _delta(self, index: int, delta: Mapping[str, Any]) -> ChatCompletionChunk | None:
        if "text" in delta:
            return self._chunk(Delta(content=str(delta["text"])))
        if "toolUse" in delta:
            piece = str(delta["toolUse"]["input"])
            if index in self._json_blocks:
                return self._chunk(Delta(content=piece))
            self._without_input.discard(index)
            more = convert.tool_call_delta(self._tool_index[index], piece)
            return self._chunk(Delta(tool_calls=[more]))
        if "reasoningContent" in delta:
            text = delta["reasoningContent"].get("text")
            return self._chunk(Delta(reasoning_content=str(text))) if text else None
        return None  # citations, images: no Chat Completions counterpart


def _stream_failure(message: StreamMessage, deployment: str) -> UpstreamStatusError:
    """An ``exception`` (modelled: throttling, validation, model stream error...) or
    ``error`` message, as the upstream error it reports."""
    text = ""
    if message.message_type == "error":
        text = str(message.headers.get(":error-message") or "")
    else:
        try:
            data = decode_json(message.payload, deployment)
        except UpstreamProtocolError:
            data = None
        if isinstance(data, dict):
            text = str(data.get("message") or data.get("Message") or "")
    name = message.kind[:1].upper() + message.kind[1:]
    said = redactor.scrub(text) or "(no message)"
    return UpstreamStatusError(
        _EXCEPTION_STATUS.get(message.kind, 502),
        f"upstream {deployment} failed mid-stream: {name}: {said}",
        deployment=deployment,
        code=name,
    )
