"""Responses streaming: Chat Completions chunks told as the Responses event sequence, an
OpenAI upstream's own events passed on, and the SSE response that carries either.

The sequence for a translated stream, as OpenAI sends it: ``response.created``,
``response.in_progress``, then per output item ``response.output_item.added``, for text
``response.content_part.added``, ``response.output_text.delta``...,
``response.output_text.done``, ``response.content_part.done`` (reasoning the same with
``response.reasoning_text.*``), for a function call
``response.function_call_arguments.delta``... and ``.done``, then
``response.output_item.done``; last ``response.completed`` (or ``response.incomplete``
for a length cut-off). Every event carries a ``sequence_number`` from 0. A failure
mid-stream ends it with ``error`` and ``response.failed``.

Parallel function calls may arrive interleaved (deltas for calls 0 and 1 alternating):
each call is its own output item, open from its first delta to the end of the answer, and
each delta goes to its own item, so the reassembled arguments are exactly the upstream's.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from parley.api.responses.render import (
    call_item,
    finish,
    message_item,
    new_id,
    text_part,
    usage_of,
)
from parley.api.sse import SSEResponse
from parley.errors import ParleyError
from parley.observability.redact import redactor
from parley.providers.base import ChunkStream
from parley.schema.chat import Usage

Finished = Callable[[dict[str, Any]], Awaitable[None]]
_encode = msgspec.json.Encoder().encode


class Sequencer:
    """Numbers events and frames them as SSE (``event:`` names the type)."""

    def __init__(self) -> None:
        self.next = 0

    def frame(self, event: dict[str, Any]) -> bytes:
        event["sequence_number"] = self.next
        self.next += 1
        kind = str(event["type"]).encode()
        return b"event: " + kind + b"\ndata: " + _encode(event) + b"\n\n"

    def frame_raw(self, kind: bytes, fields: bytes) -> bytes:
        """``frame`` for an event already encoded: ``fields`` is its JSON object without
        the closing brace (the sequence number goes last, as ``frame`` puts it)."""
        number = self.next
        self.next += 1
        return (
            b"event: "
            + kind
            + b"\ndata: "
            + fields
            + b',"sequence_number":'
            + str(number).encode()
            + b"}\n\n"
        )

    def failure(self, exc: ParleyError, response: dict[str, Any] | None) -> bytes:
        body = exc.to_body()["error"]
        assert isinstance(body, dict)
        message = redactor.scrub(str(body["message"]))
        frames = self.frame(
            {
                "type": "error",
                "code": body.get("code") or body.get("type"),
                "message": message,
                "param": body.get("param"),
            }
        )
        if response is not None:
            failed = copy.copy(response)
            failed["status"] = "failed"
            failed["error"] = {"code": str(body.get("code") or "server_error"), "message": message}
            frames += self.frame({"type": "response.failed", "response": failed})
        return frames


@dataclass(slots=True)
class _Content:
    """The open reasoning or message item (one content part)."""

    kind: str  # "message" | "reasoning"
    output_index: int
    item_id: str
    text: list[str] = field(default_factory=list)
    delta_head: bytes = b""
    """A delta event's JSON up to its text: the same for every delta of this part."""


@dataclass(slots=True)
class _Call:
    output_index: int
    item_id: str
    call_id: str
    name: str
    arguments: list[str] = field(default_factory=list)


