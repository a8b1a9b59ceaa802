"""The Messages translation's pure parts: stop reasons and usage both ways, the event stream
built from canonical chunks (interleaved tool calls, redacted thinking, signatures), and
Anthropic's error types and statuses for Parley's own errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from parley.api.messages_out import (
    EventStream,
    error_body,
    error_status_and_type,
    render_message,
    stop_reason,
    usage_of,
)
from parley.errors import (
    AuthenticationFailed,
    BudgetExceeded,
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    UpstreamStatusError,
    UpstreamTimeout,
)
from parley.providers import convert
from parley.providers.anthropic import anthropic_to_parley_completion, anthropic_usage
from parley.providers.base import ChunkStream
from parley.schema.chat import ChatCompletionChunk, Delta, Usage


@pytest.mark.parametrize(
    ("anthropic_reason", "finish", "back"),
    [
        ("end_turn", "stop", "end_turn"),
        ("max_tokens", "length", "max_tokens"),
        ("tool_use", "tool_calls", "tool_use"),
        ("refusal", "content_filter", "refusal"),
        ("stop_sequence", "stop", "stop_sequence"),
        ("pause_turn", "stop", "end_turn"),
    ],
)
def test_stop_reasons_both_ways(anthropic_reason: str, finish: str, back: str) -> None:
    content: list[dict[str, Any]] = [{"type": "text", "text": "hi"}]
    if anthropic_reason == "tool_use":
        content.append({"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}})
    data = {
        "id": "msg_1",
        "model": "claude",
        "content": content,
        "stop_reason": anthropic_reason,
        "stop_sequence": "END" if anthropic_reason == "stop_sequence" else None,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    completion = anthropic_to_parley_completion(data, json_mode=False)
    assert completion.choices[0].finish_reason == finish
    message = render_message(completion, "dep")
    assert message["stop_reason"] == back
    assert message["stop_sequence"] == ("END" if back == "stop_sequence" else None)
    assert message["id"] == "msg_1"


def test_openai_stop_sequence_is_unknown_so_end_turn() -> None:
    assert stop_reason("stop", None) == "end_turn"
    assert stop_reason(None, None) is None


def test_usage_round_trips_cache_counts() -> None:
    sent = {
        "input_tokens": 5,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 20,
        "output_tokens": 7,
    }
    usage = anthropic_usage(sent)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (125, 7, 132)
    assert (usage.cached_tokens, usage.cache_creation_tokens) == (100, 20)
    assert usage_of(usage) == sent
    openai_usage = Usage(50, 10, 60, prompt_tokens_details={"cached_tokens": 30})
    assert usage_of(openai_usage)["input_tokens"] == 20
    assert usage_of(openai_usage)["cache_read_input_tokens"] == 30


async def _chunks(deltas: list[tuple[Delta, str | None]]) -> ChunkStream:
    for delta, finish in deltas:
        yield convert.chunk("chatcmpl-1", 0, "m", delta, finish)
    yield convert.chunk("chatcmpl-1", 0, "m", None, usage=Usage(4, 3, 7))


def _events(deltas: list[tuple[Delta, str | None]]) -> list[dict[str, Any]]:
    async def collect() -> list[bytes]:
        return [frame async for frame in EventStream(_chunks(deltas), "m").events()]

    # An item may carry several events (those one chunk makes are written together).
    frames = [f for item in asyncio.run(collect()) for f in item.decode().split("\n\n") if f]
    events = []
    for frame in frames:
        name, data = frame.strip().split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert payload["type"] == name.removeprefix("event: ")
        events.append(payload)
    return events


def test_interleaved_tool_calls_keep_their_pieces_apart() -> None:
    deltas = [
        (Delta(role="assistant", content=""), None),
        (Delta(tool_calls=[convert.tool_call_delta(0, "", call_id="a", name="f")]), None),
        (Delta(tool_calls=[convert.tool_call_delta(1, "", call_id="b", name="g")]), None),
        (Delta(tool_calls=[convert.tool_call_delta(0, '{"x":')]), None),
        (Delta(tool_calls=[convert.tool_call_delta(1, '{"y":')]), None),
        (Delta(tool_calls=[convert.tool_call_delta(0, "1}")]), None),
        (Delta(tool_calls=[convert.tool_call_delta(1, "2}")]), None),
        (Delta(), "tool_calls"),
    ]
    events = _events(deltas)
    joined: dict[int, str] = {}
    for event in events:
        if event["type"] == "content_block_delta":
            joined[event["index"]] = joined.get(event["index"], "") + event["delta"]["partial_json"]
    assert joined == {0: '{"x":1}', 1: '{"y":2}'}
    stops = [e["index"] for e in events if e["type"] == "content_block_stop"]
    assert stops == [0, 1]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"]["output_tokens"] == 3
    assert events[0]["message"]["id"] == "msg_chatcmpl-1"


def test_thinking_blocks_end_at_their_signature() -> None:
    deltas = [
        (Delta(role="assistant", content=""), None),
        (Delta(redacted_reasoning="opaque"), None),
        (Delta(reasoning_content="first "), None),
        (Delta(reasoning_content="thought"), None),
        (Delta(reasoning_signature="sig1"), None),
        (Delta(reasoning_content="second"), None),
        (Delta(reasoning_signature="sig2"), None),
        (Delta(content="answer"), None),
        (Delta(), "stop"),
    ]
    events = _events(deltas)
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["redacted_thinking", "thinking", "thinking", "text"]
    kinds = [e["delta"]["type"] for e in events if e["type"] == "content_block_delta"]
    assert kinds == [
        "thinking_delta",
        "thinking_delta",
        "signature_delta",
        "thinking_delta",
        "signature_delta",
        "text_delta",
    ]
    opened = [e["type"] for e in events if e["type"].startswith("content_block_")]
    assert opened.count("content_block_start") == opened.count("content_block_stop") == 4


def test_a_stream_that_never_started_sends_nothing() -> None:
    async def empty() -> ChunkStream:
        return
        yield ChatCompletionChunk("x", 0, "m", [])  # pragma: no cover

    async def collect() -> list[bytes]:
        return [frame async for frame in EventStream(empty(), "m").events()]

    assert asyncio.run(collect()) == []


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (Overloaded("queue full", code="overloaded", retry_after=2), 529, "overloaded_error"),
        (AuthenticationFailed("no key"), 401, "authentication_error"),
        (BudgetExceeded("spent", code="budget_exceeded", retry_after=60), 429, "rate_limit_error"),
        (ModelNotFound("no such model", param="model"), 404, "not_found_error"),
        (InvalidRequest("bad", param="messages[0]"), 400, "invalid_request_error"),
        (UpstreamStatusError(529, "busy", error_type="overloaded_error"), 529, "overloaded_error"),
        (UpstreamStatusError(500, "oops", error_type="server_error"), 500, "api_error"),
        (UpstreamTimeout("slow"), 504, "timeout_error"),
    ],
)
def test_errors_get_anthropic_types(error: Exception, status: int, kind: str) -> None:
    assert isinstance(error, Exception)
    found = error_status_and_type(error)  # type: ignore[arg-type]
    assert found == (status, kind)


def test_error_message_names_the_field() -> None:
    body = error_body(InvalidRequest("must be an object", param="messages[0].content"))
    assert body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "messages[0].content: must be an object",
        },
    }
