"""``/v1/responses`` driven by the official ``openai`` SDK's ``client.responses``, against
a running Parley in front of the fakes: OpenAI (passed through to the fake's own
``/v1/responses``), Anthropic, Gemini and Bedrock (translated through Chat Completions
types).
The same client code runs against each family."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, models_from, serve_in_thread
from tests.backends import sqlite_url
from tests.conftest import ParleyFactory
from tests.polling import eventually

FAMILIES = ["openai", "anthropic", "gemini", "bedrock"]
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}


@pytest.fixture
def client(parley: ParleyFactory) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=parley() + "/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


def _upstream_path(fake: FakeUpstream, family: str) -> str:
    return fake.calls_to(family)[-1].path


@pytest.mark.parametrize("family", FAMILIES)
def test_plain_text_answer_and_usage(
    client: openai.OpenAI, fake: FakeUpstream, family: str
) -> None:
    """A string input gets a Response object with one message of output_text, usage in
    Responses' names, and OpenAI upstreams are sent /v1/responses itself."""
    response = client.responses.create(
        model=family, input="hello there", instructions="Be brief.", store=False
    )
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == "You said: hello there"
    assert response.output[0].type == "message"
    assert response.usage is not None
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    path = _upstream_path(fake, family)
    if family == "openai":
        assert path == "/v1/responses"
        sent = fake.calls_to("openai")[-1].body
        assert sent["instructions"] == "Be brief."
        assert sent["store"] is False  # Parley keeps responses itself
    else:
        assert "responses" not in path


@pytest.mark.parametrize("family", FAMILIES)
def test_function_tool_round_trip(client: openai.OpenAI, fake: FakeUpstream, family: str) -> None:
    """A function tool is called (call_id, name, JSON arguments), and its output fed back
    as a function_call_output item is answered."""
    first = client.responses.create(
        model=family, input="Weather in Paris?", tools=[WEATHER], store=False
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather"
    assert call.call_id
    assert json.loads(call.arguments)["city"] == "Weather in Paris?"
    second = client.responses.create(
        model=family,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"},
        ],
        tools=[WEATHER],
        store=False,
    )
    assert second.output_text == "The tool returned: sunny, 21C"


@pytest.mark.parametrize("family", FAMILIES)
def test_structured_output(client: openai.OpenAI, family: str) -> None:
    """text.format json_schema reaches the upstream (as response_format when translated)
    and the answer is JSON matching the schema."""
    response = client.responses.create(
        model=family,
        input="Ada",
        text={
            "format": {
                "type": "json_schema",
                "name": "person",
                "schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                    "required": ["name", "age"],
                },
            }
        },
        store=False,
    )
    assert json.loads(response.output_text) == {"name": "Ada", "age": 42}


def test_translated_request_reaches_anthropic_as_its_own_format(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    """instructions become Anthropic's system, max_output_tokens its max_tokens, function
    tools its tools: the translation goes through Parley's canonical types."""
    client.responses.create(
        model="anthropic",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        instructions="You are terse.",
        max_output_tokens=77,
        temperature=0.5,
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        store=False,
    )
    sent = fake.calls_to("anthropic")[-1].body
    assert "You are terse." in json.dumps(sent["system"])
    assert sent["max_tokens"] == 77
    assert sent["temperature"] == 0.5
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather"}


@pytest.mark.parametrize("tool_type", ["web_search", "file_search", "code_interpreter"])
def test_builtin_tools_refused_on_translated_families(
    client: openai.OpenAI, fake: FakeUpstream, tool_type: str
) -> None:
    """A built-in tool on a non-OpenAI deployment is a 400 in OpenAI's shape naming the
    tool type, and nothing reaches the upstream."""
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="anthropic", input="search", tools=[{"type": tool_type}])
    error: Any = caught.value.body
    assert tool_type in error["message"]
    assert error["param"] == "tools[0].type"
    assert error["type"] == "invalid_request_error"
    assert fake.calls_to("anthropic") == []


