"""Streaming ``/v1/messages`` with the official ``anthropic`` SDK: Anthropic's event
sequence from every provider family's fake; streamed tool calls whose reassembled JSON is
byte-equal to what the upstream sent (many pieces, parallel calls interleaved, a call
without arguments); thinking with signatures surviving a tool loop through Anthropic and
Bedrock; prompt-cache breakpoints and cache usage through both; errors mid-stream as an
``error`` event."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from parley.testing.fake_upstream import FakeUpstream
from parley.testing.formats import signature_of
from parley.testing.scenario import example_for
from parley.testing.servers import FAMILIES as ALL_FAMILIES
from tests.conftest import ParleyFactory

FAMILIES = list(ALL_FAMILIES)  # anthropic, openai, azure, gemini, openai_compatible
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
CLOCK = {
    "name": "get_time",
    "description": "The time now",
    "input_schema": {"type": "object", "properties": {}},
}
TOOLS: list[Any] = [WEATHER, CLOCK]
THINKING: Any = {"type": "enabled", "budget_tokens": 2048}


def _sdk(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)


@pytest.fixture
def client(parley: ParleyFactory) -> Iterator[anthropic.Anthropic]:
    with _sdk(parley()) as sdk:
        yield sdk


def _events(url: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The raw SSE events of a streamed /v1/messages answer, as (event name, data)."""
    events: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream(
        "POST", url + "/v1/messages", json={**body, "stream": True}, timeout=10
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                assert name is not None, "every data line is a named event"
                events.append((name, json.loads(line.removeprefix("data: "))))
                name = None
    return events


@pytest.mark.parametrize("family", FAMILIES)
def test_streamed_text_in_anthropic_event_order(parley: ParleyFactory, family: str) -> None:
    events = _events(
        parley(),
        {"model": family, "max_tokens": 64, "messages": [{"role": "user", "content": "hi you"}]},
    )
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in events)
    assert names.count("content_block_start") == names.count("content_block_stop") == 1
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert text == "You said: hi you"
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] > 0
    assert delta["usage"]["input_tokens"] > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_sdk_stream_accumulates_the_message(client: anthropic.Anthropic, family: str) -> None:
    with client.messages.stream(
        model=family, max_tokens=64, messages=[{"role": "user", "content": "stream me"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "You said: stream me"
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("family", ["anthropic", "openai", "azure", "openai_compatible"])
def test_streamed_parallel_tool_calls_are_byte_equal(
    parley: ParleyFactory, fake: FakeUpstream, family: str
) -> None:
    """Many small pieces per call, two calls (interleaved by the OpenAI fake), one with no
    arguments: each call's pieces, joined, are exactly the JSON the upstream produced."""
    url = parley(directive="+parallel-tools+fine-args")
    body = {
        "model": family,
        "max_tokens": 128,
        "tools": TOOLS,
        "messages": [{"role": "user", "content": "Paris"}],
    }
    events = _events(url, body)
    starts = {
        data["index"]: data["content_block"]
        for name, data in events
        if name == "content_block_start"
    }
    pieces: dict[int, list[str]] = defaultdict(list)
    for name, data in events:
        if name == "content_block_delta":
            assert data["delta"]["type"] == "input_json_delta"
            pieces[data["index"]].append(data["delta"]["partial_json"])
    assert [block["name"] for block in starts.values()] == ["get_weather", "get_time"]
    assert all(block["type"] == "tool_use" and block["input"] == {} for block in starts.values())
    expected = {
        "get_weather": json.dumps(
            example_for(WEATHER["input_schema"], "Paris"), separators=(",", ":")
        ),
        "get_time": "{}",
    }
    for index, block in starts.items():
        assert "".join(pieces[index]) == expected[block["name"]]
    assert len(pieces[0]) > 5  # really split into many deltas
    if family == "openai":  # the fake interleaves the two calls' pieces
        order = [data["index"] for name, data in events if name == "content_block_delta"]
        assert order[:3] == [0, 1, 0]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


@pytest.mark.parametrize("family", FAMILIES)
def test_streamed_tool_round_trip(parley: ParleyFactory, family: str) -> None:
    with _sdk(parley(directive="+parallel-tools+fine-args")) as client:
        with client.messages.stream(
            model=family,
            max_tokens=128,
            tools=TOOLS,
            messages=[{"role": "user", "content": "Rome"}],
        ) as stream:
            first = stream.get_final_message()
        uses = [block for block in first.content if block.type == "tool_use"]
        assert [use.name for use in uses] == (
            ["get_weather", "get_time"] if family != "gemini" else [u.name for u in uses]
        )
        assert uses[0].input == example_for(WEATHER["input_schema"], "Rome")
        results: list[Any] = [
            {"type": "tool_result", "tool_use_id": use.id, "content": f"result {n}"}
            for n, use in enumerate(uses)
        ]
        with client.messages.stream(
            model=family,
            max_tokens=128,
            tools=TOOLS,
            messages=[
                {"role": "user", "content": "Rome"},
                {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                {"role": "user", "content": results},
            ],
        ) as stream:
            second = stream.get_final_message()
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == f"The tool returned: result {len(uses) - 1}"  # type: ignore[union-attr]


def _sent_thinking(body: dict[str, Any], family: str) -> Any:
    """The thinking object as the upstream got it (Bedrock: in the model's own fields)."""
    if family == "bedrock":
        return (body.get("additionalModelRequestFields") or {}).get("thinking")
    return body.get("thinking")


def _sent_reasoning(block: dict[str, Any], family: str) -> tuple[str, str]:
    """(text, signature) of a thinking block as sent back upstream."""
    if family == "bedrock":
        signed = block["reasoningContent"]["reasoningText"]
        return signed["text"], signed["signature"]
    assert block["type"] == "thinking"
    return block["thinking"], block["signature"]


@pytest.mark.parametrize("family", ["anthropic", "bedrock"])
@pytest.mark.parametrize("stream", [False, True])
def test_thinking_signatures_survive_a_tool_loop(
    client: anthropic.Anthropic, fake: FakeUpstream, stream: bool, family: str
) -> None:
    """Each fake refuses, as Anthropic and Claude on Bedrock do, a tool-use turn sent back
    without its signed thinking block: the loop completing proves the block came back
    intact, its signature byte-equal to what the upstream sent."""
    question: list[Any] = [{"role": "user", "content": "Oslo"}]

    def ask(messages: list[Any]) -> anthropic.types.Message:
        kwargs: Any = {
            "model": family,
            "max_tokens": 4096,
            "thinking": THINKING,
            "tools": [WEATHER],
            "messages": messages,
        }
        if not stream:
            return client.messages.create(**kwargs)
        with client.messages.stream(**kwargs) as events:
            return events.get_final_message()

    first = ask(question)
    assert [block.type for block in first.content] == ["thinking", "tool_use"]
    thinking = first.content[0]
    assert thinking.thinking == "Thinking about: Oslo"  # type: ignore[union-attr]
    assert thinking.signature == signature_of("Thinking about: Oslo")  # type: ignore[union-attr]
    assert _sent_thinking(fake.calls[-1].body, family) == THINKING
    use = first.content[1]
    result: list[Any] = [{"type": "tool_result", "tool_use_id": use.id, "content": "cold"}]  # type: ignore[union-attr]
    turn = [*question, {"role": "assistant", "content": [b.model_dump() for b in first.content]}]
    second = ask([*turn, {"role": "user", "content": result}])
    sent = fake.calls[-1].body["messages"][1]["content"][0]
    assert _sent_reasoning(sent, family) == (
        "Thinking about: Oslo",
        signature_of("Thinking about: Oslo"),
    )
    assert second.content[-1].text == "The tool returned: cold"  # type: ignore[union-attr]
    # Without its thinking block, the same turn is refused (the fake checks, as Anthropic).
    bare = [*question, {"role": "assistant", "content": [use.model_dump()]}]
    with pytest.raises(anthropic.BadRequestError) as refused:
        ask([*bare, {"role": "user", "content": result}])
    assert "thinking" in refused.value.body["error"]["message"]  # type: ignore[index]


def _sent_breakpoints(body: dict[str, Any], family: str) -> dict[str, Any]:
    """Where the upstream got each breakpoint: after which system, tool and message block."""
    if family == "bedrock":

        def marked(blocks: list[dict[str, Any]]) -> list[int]:
            return [i - 1 for i, block in enumerate(blocks) if "cachePoint" in block]

        return {
            "system": marked(body["system"]),
            "tools": marked(body["toolConfig"]["tools"]),
            "message": marked(body["messages"][0]["content"]),
        }

    def flagged(blocks: list[dict[str, Any]]) -> list[int]:
        return [i for i, block in enumerate(blocks) if block.get("cache_control")]

    return {
        "system": flagged(body["system"]),
        "tools": flagged(body["tools"]),
        "message": flagged(body["messages"][0]["content"]),
    }


@pytest.mark.parametrize("family", ["anthropic", "bedrock"])
def test_cache_control_reaches_the_upstream_and_cache_usage_comes_back(
    parley: ParleyFactory, fake: FakeUpstream, family: str
) -> None:
    """Breakpoints on system, tool and message blocks reach Anthropic as sent and Bedrock
    as cachePoint blocks after the block they mark; the cache's writes and reads come
    back in Anthropic's usage and in Chat Completions' (the fakes cache as the upstreams
    do: a prefix seen once is written, seen again is read)."""
    url = parley()
    breakpoint_: Any = {"type": "ephemeral"}
    body: Any = {
        "model": family,
        "max_tokens": 64,
        "system": [
            {"type": "text", "text": "You are a careful assistant for long documents."},
            {
                "type": "text",
                "text": "The document: one two three four",
                "cache_control": breakpoint_,
            },
        ],
        "tools": [{**WEATHER, "cache_control": breakpoint_}, CLOCK],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "summarise it", "cache_control": breakpoint_}],
            }
        ],
    }
    with _sdk(url) as client:
        first = client.messages.create(**body)
        sent = fake.calls[-1].body
        assert _sent_breakpoints(sent, family) == {"system": [1], "tools": [0], "message": [0]}
        if family == "anthropic":
            assert sent["system"] == body["system"]
        else:
            assert sent["system"][2] == {"cachePoint": {"type": "default"}}
        prefix = 8 + 6 + 2  # the words up to the last breakpoint
        assert first.usage.cache_creation_input_tokens == prefix
        assert first.usage.cache_read_input_tokens == 0
        assert first.usage.input_tokens == 0
        second = client.messages.create(**body)
        assert second.usage.cache_read_input_tokens == prefix
        assert second.usage.cache_creation_input_tokens == 0
    streamed = _events(url, body)
    assert streamed[-2][1]["usage"]["cache_read_input_tokens"] == prefix
    # Chat Completions sees the same counts, in OpenAI's shape.
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as chat:
        reply = chat.chat.completions.create(
            model=family,
            messages=[
                {
                    "role": "system",
                    "content": [
                        {"type": "text", "text": "Cache me please", "cache_control": breakpoint_}
                    ],  # type: ignore[typeddict-unknown-key]
                },
                {"role": "user", "content": "hello"},
            ],
        )
    system = fake.calls[-1].body["system"]
    if family == "anthropic":
        assert system[0]["cache_control"] == breakpoint_
    else:
        assert system == [{"text": "Cache me please"}, {"cachePoint": {"type": "default"}}]
    assert reply.usage is not None
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.model_extra == {"cache_creation_tokens": 3}
    assert reply.usage.prompt_tokens == 4


