"""ConverseStream's events, folded into OpenAI ``chat.completion.chunk``s.

The stream is AWS event-stream framing (``eventstream.py``); each event's ``:event-type``
names it and its payload is JSON: ``messageStart``, then per content block an optional
``contentBlockStart`` (tool calls: id and name), ``contentBlockDelta``s (``text``,
``toolUse.input`` as pieces of JSON text, ``reasoningContent``), ``contentBlockStop``;
then ``messageStop`` (``stopReason``) and ``metadata`` (``usage``, cache reads and writes
counted as ``usage_from`` counts them). Tool-call pieces are passed on as they came, so the
client reassembles exactly the JSON Bedrock sent; a call that got no input piece at all is
given ``{}``, as OpenAI sends for a call without arguments. Reasoning text is passed on as
``reasoning_content`` deltas; a reasoning block's signature (``reasoning_signature``) and
redacted content (``redacted_reasoning``) are held until the block stops and sent whole,
however many events carried them: downstream, a signature closes its thinking block, so a
piece of one would split it. The finish chunk waits for ``metadata`` so a stream broken in
between never shows a finish it did not reach. An exception message
(``throttlingException``, ``modelStreamErrorException``, ...) ends the stream as an
upstream error.
"""

from __future__ import annotations

import base64
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
        self._signatures: dict[int, list[str]] = {}
        """contentBlockIndex -> the pieces of its reasoning signature so far."""
        self._redacted: dict[int, list[bytes]] = {}
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
                translated = self._translate(message.kind, data)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:  # bad base64 too
                raise UpstreamProtocolError(
                    f"upstream {deployment} sent a malformed {message.kind} event",
                    deployment=deployment,
                ) from exc
            for chunk in translated:
                yield chunk
        if self._finish is None:
            raise stream_ended_early(deployment)
        yield self._chunk(Delta(), self._finish)  # complete, only its usage missing

    def _translate(self, kind: str, data: dict[str, Any]) -> list[ChatCompletionChunk]:
        if kind == "messageStart":
            return [self._chunk(Delta(role="assistant", content=""))]
        if kind == "contentBlockStart":
            use = data["start"].get("toolUse")
            if use is None:
                return []
            index = int(data["contentBlockIndex"])
            if self._json_mode and use["name"] == JSON_TOOL:
                self._json_blocks.add(index)
                return []
            tool_index = len(self._tool_index)
            self._tool_index[index] = tool_index
            self._without_input.add(index)
            start = convert.tool_call_delta(
                tool_index, "", call_id=str(use["toolUseId"]), name=str(use["name"])
            )
            return [self._chunk(Delta(tool_calls=[start]))]
        if kind == "contentBlockDelta":
            chunk = self._delta(int(data["contentBlockIndex"]), data["delta"])
            return [chunk] if chunk is not None else []
        if kind == "contentBlockStop":
            index = int(data["contentBlockIndex"])
            if index in self._without_input:  # a call without arguments
                self._without_input.discard(index)
                empty = convert.tool_call_delta(self._tool_index[index], "{}")
                return [self._chunk(Delta(tool_calls=[empty]))]
            return self._close_reasoning([index])
        if kind == "messageStop":
            self._finish = finish_reason(data["stopReason"], has_calls=bool(self._tool_index))
            # A reasoning block the stream never stopped still ends with its signature.
            return self._close_reasoning(sorted({*self._signatures, *self._redacted}))
        return []  # an event type newer than this translator

    def _close_reasoning(self, indices: list[int]) -> list[ChatCompletionChunk]:
        """The held signature or redacted content of these reasoning blocks, each whole."""
        chunks = []
        for index in indices:
            if (pieces := self._signatures.pop(index, None)) is not None:
                chunks.append(self._chunk(Delta(reasoning_signature="".join(pieces))))
            if (blobs := self._redacted.pop(index, None)) is not None:
                data = base64.b64encode(b"".join(blobs)).decode()
                chunks.append(self._chunk(Delta(redacted_reasoning=data)))
        return chunks

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
            reasoning = delta["reasoningContent"]
            if "signature" in reasoning:
                self._signatures.setdefault(index, []).append(str(reasoning["signature"]))
            elif "redactedContent" in reasoning:
                blob = base64.b64decode(str(reasoning["redactedContent"]), validate=True)
                self._redacted.setdefault(index, []).append(blob)
            elif reasoning.get("text"):
                return self._chunk(Delta(reasoning_content=str(reasoning["text"])))
            return None
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
