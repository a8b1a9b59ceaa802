"""Bedrock through a running Parley, with the official ``openai`` SDK: what reaches the fake
(signed, in Converse's shape) and what the client gets back, streamed and not, tool calls
split across many deltas and in parallel, images, errors; and that a wrongly signed
request is refused, so the fake really checks signatures."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.testing import aws
from parley.testing.bedrock import TOOL_INPUT_PIECE, tool_input_json
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.scenario import Behaviour
from parley.testing.servers import (
    BEDROCK_CREDENTIALS,
    BEDROCK_SESSION_CREDENTIALS,
    LoopThread,
    models_from,
    serve_in_thread,
)
from tests.backends import sqlite_url
from tests.conftest import ParleyFactory

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAX+XDSwAAAABJRU5ErkJggg=="
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}


@pytest.fixture
def client(parley: ParleyFactory) -> openai.OpenAI:
    return openai.OpenAI(base_url=parley() + "/v1", api_key="unused", max_retries=0)


def only_call(fake: FakeUpstream) -> Any:
    calls = fake.calls_to("bedrock")
    assert len(calls) == 1
    return calls[0]


def test_plain_completion_is_signed_and_in_converse_shape(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    reply = client.chat.completions.create(
        model="bedrock",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there"},
        ],
        max_tokens=64,
        temperature=0.3,
        stop=["END"],
    )
    assert reply.choices[0].message.content == "You said: hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 4  # the fake counts words: system + user
    call = only_call(fake)
    assert call.path == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    assert call.headers["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={aws.FAKE_AWS_ACCESS_KEY_ID}/"
    )
    assert "/us-east-1/bedrock/aws4_request" in call.headers["Authorization"]
    assert call.body["system"] == [{"text": "Be brief."}]
    assert call.body["inferenceConfig"] == {
        "maxTokens": 64,
        "temperature": 0.3,
        "stopSequences": ["END"],
    }
    assert call.body["messages"] == [{"role": "user", "content": [{"text": "hello there"}]}]


def test_streaming_text(client: openai.OpenAI, fake: FakeUpstream) -> None:
    stream = client.chat.completions.create(
        model="bedrock",
        messages=[{"role": "user", "content": "stream these words please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finishes, usage = [], [], None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert "".join(text) == "You said: stream these words please"
    assert finishes == ["stop"]
    assert usage is not None
    assert usage.completion_tokens == 6
    assert only_call(fake).path.endswith("/converse-stream")


def _collect_calls(stream: Iterator[Any]) -> tuple[dict[int, dict[str, Any]], str | None]:
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                entry = calls.setdefault(delta.index, {"id": None, "name": "", "pieces": []})
                entry["id"] = delta.id or entry["id"]
                if delta.function and delta.function.name:
                    entry["name"] += delta.function.name
                if delta.function and delta.function.arguments:
                    entry["pieces"].append(delta.function.arguments)
            finish = choice.finish_reason or finish
    return calls, finish


def test_streamed_tool_call_arguments_split_across_many_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="bedrock",
        messages=[{"role": "user", "content": "Lyon"}],
        tools=[WEATHER],
        stream=True,
    )
    calls, finish = _collect_calls(stream)
    assert finish == "tool_calls"
    assert list(calls) == [0]
    sent = tool_input_json({"city": "Lyon", "unit": "Lyon"})
    assert len(calls[0]["pieces"]) == -(-len(sent) // TOOL_INPUT_PIECE) > 5
    assert "".join(calls[0]["pieces"]) == sent  # byte-equal to what the upstream sent
    assert calls[0]["name"] == "get_weather"
    assert calls[0]["id"].startswith("tooluse_")


@pytest.mark.parametrize("stream", [False, True])
def test_parallel_tool_calls_and_their_results_fed_back(
    parley: ParleyFactory, fake: FakeUpstream, stream: bool
) -> None:
    client = openai.OpenAI(
        base_url=parley(directive="+parallel-tools") + "/v1", api_key="x", max_retries=0
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Paris"}]
    if stream:
        calls, finish = _collect_calls(
            client.chat.completions.create(
                model="bedrock", messages=messages, tools=[WEATHER, TIME], stream=True
            )
        )
        made = [(c["id"], c["name"], "".join(c["pieces"])) for _, c in sorted(calls.items())]
    else:
        reply = client.chat.completions.create(
            model="bedrock", messages=messages, tools=[WEATHER, TIME]
        )
        finish = reply.choices[0].finish_reason
        made = [
            (c.id, c.function.name, c.function.arguments)
            for c in reply.choices[0].message.tool_calls or []
        ]
    assert finish == "tool_calls"
    assert [name for _, name, _ in made] == ["get_weather", "get_time"]
    assert [json.loads(args) for _, _, args in made] == [
        {"city": "Paris", "unit": "Paris"},
        {"zone": "Paris"},
    ]
    assert len({call_id for call_id, _, _ in made}) == 2
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                for i, n, a in made
            ],
        }
    )
    messages += [
        {"role": "tool", "tool_call_id": made[0][0], "content": "sunny"},
        {"role": "tool", "tool_call_id": made[1][0], "content": "noon"},
    ]
    second = client.chat.completions.create(
        model="bedrock", messages=messages, tools=[WEATHER, TIME]
    )
    assert second.choices[0].message.content == "The tool returned: noon"
    turns = fake.calls_to("bedrock")[-1].body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["toolUse"]["toolUseId"] for b in turns[1]["content"]] == [i for i, _, _ in made]
    assert [b["toolResult"]["toolUseId"] for b in turns[2]["content"]] == [i for i, _, _ in made]


def test_image_is_sent_as_bytes_and_a_url_is_refused(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    reply = client.chat.completions.create(
        model="bedrock",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ],
            }
        ],
    )
    assert reply.choices[0].message.content == "You said: what is this"
    image = only_call(fake).body["messages"][0]["content"][1]["image"]
    assert image["format"] == "png"
    assert base64.b64decode(image["source"]["bytes"]) == PNG
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="bedrock",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
                    ],
                }
            ],
        )
    assert info.value.body["param"] == "messages[0].content[0].image_url.url"  # type: ignore[index]
    assert len(fake.calls) == 1  # refused before reaching Bedrock


@pytest.mark.parametrize(
    ("status", "exception", "name"),
    [
        (429, openai.RateLimitError, "ThrottlingException"),
        (400, openai.BadRequestError, "ValidationException"),
        (403, openai.PermissionDeniedError, "AccessDeniedException"),
        (503, openai.InternalServerError, "ServiceUnavailableException"),
    ],
)
def test_aws_errors_reach_the_client_as_openai_errors(
    parley: ParleyFactory, status: int, exception: type[Exception], name: str
) -> None:
    client = openai.OpenAI(
        base_url=parley(directive=f"+error-{status}") + "/v1", api_key="x", max_retries=0
    )
    with pytest.raises(exception) as info:
        client.chat.completions.create(
            model="bedrock", messages=[{"role": "user", "content": "hi"}]
        )
    body = info.value.body  # type: ignore[attr-defined]
    assert body["code"] == name
    assert f"fake upstream error {status}" in body["message"]


def test_model_failure_424_is_a_retryable_502(parley: ParleyFactory, fake: FakeUpstream) -> None:
    url = parley()
    fake.fail_next(Behaviour(status=424))
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "bedrock", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200  # retried (the group's retries), and answered
    assert len(fake.calls) == 2


def test_mid_stream_model_error_ends_the_stream_with_its_message(parley: ParleyFactory) -> None:
    client = openai.OpenAI(
        base_url=parley(directive="+stream-error-3") + "/v1", api_key="x", max_retries=0
    )
    stream = client.chat.completions.create(
        model="bedrock",
        messages=[{"role": "user", "content": "one two three four five"}],
        stream=True,
    )
    with pytest.raises(openai.APIError) as info:
        for _ in stream:
            pass
    assert "ModelStreamErrorException: upstream overloaded" in str(info.value)


def test_a_wrongly_signed_request_is_refused(parley: ParleyFactory, fake: FakeUpstream) -> None:
    """A secret key the fake does not know signs a request it refuses, so the signature is
    really checked; Parley answers with AWS's words and the failure's name, not the key."""
    url = parley(key="bad-aws-secret-0123456789")
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "bedrock", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "InvalidSignatureException"
    assert "signature we calculated does not match" in error["message"]
    assert "bad-aws-secret" not in response.text
    assert fake.calls_to("bedrock")  # it did reach the fake, and was refused there


def test_the_fake_refuses_unsigned_and_tampered_requests(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    client.chat.completions.create(model="bedrock", messages=[{"role": "user", "content": "hi"}])
    signed = only_call(fake)
    url = f"{fake.url}{signed.path}"
    body = json.dumps(signed.body).encode()
    unsigned = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationTokenException")
    replayed = {
        k: v for k, v in signed.headers.items() if k.lower() not in ("content-length", "host")
    }
    tampered = httpx.post(url, content=body.replace(b"hi", b"ho"), headers=replayed)
    assert tampered.status_code == 403
    assert tampered.headers["x-amzn-ErrorType"].startswith("InvalidSignatureException")
    assert "signature we calculated" in tampered.json()["message"]


def _serve(loop_thread: LoopThread, tmp_path: Path, deployment: dict[str, Any]) -> Any:
    models = models_from([{"name": "b", "deployments": [deployment]}])
    app = create_app(Settings(database_url=sqlite_url(tmp_path, "p.db")), models=models)
    return serve_in_thread(loop_thread, app)


@pytest.mark.parametrize("stream", [False, True])
def test_session_token_credentials(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path, stream: bool
) -> None:
    deployment = {
        "provider": "bedrock",
        "model": MODEL,
        "api_base": fake.url,
        **BEDROCK_SESSION_CREDENTIALS,
    }
    with _serve(loop_thread, tmp_path, deployment) as url:
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "b", "stream": stream, "messages": [{"role": "user", "content": "hi"}]},
        )
    assert response.status_code == 200, response.text
    if stream:
        assert response.text.rstrip().endswith("data: [DONE]")
    else:
        assert response.json()["choices"][0]["message"]["content"] == "You said: hi"
    sent = only_call(fake).headers
    assert sent["X-Amz-Security-Token"] == aws.FAKE_AWS_SESSION_TOKEN
    assert "x-amz-security-token" in sent["Authorization"]


def test_bedrock_api_key_goes_as_a_bearer_token(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> None:
    deployment = {
        "provider": "bedrock",
        "model": MODEL,
        "api_base": fake.url,
        "aws_region": "us-east-1",
        "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
    }
    with _serve(loop_thread, tmp_path, deployment) as url:
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "b", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert response.status_code == 200, response.text
    assert only_call(fake).headers["Authorization"] == "Bearer fake-secret-key-123456"


def test_client_chosen_base_never_gets_the_aws_credentials(
    loop_thread: LoopThread,
    fake: FakeUpstream,
    second_fake: FakeUpstream,
    tmp_path: Path,
) -> None:
    deployment = {
        "provider": "bedrock",
        "model": MODEL,
        "api_base": fake.url,
        "allow_client_api_base": True,
        **BEDROCK_CREDENTIALS,
    }
    with _serve(loop_thread, tmp_path, deployment) as url:
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={
                "model": "b",
                "api_base": second_fake.url,
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers={"x-parley-upstream-key": "client-own-bedrock-key"},
        )
    assert response.status_code == 200, response.text
    assert fake.calls == []
    headers = only_call(second_fake).headers
    assert headers["Authorization"] == "Bearer client-own-bedrock-key"
    assert aws.FAKE_AWS_ACCESS_KEY_ID not in json.dumps(headers)
