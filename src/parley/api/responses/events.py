"""Responses streaming: Chat Completions chunks told as the Responses event sequence, an
OpenAI upstream's own events passed on, and the SSE response that carries either.

The sequence for a translated stream, as OpenAI sends it: ``response.created``,
``response.in_progress``, then per output item ``response.output_item.added``, for text
``response.content_part.added``, ``response.output_text.delta``...,
``response.output_text.done``, ``response.content_part.done`` (reasoning text the same
with ``response.reasoning_text.*``; thinking blocks as summary parts, below), for a
function call
``response.function_call_arguments.delta``... and ``.done``, then
``response.output_item.done``; last ``response.completed`` (or ``response.incomplete``
for a length cut-off). Every event carries a ``sequence_number`` from 0. A failure
mid-stream ends it with ``error`` and ``response.failed``.

Parallel function calls may arrive interleaved (deltas for calls 0 and 1 alternating):
each call is its own output item, open from its first delta to the end of the answer, and
each delta goes to its own item, so the reassembled arguments are exactly the upstream's.

Thinking blocks (Anthropic's, Claude's on Bedrock: ``ChunkEvents(thinking_blocks=True)``,
or any delta carrying a signature or a redacted block) are one reasoning item, as a
non-streamed answer has them: per block with text ``response.reasoning_summary_part.added``,
``response.reasoning_summary_text.delta``..., ``.done`` and
``response.reasoning_summary_part.done``; each signature closes its block, and
``response.output_item.done`` carries the blocks in ``encrypted_content``
(``reasoning.py``), which the item had not when it was added.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from parley.api.responses.reasoning import summary_part, thinking_item
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
from parley.schema.chat import Delta, ThinkingBlock, Usage

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
class _Thinking:
    """The open reasoning item of thinking blocks: its summary parts so far (one per
    block with text), the open part's pieces, and the blocks closed by their signatures."""

    output_index: int
    item_id: str
    parts: list[str] = field(default_factory=list)
    open: list[str] | None = None
    blocks: list[ThinkingBlock] = field(default_factory=list)
    delta_head: bytes = b""


@dataclass(slots=True)
class _Call:
    output_index: int
    item_id: str
    call_id: str
    name: str
    arguments: list[str] = field(default_factory=list)


class ChunkEvents:
    """One translated stream's state: which items are open, what each holds."""

    def __init__(
        self,
        response: dict[str, Any],
        seq: Sequencer,
        finished: Finished,
        *,
        thinking_blocks: bool = False,
    ) -> None:
        self.response = response
        self._seq = seq
        self._finished = finished
        self._thinking_blocks = thinking_blocks
        self._items: dict[int, dict[str, Any]] = {}
        self._next_index = 0
        self._content: _Content | _Thinking | None = None
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
                if (
                    delta.reasoning_content
                    or delta.reasoning_signature is not None
                    or delta.redacted_reasoning is not None
                ):
                    out += self._reasoning(delta)
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

    def _reasoning(self, delta: Delta) -> list[bytes]:
        if (
            self._thinking_blocks
            or isinstance(self._content, _Thinking)
            or delta.reasoning_signature is not None
            or delta.redacted_reasoning is not None
        ):
            return self._thinking(delta)
        return self._text("reasoning", delta.reasoning_content or "")

    def _thinking(self, delta: Delta) -> list[bytes]:
        """Thinking-block deltas: text into the open summary part (opened on the first
        piece), a signature closing the block, a redacted block whole."""
        frame = self._seq.frame
        out: list[bytes] = []
        item = self._content
        if not isinstance(item, _Thinking):
            out += self._close_content(False)
            item = self._content = _Thinking(self._index(), new_id("rs"))
            added = thinking_item(item.item_id, [], [], "in_progress")
            out.append(
                frame(
                    {
                        "type": "response.output_item.added",
                        "output_index": item.output_index,
                        "item": added,
                    }
                )
            )
        if delta.reasoning_content:
            if item.open is None:
                item.open = []
                where = self._summary_where(item, len(item.parts))
                item.delta_head = (
                    b'{"type":"response.reasoning_summary_text.delta","item_id":'
                    + _encode(item.item_id)
                    + b',"output_index":'
                    + str(item.output_index).encode()
                    + b',"summary_index":'
                    + str(len(item.parts)).encode()
                    + b',"delta":'
                )
                out.append(
                    frame(
                        {
                            "type": "response.reasoning_summary_part.added",
                            **where,
                            "part": summary_part(""),
                        }
                    )
                )
            item.open.append(delta.reasoning_content)
            out.append(
                self._seq.frame_raw(
                    b"response.reasoning_summary_text.delta",
                    item.delta_head + _encode(delta.reasoning_content),
                )
            )
        if delta.reasoning_signature is not None:
            text = self._close_part(item, out)
            item.blocks.append(
                ThinkingBlock("thinking", thinking=text, signature=delta.reasoning_signature)
            )
        if delta.redacted_reasoning is not None:
            self._close_part(item, out)
            item.blocks.append(ThinkingBlock("redacted_thinking", data=delta.redacted_reasoning))
        return out

    @staticmethod
    def _summary_where(item: _Thinking, index: int) -> dict[str, Any]:
        return {"item_id": item.item_id, "output_index": item.output_index, "summary_index": index}

    def _close_part(self, item: _Thinking, out: list[bytes]) -> str:
        """Close the open summary part, if any; its text (the block's)."""
        if item.open is None:
            return ""
        frame = self._seq.frame
        text = "".join(item.open)
        item.open = None
        where = self._summary_where(item, len(item.parts))
        item.parts.append(text)
        out.append(frame({"type": "response.reasoning_summary_text.done", **where, "text": text}))
        out.append(
            frame(
                {
                    "type": "response.reasoning_summary_part.done",
                    **where,
                    "part": summary_part(text),
                }
            )
        )
        return text

    def _close_thinking(self, item: _Thinking) -> list[bytes]:
        out: list[bytes] = []
        self._close_part(item, out)  # text whose signature never came: summary only
        done = thinking_item(item.item_id, item.parts, item.blocks, "completed")
        self._items[item.output_index] = done
        out.append(
            self._seq.frame(
                {
                    "type": "response.output_item.done",
                    "output_index": item.output_index,
                    "item": done,
                }
            )
        )
        return out

    def _text(self, kind: str, delta: str) -> list[bytes]:
        frame = self._seq.frame
        out: list[bytes] = []
        content = self._content
        if not isinstance(content, _Content) or content.kind != kind:
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
        if isinstance(content, _Thinking):
            return self._close_thinking(content)
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