def test_openai_cached_and_reasoning_tokens_in_anthropic_shape(parley: ParleyFactory) -> None:
    url = parley(directive="+cached-2+reasoning")
    with _sdk(url) as client:
        reply = client.messages.create(
            model="openai", max_tokens=64, messages=[{"role": "user", "content": "a b c d"}]
        )
    assert [block.type for block in reply.content] == ["thinking", "text"]
    assert reply.content[0].thinking == "Thinking about: a b c d"  # type: ignore[union-attr]
    assert reply.usage.cache_read_input_tokens == 2
    assert reply.usage.input_tokens == 4 - 2
    events = _events(
        url,
        {"model": "openai", "max_tokens": 64, "messages": [{"role": "user", "content": "a b c d"}]},
    )
    kinds = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    assert kinds == ["thinking", "text"]
    assert events[-2][1]["usage"]["cache_read_input_tokens"] == 2


def test_error_mid_stream_is_an_error_event(parley: ParleyFactory) -> None:
    events = _events(
        parley(directive="+stream-error-4"),
        {
            "model": "anthropic",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "a b c"}],
        },
    )
    name, data = events[-1]
    assert name == "error"
    assert data["type"] == "error"
    assert data["error"]["type"] == "overloaded_error"
    assert "message_stop" not in [n for n, _ in events]