class ChunkEvents:
    """One translated stream's state: which items are open, what each holds."""

    def __init__(self, response: dict[str, Any], seq: Sequencer, finished: Finished) -> None:
        self.response = response
        self._seq = seq
        self._finished = finished
        self._items: dict[int, dict[str, Any]] = {}
        self._next_index = 0
        self._content: _Content | None = None
        self._calls: dict[int, _Call] = {}

    async def frames(self, chunks: ChunkStream) -> AsyncIterator[bytes]:
        frame = self._seq.frame
        # The events one chunk makes go out as one item (one queue hop, one send); the
        # envelope both first events carry is encoded once.
        body = _encode(self.response)
        raw = self._seq.frame_raw
        yield raw(b"response.created", _CREATED + body) + raw(
            b"response.in_progress", _IN_PROGRESS + body
        )
        finish_reason: str | None = None
        usage: Usage | None = None
        cost: dict[str, Any] | None = None
        async for chunk in chunks:
            if chunk.usage is not None:
                usage = chunk.usage
            if isinstance(chunk.parley, dict):
                cost = chunk.parley
            for choice in chunk.choices:
                if choice.index != 0:
                    continue
                delta = choice.delta
                out: list[bytes] = []
                if delta.reasoning_content:
                    out += self._text("reasoning", delta.reasoning_content)
                if delta.content:
                    out += self._text("message", delta.content)
                for call in delta.tool_calls or []:
                    out += self._call(call.index, call.id, call.function)
                if out:
                    yield b"".join(out)
                if choice.finish_reason is not None:
                    finish_reason = choice.finish_reason
        finish(self.response, finish_reason)
        incomplete = self.response["status"] == "incomplete"
        out = self._close_content(incomplete)
        for open_call in sorted(self._calls.values(), key=lambda c: c.output_index):
            out += self._close_call(open_call)
        self.response["output"] = [self._items[i] for i in sorted(self._items)]
        self.response["usage"] = usage_of(usage)
        try:
            await self._finished(self.response)
        except ParleyError:
            yield b"".join(out)  # numbered already: the error event must follow them
            raise
        kind = "response.incomplete" if incomplete else "response.completed"
        terminal: dict[str, Any] = {"type": kind, "response": self.response}
        if cost is not None:
            # What x-parley-cost-usd says on a complete answer (a stream's headers leave
            # before its usage is known); beside the response, so the stored one stays
            # OpenAI's shape. OpenAI's SDKs keep unknown fields.
            terminal["parley"] = cost
        out.append(frame(terminal))
        yield b"".join(out)

    def _index(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    def _text(self, kind: str, delta: str) -> list[bytes]:
        frame = self._seq.frame
        out: list[bytes] = []
        content = self._content
        if content is None or content.kind != kind:
            out += self._close_content(False)
            content = self._content = _Content(kind, self._index(), new_id(_PREFIX[kind]))
            content.delta_head = (
                b'{"type":"'
                + _DELTA[kind].encode()
                + b'","item_id":'
                + _encode(content.item_id)
                + b',"output_index":'
                + str(content.output_index).encode()
                + b',"content_index":0,"delta":'
            )
            out.append(
                frame(
                    {
                        "type": "response.output_item.added",
                        "output_index": content.output_index,
                        "item": self._content_item(content, "in_progress", ""),
                    }
                )
            )
            out.append(
                frame(
                    {
                        "type": "response.content_part.added",
                        "item_id": content.item_id,
                        "output_index": content.output_index,
                        "content_index": 0,
                        "part": _part(kind, ""),
                    }
                )
            )
        content.text.append(delta)
        fields = content.delta_head + _encode(delta)
        if kind == "message":
            fields += b',"logprobs":[]'
        out.append(self._seq.frame_raw(_DELTA_KIND[kind], fields))
        return out

    @staticmethod
    def _content_item(content: _Content, status: str, text: str | None) -> dict[str, Any]:
        if content.kind == "reasoning":
            parts = [] if text is None or status == "in_progress" else [_part("reasoning", text)]
            return {
                "type": "reasoning",
                "id": content.item_id,
                "summary": [],
                "content": parts,
                "status": status,
            }
        parts = [] if status == "in_progress" else [_part("message", text or "")]
        return message_item(content.item_id, status, parts)

    def _close_content(self, incomplete: bool) -> list[bytes]:
        content, self._content = self._content, None
        if content is None:
            return []
        frame = self._seq.frame
        text = "".join(content.text)
        done: dict[str, Any] = {
            "type": _DONE[content.kind],
            "item_id": content.item_id,
            "output_index": content.output_index,
            "content_index": 0,
            "text": text,
        }
        if content.kind == "message":
            done["logprobs"] = []
        status = "incomplete" if incomplete and content.kind == "message" else "completed"
        item = self._content_item(content, status, text)
        self._items[content.output_index] = item
        return [
            frame(done),
            frame(
                {
                    "type": "response.content_part.done",
                    "item_id": content.item_id,
                    "output_index": content.output_index,
                    "content_index": 0,
                    "part": _part(content.kind, text),
                }
            ),
            frame(
                {
                    "type": "response.output_item.done",
                    "output_index": content.output_index,
                    "item": item,
                }
            ),
        ]

    def _call(self, index: int, call_id: str | None, function: Any) -> list[bytes]:
        frame = self._seq.frame
        out: list[bytes] = []
        call = self._calls.get(index)
        if call is None:
            out += self._close_content(False)
            name = (function.name if function is not None else None) or ""
            call = _Call(self._index(), new_id("fc"), call_id or new_id("call"), name)
            self._calls[index] = call
            out.append(
                frame(
                    {
                        "type": "response.output_item.added",
                        "output_index": call.output_index,
                        "item": call_item(call.item_id, call.call_id, name, "", "in_progress"),
                    }
                )
            )
        elif function is not None and function.name and not call.name:
            call.name = function.name
        arguments = function.arguments if function is not None else None
        if arguments:
            call.arguments.append(arguments)
            out.append(
                frame(
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": call.item_id,
                        "output_index": call.output_index,
                        "delta": arguments,
                    }
                )
            )
        return out

    def _close_call(self, call: _Call) -> list[bytes]:
        frame = self._seq.frame
        arguments = "".join(call.arguments)
        item = call_item(call.item_id, call.call_id, call.name, arguments, "completed")
        self._items[call.output_index] = item
        return [
            frame(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": call.item_id,
                    "output_index": call.output_index,
                    "name": call.name,
                    "arguments": arguments,
                }
            ),
            frame(
                {
                    "type": "response.output_item.done",
                    "output_index": call.output_index,
                    "item": item,
                }
            ),
        ]