def test_builtin_tools_pass_through_to_openai(client: openai.OpenAI, fake: FakeUpstream) -> None:
    response = client.responses.create(
        model="openai", input="search", tools=[{"type": "web_search"}], store=False
    )
    assert response.status == "completed"
    assert fake.calls_to("openai")[-1].body["tools"] == [{"type": "web_search"}]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi"}, None),  # no model
        ({"model": "anthropic", "input": "hi", "temperature": 9}, "temperature"),
        ({"model": "anthropic", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        (
            {"model": "anthropic", "input": [{"type": "function_call_output", "output": "x"}]},
            "input[0]",
        ),
        ({"model": "anthropic", "input": "hi", "tools": [{"name": "x"}]}, "tools[0]"),
        (
            {"model": "anthropic", "input": "hi", "text": {"format": {"type": "yaml"}}},
            "text.format.type",
        ),
        ({"model": "anthropic", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ],
)
def test_bad_input_is_an_openai_shaped_400_naming_the_field(
    parley: ParleyFactory, body: dict[str, Any], param: str | None
) -> None:
    resp = httpx.post(parley() + "/v1/responses", json=body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if param is not None:
        assert param in error["message"]
    else:
        assert "model" in error["message"]


# --- streaming -----------------------------------------------------------------------------


def _events(stream: Any) -> list[Any]:
    events = list(stream)
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(len(events))), "sequence numbers run from 0 without gaps"
    return events


@pytest.mark.parametrize("family", FAMILIES)
def test_streamed_text_follows_the_responses_event_sequence(
    client: openai.OpenAI, fake: FakeUpstream, family: str
) -> None:
    events = _events(client.responses.create(model=family, input="stream this please", stream=True))
    if family == "openai":  # OpenAI's own events, passed on (renumbered, Parley's id)
        assert _upstream_path(fake, family) == "/v1/responses"
        assert fake.calls_to(family)[-1].body["stream"] is True
    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    start = types.index("response.output_item.added")
    assert types[start : start + 2] == [
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:-1] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1
    done = next(e for e in events if e.type == "response.output_text.done")
    assert "".join(deltas) == done.text == "You said: stream this please"
    final = events[-1].response
    assert final.id.startswith("resp_")
    assert final.id == events[0].response.id
    assert final.status == "completed"
    assert final.output_text == done.text
    assert final.usage is not None
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_streamed_function_call_arguments_reassemble_byte_equal(
    client: openai.OpenAI, family: str
) -> None:
    """Arguments arrive in several deltas; joined they equal the .done event's, the final
    item's, and exactly the bytes the upstream streamed."""
    events = _events(
        client.responses.create(model=family, input="Paris", tools=[WEATHER], stream=True)
    )
    deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    added = next(e for e in events if e.type == "response.output_item.added")
    assert added.item.type == "function_call"
    assert {d.item_id for d in deltas} == {done.item_id, added.item.id}
    joined = "".join(d.delta for d in deltas)
    assert joined == done.arguments
    args = {"city": "Paris", "days": 42}
    upstream = {
        "openai": json.dumps(args),  # the Responses fake's own serialization
        "anthropic": json.dumps(args, separators=(",", ":")),
        "gemini": None,  # Gemini sends whole objects; Parley serializes them once
        "bedrock": json.dumps(args, separators=(",", ":")),  # a few bytes per delta
    }[family]
    if upstream is not None:
        assert len(deltas) > 1
        assert joined == upstream
    assert json.loads(joined) == args
    final = events[-1].response
    call = next(item for item in final.output if item.type == "function_call")
    assert call.arguments == joined
    assert call.call_id == added.item.call_id
    assert call.name == "get_weather"


def test_stream_that_breaks_ends_with_error_and_failed(
    parley: ParleyFactory,
) -> None:
    """An upstream failure after the first event ends the stream with an error event and
    response.failed, numbered in sequence, and no response.completed."""
    url = parley(directive="+stream-cut-3")
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as sdk:
        events = _events(
            sdk.responses.create(model="anthropic", input="a b c d e f g", stream=True)
        )
    types = [e.type for e in events]
    assert "response.completed" not in types
    assert types[-2:] == ["error", "response.failed"]
    assert events[-1].response.status == "failed"


def test_stream_failing_before_the_first_event_is_an_http_error(parley: ParleyFactory) -> None:
    url = parley(directive="+error-400")
    with (
        openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as sdk,
        pytest.raises(openai.BadRequestError),
    ):
        list(sdk.responses.create(model="openai", input="x", stream=True))


def test_passed_through_stream_error_reaches_the_client(parley: ParleyFactory) -> None:
    """An OpenAI upstream's own in-band error event is passed on, in sequence."""
    url = parley(directive="+stream-error-3")
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as sdk:
        events = _events(sdk.responses.create(model="openai", input="a b c", stream=True))
    assert events[-1].type == "error"
    assert "response.completed" not in [e.type for e in events]


def test_sdk_stream_helper_accumulates_the_final_response(client: openai.OpenAI) -> None:
    """``client.responses.stream`` (the SDK's accumulating helper) builds the same final
    response from Parley's events as the server's response.completed carries."""
    with client.responses.stream(model="anthropic", input="helper test") as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text == "You said: helper test"


@pytest.mark.parametrize("family", ["anthropic", "bedrock"])
@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_effort_reaches_claude_as_thinking_and_comes_back_as_reasoning(
    client: openai.OpenAI, fake: FakeUpstream, family: str, stream: bool
) -> None:
    """reasoning.effort is a thinking budget for Claude (on Bedrock in the model's own
    fields, with a cap above the budget); the thinking comes back as a reasoning item
    ahead of the message, its text the summary (streamed as reasoning_summary_text
    deltas) and the signed block its encrypted_content (tests/e2e/test_responses_reasoning.py
    sends it back)."""
    kwargs: Any = {"model": family, "input": "Oslo", "reasoning": {"effort": "medium"}}
    if stream:
        with client.responses.stream(**kwargs, store=False) as events:
            kinds = {"response.reasoning_summary_text.delta", "response.reasoning_text.delta"}
            deltas = [(e.type, getattr(e, "delta", "")) for e in events if e.type in kinds]
            response = events.get_final_response()
        assert {kind for kind, _ in deltas} == {"response.reasoning_summary_text.delta"}
        assert "".join(delta for _, delta in deltas) == "Thinking about: Oslo"
    else:
        response = client.responses.create(**kwargs, store=False)
    assert [item.type for item in response.output] == ["reasoning", "message"]
    reasoning: Any = response.output[0]
    assert [part.text for part in reasoning.summary] == ["Thinking about: Oslo"]
    assert reasoning.content is None
    assert reasoning.encrypted_content.startswith("parley.v1.")
    assert response.output_text == "You said: Oslo"
    sent = fake.calls_to(family)[-1].body
    budget = {"type": "enabled", "budget_tokens": 4096}
    if family == "bedrock":
        assert sent["additionalModelRequestFields"] == {"thinking": budget}
        assert sent["inferenceConfig"]["maxTokens"] == 4096 + 4096
    else:
        assert (sent["thinking"], sent["max_tokens"]) == (budget, 4096 + 4096)


# --- the pipeline: cache, fallbacks across families, limits --------------------------------


@pytest.fixture
def serve(loop_thread: LoopThread, tmp_path: Path) -> Iterator[Callable[..., str]]:
    stack = contextlib.ExitStack()

    def start(groups: list[dict[str, Any]], **settings: Any) -> str:
        if "database_url" not in settings:
            settings["database_url"] = sqlite_url(tmp_path)
        app = create_app(Settings(**settings), models=models_from(groups))
        return stack.enter_context(serve_in_thread(loop_thread, app))

    with stack:
        yield start


def _post(url: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}/v1/responses", json=body, headers=headers, timeout=30)


def test_translated_answers_come_from_the_cache_and_builtin_tools_never_do(
    serve: Callable[..., str], fake: FakeUpstream
) -> None:
    group = {
        "name": "chat",
        "cache": {"enabled": True},
        "deployments": [
            {
                "provider": "anthropic",
                "model": "claude",
                "api_base": fake.url,
                "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
            }
        ],
    }
    url = serve([group])
    body = {"model": "chat", "input": "cache me", "store": False}
    first, second = _post(url, body), _post(url, body)
    assert first.headers["x-parley-cache"] == "miss"
    assert second.headers["x-parley-cache"] == "hit"
    assert second.headers["x-parley-deployment"] == "cache"
    assert second.json()["output"][0]["content"][0]["text"] == "You said: cache me"
    assert second.json()["id"] != first.json()["id"]
    assert len(fake.calls_to("anthropic")) == 1
    with_search = {**body, "tools": [{"type": "web_search"}]}
    assert _post(url, with_search).status_code == 400  # refused, not served from the cache


def test_failover_from_openai_to_anthropic_speaks_each_its_own_way(
    serve: Callable[..., str], fake: FakeUpstream
) -> None:
    """A group falling back from an OpenAI deployment (passed through) to an Anthropic
    one (translated): the same request, each attempt in its provider's format."""
    groups = [
        {
            "name": "chat",
            "retries": 0,
            "fallbacks": ["backup"],
            "deployments": [
                {
                    "provider": "openai",
                    "model": "gpt+error-500",
                    "api_base": f"{fake.url}/v1",
                    "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
                }
            ],
        },
        {
            "name": "backup",
            "deployments": [
                {
                    "provider": "anthropic",
                    "model": "claude",
                    "api_base": fake.url,
                    "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
                }
            ],
        },
    ]
    url = serve(groups)
    answer = _post(url, {"model": "chat", "input": "fail over", "store": False})
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"][0]["content"][0]["text"] == "You said: fail over"
    assert [c.path for c in fake.calls] == ["/v1/responses", "/v1/messages"]


def test_keys_and_rate_limits_apply(serve: Callable[..., str], fake: FakeUpstream) -> None:
    group = {
        "name": "chat",
        "deployments": [
            {
                "provider": "anthropic",
                "model": "claude",
                "api_base": fake.url,
                "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
            }
        ],
    }
    admin = "admin-secret-for-tests-0123456789"
    url = serve([group], admin_key=admin)
    body = {"model": "chat", "input": "limited", "store": False}
    assert _post(url, body).status_code == 401
    created = httpx.post(
        f"{url}/admin/keys", json={"rpm": 1}, headers={"authorization": f"Bearer {admin}"}
    )
    key = created.json()["key"]
    assert _post(url, body, key).status_code == 200
    limited = _post(url, body, key)
    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert limited.json()["error"]["code"].startswith("rpm")


def test_other_parameters_reach_translated_providers_as_chat_parameters(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    """reasoning.effort becomes reasoning_effort, max_output_tokens
    max_completion_tokens, text.format json_object response_format, an input_image its
    image part (an OpenAI-compatible server shows the Chat Completions body as sent)."""
    client.responses.create(
        model="openai_compatible",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": "https://example.com/a.png"},
                ],
            }
        ],
        reasoning={"effort": "low"},
        max_output_tokens=50,
        text={"format": {"type": "json_object"}},
        parallel_tool_calls=False,
        tools=[WEATHER],
        store=False,
    )
    call = fake.calls[-1]
    assert call.path == "/v1/chat/completions"  # compatible servers get Chat Completions
    sent = call.body
    assert sent["reasoning_effort"] == "low"
    assert sent["max_completion_tokens"] == 50
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["parallel_tool_calls"] is False
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://example.com/a.png"},
    }


