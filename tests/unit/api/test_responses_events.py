"""Chat Completions chunks told as Responses events (``api/responses/events.py``) and
answers as Response objects (``render.py``), for the shapes no fake upstream produces:
parallel calls whose deltas interleave, a call with empty arguments, a length cut-off,
reasoning deltas."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from parley.api.responses.events import ChunkEvents, Sequencer
from parley.api.responses.render import envelope, from_completion
from parley.schema.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCall,
    FunctionDelta,
    ResponseMessage,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from parley.schema.responses import ResponsesRequest

REQUEST = ResponsesRequest(model="m", input="hi")


def _chunk(
    delta: Delta, finish: str | None = None, usage: Usage | None = None
) -> ChatCompletionChunk:
    return ChatCompletionChunk("c", 0, "m", [ChunkChoice(0, delta, finish)], usage=usage)


def _call(
    index: int, *, id: str | None = None, name: str | None = None, args: str | None = None
) -> Delta:
    function = FunctionDelta(name=name, arguments=args)
    return Delta(
        tool_calls=[
            ToolCallDelta(index=index, id=id, type="function" if id else None, function=function)
        ]
    )


def _run(
    chunks: list[ChatCompletionChunk], *, thinking_blocks: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The events ``chunks`` make, and the responses handed to be stored."""
    finished: list[dict[str, Any]] = []

    async def kept(response: dict[str, Any]) -> None:
        finished.append(response)

    async def source() -> AsyncIterator[ChatCompletionChunk]:
        for chunk in chunks:
            yield chunk

    async def collect() -> list[bytes]:
        start = envelope(REQUEST, "resp_1", store=True)
        writer = ChunkEvents(start, Sequencer(), kept, thinking_blocks=thinking_blocks)
        return [frame async for frame in writer.frames(source())]

    # An item may carry several events (those one chunk makes are written together).
    frames = [f for item in asyncio.run(collect()) for f in item.decode().split("\n\n") if f]
    events = []
    for frame in frames:
        head, data = frame.split("\n", 1)
        event = json.loads(data.removeprefix("data: "))
        assert head == f"event: {event['type']}"
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events, finished


def test_interleaved_parallel_calls_each_reassemble_exactly() -> None:
    """Deltas for two calls alternate; each goes to its own item, and each item's
    arguments are byte-equal to what its deltas carried (spaces and key order kept)."""
    chunks = [
        _chunk(_call(0, id="call_a", name="alpha", args="")),
        _chunk(_call(1, id="call_b", name="beta", args='{"x"')),
        _chunk(_call(0, args='{"q": ')),
        _chunk(_call(1, args=": 1, ")),
        _chunk(_call(0, args='"one"}')),
        _chunk(_call(1, args='"y":[2]}')),
        _chunk(Delta(), "tool_calls", Usage(3, 4, 7)),
    ]
    events, finished = _run(chunks)
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [(e["output_index"], e["item"]["call_id"]) for e in added] == [
        (0, "call_a"),
        (1, "call_b"),
    ]
    done = {e["item_id"]: e for e in events if e["type"] == "response.function_call_arguments.done"}
    by_call = {e["item"]["call_id"]: e["item"]["id"] for e in added}
    assert done[by_call["call_a"]]["arguments"] == '{"q": "one"}'
    assert done[by_call["call_b"]]["arguments"] == '{"x": 1, "y":[2]}'
    for item_id, event in done.items():
        deltas = [
            e["delta"]
            for e in events
            if e["type"] == "response.function_call_arguments.delta" and e["item_id"] == item_id
        ]
        assert "".join(deltas) == event["arguments"]
    final = events[-1]
    assert final["type"] == "response.completed"
    assert [item["arguments"] for item in final["response"]["output"]] == [
        '{"q": "one"}',
        '{"x": 1, "y":[2]}',
    ]
    assert final["response"]["usage"]["total_tokens"] == 7
    assert finished == [final["response"]]