def test_failure_before_the_stream_is_an_http_error(parley: ParleyFactory) -> None:
    with (
        _sdk(parley(directive="+error-529")) as client,
        pytest.raises(anthropic.APIStatusError) as failed,
        client.messages.stream(
            model="anthropic", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        stream.get_final_message()
    assert failed.value.status_code == 529
    assert failed.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_thinking_budget_thoughts_and_usage(
    parley: ParleyFactory, fake: FakeUpstream, stream: bool
) -> None:
    """thinking.budget_tokens becomes thinkingConfig; Gemini's thoughts come back as a
    thinking block, its cached and thought token counts in Anthropic's usage."""
    with _sdk(parley(directive="+cached-1")) as client:
        kwargs: Any = {
            "model": "gemini",
            "max_tokens": 4096,
            "thinking": THINKING,
            "messages": [{"role": "user", "content": "two words"}],
        }
        if stream:
            with client.messages.stream(**kwargs) as events:
                reply = events.get_final_message()
        else:
            reply = client.messages.create(**kwargs)
    config = fake.calls[-1].body["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 2048, "includeThoughts": True}
    assert [block.type for block in reply.content] == ["thinking", "text"]
    assert reply.content[0].thinking == "Thinking about: two words"  # type: ignore[union-attr]
    assert reply.content[1].text == "You said: two words"  # type: ignore[union-attr]
    assert reply.usage.cache_read_input_tokens == 1
    assert reply.usage.input_tokens == 2 - 1
    assert reply.usage.output_tokens == 4 + 4  # the answer's words and the thought's


def test_gemini_usage_details_in_chat_completions(parley: ParleyFactory) -> None:
    """Gemini's cachedContentTokenCount and thoughtsTokenCount, in OpenAI's shape."""
    with openai.OpenAI(
        base_url=parley(directive="+cached-1+reasoning") + "/v1", api_key="x"
    ) as chat:
        reply = chat.chat.completions.create(
            model="gemini", messages=[{"role": "user", "content": "two words"}]
        )
    assert reply.usage is not None
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 1
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 4
    assert reply.choices[0].message.model_extra == {
        "reasoning_content": "Thinking about: two words"
    }
