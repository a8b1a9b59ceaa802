"""Bedrock translation: request bodies, answers, usage, errors, the ConverseStream reader
(framing, CRCs, split tool input), and SigV4 signatures checked by the fake's verifier."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from parley.config.loader import AwsCredentials
from parley.config.secrets import Secret
from parley.errors import InvalidRequest, UpstreamProtocolError, UpstreamStatusError
from parley.providers.bedrock_convert import (
    bedrock_to_parley_completion,
    raise_for_bedrock_status,
    to_converse,
    usage_from,
)
from parley.providers.bedrock_stream import StreamTranslator
from parley.providers.sigv4 import SigV4Signer
from parley.schema.chat import ChatCompletionChunk, ChatRequest
from parley.testing import aws
from parley.testing.bedrock import check_converse

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
    "nGNgYGD4DwABBAEAX+XDSwAAAABJRU5ErkJggg=="
)  # a 1x1 PNG


def request(**fields: Any) -> ChatRequest:
    return msgspec.convert({"model": "m", **fields}, ChatRequest)


TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_request_shape_system_inference_and_images() -> None:
    body = to_converse(
        request(
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": "Use metric units."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        {"type": "image_url", "image_url": {"url": "s3://bucket/cat.jpg"}},
                    ],
                },
            ],
            max_tokens=50,
            temperature=0.2,
            top_p=0.9,
            stop=["END"],
        )
    )
    assert body["system"] == [{"text": "Be brief."}, {"text": "Use metric units."}]
    assert body["inferenceConfig"] == {
        "maxTokens": 50,
        "temperature": 0.2,
        "topP": 0.9,
        "stopSequences": ["END"],
    }
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"text": "what is this"},
                {"image": {"format": "png", "source": {"bytes": PNG}}},
                {
                    "image": {
                        "format": "jpeg",
                        "source": {"s3Location": {"uri": "s3://bucket/cat.jpg"}},
                    }
                },
            ],
        }
    ]
    assert "toolConfig" not in body
    check_converse(body)  # what the fake (built from the API reference) accepts


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://example.com/cat.png", "does not fetch"),
        ("data:image/bmp;base64,Qk0=", "not image/bmp"),
    ],
)
def test_images_bedrock_cannot_take_are_refused_naming_the_part(url: str, words: str) -> None:
    parts = [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(InvalidRequest) as info:
        to_converse(request(messages=[{"role": "user", "content": parts}]))
    assert words in info.value.message
    assert info.value.param == "messages[0].content[1].image_url.url"


def test_tool_round_trip_turns_merge_and_alternate() -> None:
    calls = [
        {
            "id": "c1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
    ]
    body = to_converse(
        request(
            messages=[
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": calls},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "c2", "content": "rain"},
            ],
            tools=[TOOL],
            tool_choice="required",
        )
    )
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "c1", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": "c2", "name": "get_weather", "input": {}}},
        ],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": "c1", "content": [{"text": "sunny"}]}},
            {"toolResult": {"toolUseId": "c2", "content": [{"text": "rain"}]}},
        ],
    }
    assert body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Weather now",
                    "inputSchema": {"json": TOOL["function"]["parameters"]},  # type: ignore[index]
                }
            }
        ],
        "toolChoice": {"any": {}},
    }
    check_converse(body)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"tool": {"name": "get_weather"}},
        ),
        (None, None),
    ],
)
def test_tool_choice(choice: Any, expected: Any) -> None:
    fields: dict[str, Any] = {"messages": [{"role": "user", "content": "x"}], "tools": [TOOL]}
    if choice is not None:
        fields["tool_choice"] = choice
    config = to_converse(request(**fields))["toolConfig"]
    assert config.get("toolChoice") == expected


def test_tool_choice_none_declares_no_tools_unless_tool_turns_need_a_tool_config() -> None:
    plain = request(messages=[{"role": "user", "content": "x"}], tools=[TOOL], tool_choice="none")
    assert "toolConfig" not in to_converse(plain)
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    history = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "found"},
    ]
    # No tools sent at all: the used one is declared, since Bedrock refuses tool turns without.
    body = to_converse(request(messages=history))
    assert body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "lookup",
                    "inputSchema": {"json": {"type": "object", "properties": {}}},
                }
            }
        ]
    }
    check_converse(body)


def test_json_mode_is_a_forced_tool_whose_input_is_the_answer() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    req = request(
        messages=[{"role": "user", "content": "Rome"}],
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
    )
    config = to_converse(req)["toolConfig"]
    assert config["toolChoice"] == {"tool": {"name": "json_response"}}
    assert config["tools"][0]["toolSpec"]["inputSchema"] == {"json": schema}
    answer = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {
                        "toolUse": {
                            "toolUseId": "t",
                            "name": "json_response",
                            "input": {"city": "Rome"},
                        }
                    }
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7},
    }
    reply = bedrock_to_parley_completion(answer, "m", json_mode=True)
    assert reply.choices[0].message.content == '{"city":"Rome"}'
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("tool_use", "tool_calls"),
        ("malformed_model_output", "stop"),
    ],
)
def test_stop_reason_to_finish_reason(stop: str, finish: str) -> None:
    content: list[dict[str, Any]] = [{"text": "hi"}]
    if stop == "tool_use":
        content.append({"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}})
    data = {"output": {"message": {"content": content}}, "stopReason": stop, "usage": {}}
    assert (
        bedrock_to_parley_completion(data, "m", json_mode=False).choices[0].finish_reason == finish
    )


def test_answer_with_text_tool_calls_reasoning_and_cache_usage() -> None:
    data = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "think", "signature": "sig"}}},
                    {"text": "Calling."},
                    {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"q": "x"}}},
                    {"toolUse": {"toolUseId": "t2", "name": "g", "input": {}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {
            "inputTokens": 10,
            "outputTokens": 5,
            "totalTokens": 115,
            "cacheReadInputTokens": 60,
            "cacheWriteInputTokens": 40,
        },
        "metrics": {"latencyMs": 5},
    }
    reply = bedrock_to_parley_completion(data, "anthropic.claude", json_mode=False)
    message = reply.choices[0].message
    assert message.content == "Calling."
    assert message.reasoning_content == "think"
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []] == [
        ("t1", "f", '{"q":"x"}'),
        ("t2", "g", "{}"),
    ]
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (110, 5)
    assert reply.usage.total_tokens == 115  # Bedrock's own total
    assert reply.usage.prompt_tokens_details == {"cached_tokens": 60, "cache_creation_tokens": 40}


def test_usage_without_cache_has_no_details() -> None:
    usage = usage_from({"inputTokens": 7, "outputTokens": 2, "totalTokens": 9})
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (7, 2, 9)
    assert usage.prompt_tokens_details is msgspec.UNSET


@pytest.mark.parametrize(
    ("status", "name", "expected_status", "error_type"),
    [
        (429, "ThrottlingException", 429, "rate_limit_error"),
        (400, "ValidationException", 400, "invalid_request_error"),
        (403, "AccessDeniedException", 403, "permission_error"),
        (503, "ServiceUnavailableException", 503, "upstream_error"),
        (424, "ModelErrorException", 502, "upstream_error"),
    ],
)
def test_error_answers_keep_status_message_and_aws_name(
    status: int, name: str, expected_status: int, error_type: str
) -> None:
    headers = {"x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    with pytest.raises(UpstreamStatusError) as info:
        raise_for_bedrock_status(status, headers, b'{"message":"Too many requests"}', "dep")
    error = info.value
    assert error.status_code == expected_status
    assert error.code == name
    assert error.error_type == error_type
    assert "Too many requests" in error.message


def test_error_name_from_the_body_when_the_header_is_missing() -> None:
    body = (
        b'{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"bad token"}'
    )
    with pytest.raises(UpstreamStatusError) as info:
        raise_for_bedrock_status(403, {}, body, "dep")
    assert info.value.code == "UnrecognizedClientException"
    assert "bad token" in info.value.message


# --- the stream ------------------------------------------------------------------------------


def event(kind: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return aws.event_frame(headers, json.dumps({**payload, "p": "abc"}).encode())


@dataclass
class FakeUpstream:
    """What the translator reads: ``deployment`` and ``chunks()``."""

    data: bytes
    piece: int
    deployment: str = "dep"

    async def chunks(self) -> AsyncIterator[bytes]:
        for at in range(0, len(self.data), self.piece):
            yield self.data[at : at + self.piece]


async def translate(
    frames: list[bytes], piece: int = 7, json_mode: bool = False
) -> list[ChatCompletionChunk]:
    upstream = FakeUpstream(b"".join(frames), piece)
    translator = StreamTranslator(upstream, "m", json_mode=json_mode)  # type: ignore[arg-type]
    return [chunk async for chunk in translator.chunks()]


TOOL_STREAM = [
    event("messageStart", {"role": "assistant"}),
    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Let me check."}}),
    event("contentBlockStop", {"contentBlockIndex": 0}),
    event(
        "contentBlockStart",
        {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "a", "name": "f"}}},
    ),
    *[
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": piece}}})
        for piece in ['{"ci', 'ty": "Pa', 'ris"', "}"]
    ],
    event("contentBlockStop", {"contentBlockIndex": 1}),
    event(
        "contentBlockStart",
        {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "b", "name": "now"}}},
    ),
    event("contentBlockStop", {"contentBlockIndex": 2}),
    event("messageStop", {"stopReason": "tool_use"}),
    event(
        "metadata",
        {
            "usage": {"inputTokens": 9, "outputTokens": 3, "totalTokens": 12},
            "metrics": {"latencyMs": 1},
        },
    ),
]


@pytest.mark.parametrize("piece", [1, 7, 100_000])
async def test_stream_tool_calls_pass_through_byte_for_byte(piece: int) -> None:
    chunks = await translate(TOOL_STREAM, piece)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Let me check."
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                assert call.function is not None
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
    assert calls == {
        0: {"id": "a", "name": "f", "arguments": '{"city": "Paris"}'},  # exactly as sent
        1: {"id": "b", "name": "now", "arguments": "{}"},  # no input at all: OpenAI's "{}"
    }
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["tool_calls"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 12


async def test_stream_with_a_corrupted_frame_is_a_protocol_error() -> None:
    frames = list(TOOL_STREAM)
    frames[1] = aws.corrupt(frames[1])
    with pytest.raises(UpstreamProtocolError, match="malformed event-stream"):
        await translate(frames)


async def test_stream_cut_before_message_stop_is_an_error_not_a_finish() -> None:
    with pytest.raises(UpstreamProtocolError, match="before it was complete"):
        await translate(TOOL_STREAM[:4])


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("throttlingException", 429),
        ("modelStreamErrorException", 502),
        ("validationException", 400),
    ],
)
async def test_stream_exception_is_the_upstream_error_it_reports(kind: str, status: int) -> None:
    headers = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    failure = aws.event_frame(headers, b'{"message":"model overloaded"}')
    with pytest.raises(UpstreamStatusError) as info:
        await translate([*TOOL_STREAM[:2], failure])
    assert info.value.status_code == status
    assert "model overloaded" in info.value.message
    assert info.value.code == kind[0].upper() + kind[1:]


# --- signing --------------------------------------------------------------------------------

STATIC = AwsCredentials(
    aws.FAKE_AWS_REGION, Secret(aws.FAKE_AWS_ACCESS_KEY_ID), Secret(aws.FAKE_AWS_SECRET_ACCESS_KEY)
)
SESSION = AwsCredentials(
    aws.FAKE_AWS_REGION,
    Secret(aws.FAKE_AWS_SESSION_KEY_ID),
    Secret(aws.FAKE_AWS_SESSION_SECRET),
    Secret(aws.FAKE_AWS_SESSION_TOKEN),
)
URL = "http://127.0.0.1:9/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
BODY = b'{"messages":[{"role":"user","content":[{"text":"hi"}]}]}'


def incoming(headers: dict[str, str], body: bytes = BODY, path: str | None = None) -> aws.Incoming:
    """What the server sees: the headers as sent (``Host`` among them)."""
    raw_path = path or URL.removeprefix("http://127.0.0.1:9")
    return aws.Incoming("POST", headers["Host"], raw_path, CaseInsensitive(headers), body)


class CaseInsensitive(dict[str, str]):
    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        lowered = {k.lower(): v for k, v in self.items()}
        return lowered.get(key.lower(), default)


@pytest.mark.parametrize("creds", [STATIC, SESSION], ids=["static", "session"])
def test_signature_verifies(creds: AwsCredentials) -> None:
    headers = SigV4Signer(creds).sign(URL, {"Content-Type": "application/json"}, BODY)
    assert headers["Host"] == "127.0.0.1:9"
    assert headers["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={creds.access_key_id.reveal()}/"
    )
    assert ("X-Amz-Security-Token" in headers) == (creds.session_token is not None)
    assert aws.verify_sigv4(incoming(headers)) is None


def test_the_signature_covers_body_path_headers_and_secret() -> None:
    headers = SigV4Signer(STATIC).sign(URL, {"Content-Type": "application/json"}, BODY)
    assert (
        aws.verify_sigv4(incoming(headers, body=BODY + b" ")).error == "InvalidSignatureException"
    )  # type: ignore[union-attr]
    other_model = "/model/anthropic.claude-3-haiku-v1%3A0/converse"
    assert aws.verify_sigv4(incoming(headers, path=other_model)) is not None
    assert aws.verify_sigv4(incoming({**headers, "Content-Type": "text/plain"})) is not None
    wrong = AwsCredentials(STATIC.region, STATIC.access_key_id, Secret("not-the-secret"))
    forged = SigV4Signer(wrong).sign(URL, {"Content-Type": "application/json"}, BODY)
    assert aws.verify_sigv4(incoming(forged)).error == "InvalidSignatureException"  # type: ignore[union-attr]


def test_unsigned_unknown_stale_and_tokenless_requests_are_refused() -> None:
    headers = SigV4Signer(STATIC).sign(URL, {"Content-Type": "application/json"}, BODY)
    unsigned = {k: v for k, v in headers.items() if k != "Authorization"}
    assert aws.verify_sigv4(incoming(unsigned)).error == "MissingAuthenticationTokenException"  # type: ignore[union-attr]
    stranger = AwsCredentials(
        STATIC.region, Secret("AKIAUNKNOWN000000000"), STATIC.secret_access_key
    )
    unknown = SigV4Signer(stranger).sign(URL, {"Content-Type": "application/json"}, BODY)
    assert aws.verify_sigv4(incoming(unknown)).error == "UnrecognizedClientException"  # type: ignore[union-attr]
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=6)
    assert aws.verify_sigv4(incoming(headers), now=later).message.startswith("Signature expired")  # type: ignore[union-attr]
    elsewhere = AwsCredentials("eu-west-1", STATIC.access_key_id, STATIC.secret_access_key)
    scoped = SigV4Signer(elsewhere).sign(URL, {"Content-Type": "application/json"}, BODY)
    assert "region" in aws.verify_sigv4(incoming(scoped)).message  # type: ignore[union-attr]
    session = SigV4Signer(SESSION).sign(URL, {"Content-Type": "application/json"}, BODY)
    tokenless = {k: v for k, v in session.items() if k != "X-Amz-Security-Token"}
    assert aws.verify_sigv4(incoming(tokenless)).error == "UnrecognizedClientException"  # type: ignore[union-attr]


def test_botocore_is_not_imported_without_a_bedrock_deployment() -> None:
    """Start-up is measured: botocore's import is paid only by a Bedrock deployment."""
    code = (
        "import sys, parley.app, parley.providers.factory, parley.gateway.pipeline\n"
        "assert 'botocore' not in sys.modules, 'botocore imported'\n"
        "from parley.providers.factory import build_provider\n"
        "from parley.providers.http import UpstreamPool\n"
        "from parley.testing.servers import models_from, BEDROCK_CREDENTIALS\n"
        "dep = models_from([{'name': 'b', 'deployments': [{'provider': 'bedrock', 'model': 'm',"
        " **BEDROCK_CREDENTIALS}]}]).groups[0].deployments[0]\n"
        "build_provider(dep, UpstreamPool())\n"
        "assert 'botocore.auth' in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


async def test_stream_reasoning_and_json_mode_tool_become_text() -> None:
    start = {"toolUse": {"toolUseId": "j", "name": "json_response"}}
    frames = [
        event("messageStart", {"role": "assistant"}),
        event(
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}},
        ),
        event(
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "s"}}},
        ),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("contentBlockStart", {"contentBlockIndex": 1, "start": start}),
        event(
            "contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"a"'}}}
        ),
        event(
            "contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": ":1}"}}}
        ),
        event("contentBlockStop", {"contentBlockIndex": 1}),
        event("messageStop", {"stopReason": "tool_use"}),
        event(
            "metadata",
            {"usage": {"inputTokens": 1, "outputTokens": 1}, "metrics": {"latencyMs": 1}},
        ),
    ]
    chunks = await translate(frames, json_mode=True)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.reasoning_content or "" for d in deltas) == "hmm"
    assert "".join(d.content or "" for d in deltas) == '{"a":1}'
    assert not any(d.tool_calls for d in deltas)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


async def test_stream_complete_but_without_metadata_still_finishes() -> None:
    chunks = await translate([*TOOL_STREAM[:-1]])
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert all(c.usage is None for c in chunks)