def test_parameters_only_openai_knows_are_refused_elsewhere(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="anthropic", input="x", store=False, extra_body={"context_management": []}
        )
    error: Any = caught.value.body
    assert error["param"] == "context_management"
    ok = client.responses.create(
        model="openai", input="x", store=False, extra_body={"context_management": []}
    )
    assert ok.status == "completed"
    assert fake.calls_to("openai")[-1].body["context_management"] == []


def test_usage_records_take_each_upstreams_own_counts(parley: ParleyFactory) -> None:
    """Passed-through and translated answers, JSON and streamed, are each recorded once
    with the upstream's own token counts (one prompt word each, ten answer words)."""
    admin = "admin-secret-for-tests-0123456789"
    url = parley(directive="+tokens-10", admin_key=admin, usage_flush_seconds=0.05)
    headers = {"authorization": f"Bearer {admin}"}
    key = httpx.post(f"{url}/admin/keys", json={}, headers=headers).json()
    with openai.OpenAI(base_url=url + "/v1", api_key=key["key"], max_retries=0) as sdk:
        for family in ("openai", "anthropic"):
            sdk.responses.create(model=family, input="hi", store=False)
            list(sdk.responses.create(model=family, input="hi", store=False, stream=True))
    rows: list[dict[str, Any]] = []

    def recorded() -> bool:
        nonlocal rows
        rows = httpx.get(f"{url}/admin/usage", params={"group_by": "key"}, headers=headers).json()[
            "data"
        ]
        return bool(rows) and rows[0]["requests"] == 4

    eventually(recorded)
    assert rows[0]["bucket"] == key["id"]
    assert rows[0]["completion_tokens"] == 40
    assert rows[0]["prompt_tokens"] == 4
    assert rows[0]["errors"] == 0


@pytest.mark.parametrize("family", ["openai", "anthropic"])
def test_client_leaving_a_stream_closes_the_upstream(
    parley: ParleyFactory, fake: FakeUpstream, family: str
) -> None:
    url = parley(directive="+tokens-200+chunk-delay-0.05")
    with (
        openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as sdk,
        sdk.responses.create(model=family, input="long", stream=True, store=False) as stream,
    ):
        for event in stream:
            if event.type == "response.output_text.delta":
                break
    eventually(lambda: fake.disconnects == 1)


def test_newer_item_types_pass_through_to_openai_and_are_refused_elsewhere(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    item = {"type": "custom_tool_call_output", "call_id": "c1", "output": "x"}
    items: Any = [{"role": "user", "content": "hi"}, item]
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="anthropic", input=items, store=False)
    error: Any = caught.value.body
    assert error["param"] == "input[1].type"
    assert "custom_tool_call_output" in error["message"]
    client.responses.create(model="openai", input=items, store=False)
    assert fake.calls_to("openai")[-1].body["input"][1] == item