def test_a_call_with_empty_arguments_is_an_item_with_empty_arguments() -> None:
    events, _ = _run([_chunk(_call(0, id="call_e", name="now")), _chunk(Delta(), "tool_calls")])
    assert not [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["arguments"] == ""
    assert done["name"] == "now"
    assert events[-1]["response"]["output"][0]["arguments"] == ""


def test_text_then_a_call_closes_the_message_item_first() -> None:
    events, _ = _run(
        [
            _chunk(Delta(role="assistant", content="Let me check. ")),
            _chunk(_call(0, id="call_t", name="look", args="{}")),
            _chunk(Delta(), "tool_calls"),
        ]
    )
    types = [e["type"] for e in events]
    assert types.index("response.output_item.done") < types.index(
        "response.function_call_arguments.delta"
    )
    output = events[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["message", "function_call"]
    assert output[0]["content"][0]["text"] == "Let me check. "


def test_length_cut_off_streams_response_incomplete() -> None:
    events, finished = _run([_chunk(Delta(content="cut")), _chunk(Delta(), "length")])
    final = events[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["status"] == "incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["response"]["output"][0]["status"] == "incomplete"
    assert finished[0]["status"] == "incomplete"


def test_reasoning_deltas_become_a_reasoning_item_before_the_message() -> None:
    events, _ = _run(
        [
            _chunk(Delta(reasoning_content="think ")),
            _chunk(Delta(reasoning_content="hard")),
            _chunk(Delta(content="answer")),
            _chunk(Delta(), "stop"),
        ]
    )
    reasoning = [e["delta"] for e in events if e["type"] == "response.reasoning_text.delta"]
    assert reasoning == ["think ", "hard"]
    output = events[-1]["response"]["output"]
    assert output[0]["type"] == "reasoning"
    assert output[0]["content"] == [{"type": "reasoning_text", "text": "think hard"}]
    assert output[1]["content"][0]["text"] == "answer"


def _completion(
    message: ResponseMessage, finish: str, usage: Usage | None = None
) -> ChatCompletion:
    return ChatCompletion("c", 0, "m", [Choice(0, message, finish)], usage=usage)


def test_completion_usage_details_and_cut_offs_map_to_the_response() -> None:
    usage = Usage(
        10,
        5,
        15,
        prompt_tokens_details={"cached_tokens": 4},
        completion_tokens_details={"reasoning_tokens": 2},
    )
    response = from_completion(
        REQUEST,
        _completion(ResponseMessage(content="partial"), "length", usage),
        "resp_x",
        store=False,
    )
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 15,
    }
    filtered = from_completion(
        REQUEST, _completion(ResponseMessage(content=""), "content_filter"), "resp_y", store=False
    )
    assert filtered["incomplete_details"] == {"reason": "content_filter"}


def test_parallel_tool_calls_in_a_completion_are_one_item_each() -> None:
    calls = [
        ToolCall("call_1", FunctionCall("a", '{"k": 1}')),
        ToolCall("call_2", FunctionCall("b", "")),
    ]
    response = from_completion(
        REQUEST, _completion(ResponseMessage(tool_calls=calls), "tool_calls"), "r", store=True
    )
    items = response["output"]
    assert [(i["type"], i["call_id"], i["arguments"]) for i in items] == [
        ("function_call", "call_1", '{"k": 1}'),
        ("function_call", "call_2", ""),
    ]
    assert response["status"] == "completed"


def test_a_text_stream_is_one_item_per_chunk_with_events_in_openai_shape() -> None:
    """The events one chunk makes go out together (one write per chunk); the pre-encoded
    ones (the envelope events, text deltas) read exactly as the dict-built ones would."""
    chunks = [
        _chunk(Delta(role="assistant", content="Hel")),
        _chunk(Delta(content="lo")),
        _chunk(Delta(), "stop", Usage(3, 2, 5)),
    ]
    start = envelope(REQUEST, "resp_1", store=True)
    expected_envelope = json.loads(json.dumps(start))

    async def kept(response: dict[str, Any]) -> None:
        return None

    async def source() -> AsyncIterator[ChatCompletionChunk]:
        for chunk in chunks:
            yield chunk

    async def collect() -> list[bytes]:
        return [item async for item in ChunkEvents(start, Sequencer(), kept).frames(source())]

    items = asyncio.run(collect())
    assert len(items) == 4  # the start, one per content chunk, the end
    events = [
        json.loads(frame.split("\n", 1)[1].removeprefix("data: "))
        for item in items
        for frame in item.decode().split("\n\n")
        if frame
    ]
    created, in_progress, _added, _part, first, second = events[:6]
    assert list(created) == ["type", "response", "sequence_number"]
    assert created["response"] == expected_envelope
    assert in_progress == {
        "type": "response.in_progress",
        "response": expected_envelope,
        "sequence_number": 1,
    }
    assert list(first) == [
        "type",
        "item_id",
        "output_index",
        "content_index",
        "delta",
        "logprobs",
        "sequence_number",
    ]
    assert first["type"] == "response.output_text.delta"
    assert (first["delta"], second["delta"]) == ("Hel", "lo")
    assert first["item_id"] == second["item_id"] == _added["item"]["id"]
    assert (first["output_index"], first["content_index"], first["logprobs"]) == (0, 0, [])
    assert [e["type"] for e in events[-4:]] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
