"""Request translation details the end-to-end tests do not reach: images, system hoisting,
turn merging, tool results, schema cleaning, and the Azure/Gemini URL and auth shapes."""

from __future__ import annotations

import json

import pytest

from parley.config.loader import parse_models, resolve_groups
from parley.errors import InvalidRequest
from parley.providers.anthropic import to_anthropic
from parley.providers.azure import AzureOpenAIProvider
from parley.providers.gemini import to_gemini
from parley.providers.http import UpstreamPool
from parley.schema.chat import decode_chat_request

IMAGE = "data:image/png;base64,iVBORw0KGgo="


def request(body: str) -> object:
    return decode_chat_request(body.encode())


CONVERSATION = json.dumps(
    {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": IMAGE}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "look", "arguments": '{"q": 1}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "peek", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"seen": "cat"}'},
            {"role": "tool", "tool_call_id": "call_2", "content": "plain text"},
        ],
        "stop": "END",
        "max_tokens": 12,
        "parallel_tool_calls": False,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "look",
                    "parameters": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"q": {"type": "integer"}},
                    },
                },
            }
        ],
        "tool_choice": "required",
    }
)


def test_anthropic_request_shape() -> None:
    body = to_anthropic(request(CONVERSATION), "claude-x", stream=True)  # type: ignore[arg-type]
    assert body["system"] == "Be brief.\n\nUse metric."
    assert body["max_tokens"] == 12
    assert body["stop_sequences"] == ["END"]
    assert body["stream"] is True
    user, assistant, results = body["messages"]
    assert [b["type"] for b in user["content"]] == ["text", "image", "image"]
    assert user["content"][1]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": "iVBORw0KGgo=",
    }
    assert user["content"][2]["source"] == {"type": "url", "url": "https://x.test/a.jpg"}
    assert [b["input"] for b in assistant["content"]] == [{"q": 1}, {}]
    # consecutive tool results merge into one user turn
    assert results["role"] == "user"
    assert [b["tool_use_id"] for b in results["content"]] == ["call_1", "call_2"]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_gemini_request_shape() -> None:
    body = to_gemini(request(CONVERSATION))  # type: ignore[arg-type]
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief.\n\nUse metric."}]}
    user, model, results = body["contents"]
    assert user["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    assert user["parts"][2] == {
        "fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/a.jpg"}
    }
    assert model["role"] == "model"
    assert model["parts"][0]["functionCall"] == {"id": "call_1", "name": "look", "args": {"q": 1}}
    responses = [p["functionResponse"] for p in results["parts"]]
    assert responses[0]["name"] == "look"
    assert responses[0]["response"] == {"seen": "cat"}
    assert responses[1]["response"] == {"result": "plain text"}
    assert body["generationConfig"] == {"maxOutputTokens": 12, "stopSequences": ["END"]}
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    parameters = body["tools"][0]["functionDeclarations"][0]["parameters"]
    assert "additionalProperties" not in parameters


def test_gemini_tool_result_needs_a_known_call() -> None:
    orphan = request(
        '{"model": "m", "messages": [{"role": "user", "content": "x"},'
        '{"role": "tool", "tool_call_id": "nope", "content": "r"}]}'
    )
    with pytest.raises(InvalidRequest) as info:
        to_gemini(orphan)  # type: ignore[arg-type]
    assert info.value.param == "messages[1].tool_call_id"


def test_bad_tool_arguments_are_a_client_error() -> None:
    bad = request(
        '{"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "a",'
        '"type": "function", "function": {"name": "f", "arguments": "{nope"}}]}]}'
    )
    with pytest.raises(InvalidRequest) as info:
        to_anthropic(bad, "c", stream=False)  # type: ignore[arg-type]
    assert info.value.param == "messages[0].tool_calls[0].function.arguments"


@pytest.mark.parametrize(
    ("keys", "header", "value"),
    [
        ({"api_key": "os.environ/K"}, "api-key", "key-value-1"),
        (
            {"api_key": "os.environ/K", "azure_ad_token": "os.environ/T"},
            "Authorization",
            "Bearer token-value-1",
        ),
    ],
)
async def test_azure_url_and_auth(keys: dict[str, str], header: str, value: str) -> None:
    parsed = parse_models(
        {
            "models": [
                {
                    "name": "g",
                    "deployments": [
                        {
                            "provider": "azure",
                            "model": "my dep",
                            "api_base": "https://r.openai.azure.com",
                            "api_version": "2024-06-01",
                            **keys,
                        }
                    ],
                }
            ]
        }
    )
    (group,) = resolve_groups(parsed, {"K": "key-value-1", "T": "token-value-1"})
    pool = UpstreamPool()
    deployment = group.deployments[0]
    provider = AzureOpenAIProvider(
        deployment, pool.client_for(deployment.api_base, deployment.timeout, 1, deployment.label)
    )
    try:
        assert provider._url("chat/completions") == (
            "https://r.openai.azure.com/openai/deployments/my%20dep/chat/completions"
            "?api-version=2024-06-01"
        )
        headers = provider._headers()
        assert headers[header] == value
        assert ("api-key" in headers) != ("Authorization" in headers)
    finally:
        await pool.close()