_PREFIX = {"message": "msg", "reasoning": "rs"}
_DELTA = {"message": "response.output_text.delta", "reasoning": "response.reasoning_text.delta"}
_DELTA_KIND = {kind: name.encode() for kind, name in _DELTA.items()}
_CREATED = b'{"type":"response.created","response":'
_IN_PROGRESS = b'{"type":"response.in_progress","response":'
_DONE = {"message": "response.output_text.done", "reasoning": "response.reasoning_text.done"}


def _part(kind: str, text: str) -> dict[str, Any]:
    if kind == "reasoning":
        return {"type": "reasoning_text", "text": text}
    return text_part(text)


_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


async def passthrough_frames(
    events: AsyncIterator[dict[str, Any]],
    seq: Sequencer,
    rewrite: Callable[[dict[str, Any]], None],
    finished: Finished,
    holder: dict[str, Any],
) -> AsyncIterator[bytes]:
    """An OpenAI upstream's events, renumbered (so Parley's own ``error`` event continues
    the sequence) and with each response object made Parley's (``rewrite``: its id,
    ``store``, ``previous_response_id``). ``holder["response"]`` follows the latest
    response object, for ``response.failed`` after a break."""
    async for event in events:
        response = event.get("response")
        if isinstance(response, dict):
            rewrite(response)
            holder["response"] = response
            if event.get("type") in _TERMINAL:
                await finished(response)
        yield seq.frame(event)


def responses_sse(
    opener: Any,
    *,
    keepalive: float,
    render_error: Any,
    seq: Sequencer,
    current: Callable[[], dict[str, Any] | None],
) -> SSEResponse:
    """``SSEResponse`` with Responses framing: items are ready frames, the end is the
    terminal event itself (no ``[DONE]``), and a failure after the status was sent is an
    ``error`` event followed by ``response.failed``, numbered in sequence."""
    return SSEResponse(
        opener,
        keepalive=keepalive,
        render_error=render_error,
        done=b"",
        render_error_event=lambda error: seq.failure(error, current()),
    )


__all__ = ["ChunkEvents", "Sequencer", "passthrough_frames", "responses_sse"]
