"""The official ``openai`` SDK, pointed at a running Parley, works identically against every
provider family's fake: chat, streaming, a tool-call round trip, JSON mode, embeddings."""

from __future__ import annotations

import json

import openai
import pytest

from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import FAMILIES
from tests.conftest import ParleyFactory

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
EMBEDDING_FAMILIES = [f for f in FAMILIES if f not in ("anthropic", "bedrock")]


@pytest.fixture
def client(parley: ParleyFactory) -> openai.OpenAI:
    return openai.OpenAI(base_url=parley() + "/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_chat_completion(client: openai.OpenAI, family: str, fake: FakeUpstream) -> None:
    reply = client.chat.completions.create(
        model=family,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there"},
        ],
        temperature=0.2,
        max_tokens=50,
    )
    assert reply.choices[0].message.content == "You said: hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.completion_tokens > 0
    assert len(fake.calls) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_streaming_chat_with_usage(client: openai.OpenAI, family: str) -> None:
    stream = client.chat.completions.create(
        model=family,
        messages=[{"role": "user", "content": "stream this please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finishes, usage = [], [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert "".join(text) == "You said: stream this please"
    assert finishes == ["stop"]
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize("family", FAMILIES)
def test_tool_call_round_trip(client: openai.OpenAI, family: str, fake: FakeUpstream) -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model=family, messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Weather in Paris?"}
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    second = client.chat.completions.create(model=family, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "The tool returned: sunny, 21C"
    assert second.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("family", FAMILIES)
def test_streamed_tool_call(client: openai.OpenAI, family: str) -> None:
    stream = client.chat.completions.create(
        model=family, messages=[{"role": "user", "content": "Lyon"}], tools=TOOLS, stream=True
    )
    names, arguments, finish = [], [], None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    names.append(call.function.name)
                if call.function and call.function.arguments:
                    arguments.append(call.function.arguments)
            finish = choice.finish_reason or finish
    assert names == ["get_weather"]
    assert json.loads("".join(arguments)) == {"city": "Lyon"}
    assert finish == "tool_calls"


@pytest.mark.parametrize("family", FAMILIES)
def test_json_mode(client: openai.OpenAI, family: str) -> None:
    reply = client.chat.completions.create(
        model=family,
        messages=[{"role": "user", "content": "give me json"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(reply.choices[0].message.content or "") == {"answer": "give me json"}
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}},
    }
    reply = client.chat.completions.create(
        model=family,
        messages=[{"role": "user", "content": "Rome"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "weather", "schema": schema},
        },
    )
    assert json.loads(reply.choices[0].message.content or "") == {"city": "Rome", "temp": 42}
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("family", EMBEDDING_FAMILIES)
def test_embeddings(client: openai.OpenAI, family: str) -> None:
    # The SDK asks for base64 by default and decodes it; ask for floats too.
    b64 = client.embeddings.create(model=family, input=["one", "two"], dimensions=8)
    floats = client.embeddings.create(
        model=family, input=["one", "two"], dimensions=8, encoding_format="float"
    )
    assert [len(d.embedding) for d in b64.data] == [8, 8]
    for got, want in zip(b64.data, floats.data, strict=True):
        assert got.embedding == pytest.approx(want.embedding, rel=1e-6)
    assert b64.data[0].embedding != b64.data[1].embedding
    assert b64.usage.prompt_tokens > 0


def test_models_list_and_get(client: openai.OpenAI) -> None:
    ids = sorted(m.id for m in client.models.list())
    assert ids == sorted(FAMILIES)
    assert client.models.retrieve("gemini").id == "gemini"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("nope")
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]
