"""What ``/v1/messages`` sends to an Anthropic upstream keeps everything Anthropic takes:
beta flags, documents, images, ``is_error``, breakpoints, thinking with signatures; and a
thinking answer served from Parley's response cache keeps its signatures too (a replay
without them would break the client's next tool-loop turn)."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.formats import signature_of
from parley.testing.servers import FAKE_KEY_ENV, LoopThread, models_from, serve_in_thread
from tests.backends import sqlite_url
from tests.conftest import ParleyFactory

PDF = base64.b64encode(b"%PDF-1.4 tiny").decode()
PNG = base64.b64encode(b"\x89PNG tiny").decode()
WEATHER: Any = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def claude(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> Iterator[Callable[..., str]]:
    """``claude(model=..., **group)``: Parley with one Anthropic group named ``claude``."""
    stack = contextlib.ExitStack()

    def run(model: str = "claude-sonnet-4-5", **group: Any) -> str:
        deployment = {
            "provider": "anthropic",
            "model": model,
            "api_base": fake.url,
            "api_key": f"os.environ/{FAKE_KEY_ENV}",
        }
        settings = Settings(database_url=sqlite_url(tmp_path))
        groups = [{"name": "claude", "deployments": [deployment], **group}]
        app = create_app(settings, models=models_from(groups))
        return stack.enter_context(serve_in_thread(loop_thread, app))

    with stack:
        yield run


def test_blocks_and_beta_flags_reach_anthropic(parley: ParleyFactory, fake: FakeUpstream) -> None:
    breakpoint_ = {"type": "ephemeral", "ttl": "1h"}
    messages: Any = [
        {
            "role": "user",
            "content": [
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                    "title": "Report",
                    "cache_control": breakpoint_,
                },
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "plain words"},
                },
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {"type": "text", "text": "what is the weather?"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "service down"}],
                    "is_error": True,
                    "cache_control": breakpoint_,
                },
                {"type": "text", "text": "try again"},
            ],
        },
    ]
    with anthropic.Anthropic(base_url=parley(), api_key="unused", max_retries=0) as client:
        client.messages.create(
            model="anthropic",
            max_tokens=32,
            tools=[WEATHER],
            messages=messages,
            extra_headers={"anthropic-beta": "prompt-caching-2024-07-31, files-api-2025-04-14"},
            extra_body={"top_k": 3},
        )
    call = fake.calls[-1]
    assert call.headers["anthropic-beta"] == "prompt-caching-2024-07-31,files-api-2025-04-14"
    assert call.body["messages"] == messages  # every block as the client sent it
    assert call.body["top_k"] == 3
    assert call.body["tools"] == [WEATHER]


def test_beta_flags_go_to_anthropic_only(parley: ParleyFactory, fake: FakeUpstream) -> None:
    with anthropic.Anthropic(base_url=parley(), api_key="unused", max_retries=0) as client:
        client.messages.create(
            model="openai",
            max_tokens=8,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"anthropic-beta": "some-beta"},
        )
    assert "anthropic-beta" not in fake.calls[-1].headers
    assert "anthropic_beta" not in fake.calls[-1].body


def test_unsupported_blocks_are_refused_by_name(parley: ParleyFactory, fake: FakeUpstream) -> None:
    url = parley()
    image_result = {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "t",
                "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}],
            }
        ],
    }
    server_tool = {"type": "web_search_20250305", "name": "web_search"}
    for body, param in (
        ({"messages": [image_result]}, "messages[0].content[0].content[0]"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [server_tool]}, "tools[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]},
            "messages[0].content[0]",
        ),
    ):
        answer = httpx.post(
            url + "/v1/messages", json={"model": "anthropic", "max_tokens": 8, **body}
        )
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert param in error["message"]
    assert fake.calls == []


@pytest.mark.parametrize("stream", [True, False])
def test_cached_thinking_answer_keeps_its_signature(
    claude: Callable[..., str], fake: FakeUpstream, stream: bool
) -> None:
    url = claude(cache={"enabled": True})
    kwargs: Any = {
        "model": "claude",
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [WEATHER],
        "messages": [{"role": "user", "content": "Bergen"}],
    }
    with anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0) as client:
        answers = []
        for _ in range(2):  # the second is answered from the cache
            if stream:
                with client.messages.stream(**kwargs) as events:
                    answers.append(events.get_final_message())
            else:
                answers.append(client.messages.create(**kwargs))
    assert len(fake.calls) == 1
    for answer in answers:
        thinking = answer.content[0]
        assert thinking.type == "thinking"
        assert thinking.signature == signature_of("Thinking about: Bergen")
        assert answer.content[1].type == "tool_use"
    first, second = (json.dumps(a.model_dump()["content"][0]) for a in answers)
    assert first == second


def test_load_shedding_is_overloaded_error_529(
    claude: Callable[..., str], fake: FakeUpstream
) -> None:
    """A group at capacity with no queue room: Anthropic clients get 529 overloaded_error
    (which they back off from and retry, as against Anthropic), with Retry-After."""
    url = claude("claude-sonnet-4-5+latency-1", max_concurrency=1, queue={"max_size": 0})
    body = {"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(httpx.post, url + "/v1/messages", json=body, timeout=10)
        for _ in range(100):  # until the first request holds the only slot
            if fake.calls:
                break
            time.sleep(0.02)
        shed = httpx.post(url + "/v1/messages", json=body, timeout=10)
        assert first.result().status_code == 200
    assert shed.status_code == 529
    assert shed.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": shed.json()["error"]["message"]},
    }
    assert "capacity" in shed.json()["error"]["message"]
    assert shed.headers["retry-after"]


def test_fields_parley_has_no_type_for_go_to_anthropic_only(
    parley: ParleyFactory, fake: FakeUpstream
) -> None:
    """Anthropic's newer fields reach an Anthropic upstream as sent; an OpenAI upstream
    cannot honour them: refused, or dropped with drop_params, as for Chat Completions."""
    extra = {"output_config": {"effort": "low"}, "context_management": {"edits": []}}
    body = {"max_tokens": 8, "messages": [{"role": "user", "content": "x"}], **extra}
    url = parley()
    sent = httpx.post(url + "/v1/messages", json={"model": "anthropic", **body})
    assert sent.status_code == 200, sent.text
    assert fake.calls[-1].body["output_config"] == {"effort": "low"}
    assert fake.calls[-1].body["context_management"] == {"edits": []}
    refused = httpx.post(url + "/v1/messages", json={"model": "openai", **body})
    assert refused.status_code == 400
    assert "context_management" in refused.json()["error"]["message"]
    assert len(fake.calls) == 1
    dropped = httpx.post(
        parley(drop_params=True) + "/v1/messages", json={"model": "openai", **body}
    )
    assert dropped.status_code == 200
    assert dropped.headers["x-parley-dropped-params"] == "context_management,output_config"
    assert "output_config" not in fake.calls[-1].body


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("family", ["anthropic", "bedrock"])
def test_chat_completions_thinking_blocks_survive_a_tool_loop(
    parley: ParleyFactory, fake: FakeUpstream, family: str, stream: bool
) -> None:
    """The same canonical fields serve Chat Completions clients (LiteLLM's spelling):
    ``thinking`` in, ``thinking_blocks`` with signatures out and back in, to Anthropic and
    to Claude on Bedrock (whose fake refuses the second turn without them); a streamed
    answer's signature arrives as one ``reasoning_signature`` delta."""
    tools: Any = [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": WEATHER["input_schema"]},
        }
    ]
    question: Any = [{"role": "user", "content": "Tromso"}]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    with openai.OpenAI(base_url=parley() + "/v1", api_key="x", max_retries=0) as client:
        if stream:
            blocks, call = _streamed_thinking_and_call(client, family, question, tools, thinking)
        else:
            first = client.chat.completions.create(
                model=family, messages=question, tools=tools, extra_body={"thinking": thinking}
            )
            message = first.choices[0].message
            blocks = (message.model_extra or {})["thinking_blocks"]
            assert (message.model_extra or {})["reasoning_content"] == "Thinking about: Tromso"
            call = message.tool_calls[0].model_dump()  # type: ignore[index]
        assert blocks == [
            {
                "type": "thinking",
                "thinking": "Thinking about: Tromso",
                "signature": signature_of("Thinking about: Tromso"),
            }
        ]
        second = client.chat.completions.create(
            model=family,
            tools=tools,
            extra_body={"thinking": thinking},
            messages=[
                *question,
                {
                    "role": "assistant",
                    "tool_calls": [call],
                    "thinking_blocks": blocks,
                },  # type: ignore[typeddict-unknown-key]
                {"role": "tool", "tool_call_id": call["id"], "content": "snow"},
            ],
        )
    assert second.choices[0].message.content == "The tool returned: snow"
    sent = fake.calls[-1].body["messages"][1]["content"][0]
    if family == "bedrock":
        assert sent["reasoningContent"]["reasoningText"] == {
            "text": "Thinking about: Tromso",
            "signature": signature_of("Thinking about: Tromso"),
        }
    else:
        assert sent["type"] == "thinking"


def _streamed_thinking_and_call(
    client: openai.OpenAI, family: str, question: Any, tools: Any, thinking: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A streamed answer's thinking blocks, rebuilt from its deltas as a client does, and
    its one tool call."""
    stream = client.chat.completions.create(
        model=family,
        messages=question,
        tools=tools,
        extra_body={"thinking": thinking},
        stream=True,
    )
    text, signatures = [], []
    call: dict[str, Any] = {"type": "function", "function": {"name": "", "arguments": ""}}
    for chunk in stream:
        for choice in chunk.choices:
            extra = choice.delta.model_extra or {}
            text.append(extra.get("reasoning_content") or "")
            if extra.get("reasoning_signature") is not None:
                signatures.append(extra["reasoning_signature"])
            for delta in choice.delta.tool_calls or []:
                call["id"] = delta.id or call.get("id")
                if delta.function is not None:
                    call["function"]["name"] += delta.function.name or ""
                    call["function"]["arguments"] += delta.function.arguments or ""
    assert len(signatures) == 1
    block = {"type": "thinking", "thinking": "".join(text), "signature": signatures[0]}
    return [block], call
