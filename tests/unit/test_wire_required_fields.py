"""Parley's outbound OpenAI bodies carry every field the real API requires, and the fake
refuses bodies that lack one, as the real API does (so the suite catches this class)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import msgspec
import pytest

from parley.schema.chat import (
    AssistantMessage,
    ChatRequest,
    FunctionCall,
    FunctionDef,
    ImagePart,
    ImageURL,
    JSONSchemaFormat,
    JSONSchemaSpec,
    NamedToolChoice,
    TextPart,
    Tool,
    ToolCall,
    ToolChoiceFunction,
    ToolMessage,
    UserMessage,
    decode_chat_request,
)
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.openai_rules import Rejected, check_chat


def _full_request() -> ChatRequest:
    return ChatRequest(
        model="gpt-4o-mini",
        messages=[
            UserMessage([TextPart("what is this?"), ImagePart(ImageURL("https://x.test/a.png"))]),
            AssistantMessage(tool_calls=[ToolCall("call_1", FunctionCall("look", "{}"))]),
            ToolMessage([TextPart("a cat")], "call_1"),
        ],
        tools=[Tool(FunctionDef("look", parameters={"type": "object"}))],
        tool_choice=NamedToolChoice(ToolChoiceFunction("look")),
        response_format=JSONSchemaFormat(JSONSchemaSpec("answer", {"type": "object"})),
    )


def test_outbound_body_keeps_every_required_type_field() -> None:
    body = json.loads(msgspec.json.encode(_full_request()))
    assert body["tools"][0]["type"] == "function"
    assert body["messages"][1]["tool_calls"][0]["type"] == "function"
    assert body["tool_choice"]["type"] == "function"
    assert body["response_format"]["type"] == "json_schema"
    assert [p["type"] for p in body["messages"][0]["content"]] == ["text", "image_url"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool"]
    check_chat(body)  # the fake's reading of the API reference accepts it


def test_client_bodies_without_type_are_completed_before_going_upstream() -> None:
    """Clients may leave ``type`` out (Parley accepts it); upstream always gets it."""
    request = decode_chat_request(
        b'{"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c",'
        b'"function": {"name": "f", "arguments": "{}"}}]}],'
        b'"tools": [{"function": {"name": "f"}}], "tool_choice": {"function": {"name": "f"}}}'
    )
    body = json.loads(msgspec.json.encode(request))
    check_chat(body)
    assert body["tools"] == [{"type": "function", "function": {"name": "f"}}]


@pytest.mark.parametrize(
    ("change", "message", "param", "code"),
    [
        (
            lambda b: b["tools"][0].pop("type"),
            "Missing required parameter: 'tools[0].type'.",
            "tools[0].type",
            "missing_required_parameter",
        ),
        (
            lambda b: b["messages"][1]["tool_calls"][0].pop("type"),
            "Missing required parameter: 'messages[1].tool_calls[0].type'.",
            "messages[1].tool_calls[0].type",
            "missing_required_parameter",
        ),
        (
            lambda b: b["response_format"].pop("type"),
            "Missing required parameter: 'response_format.type'.",
            "response_format.type",
            "missing_required_parameter",
        ),
        (
            lambda b: b["messages"][0]["content"][0].pop("type"),
            "Missing required parameter: 'messages[0].content[0].type'.",
            "messages[0].content[0].type",
            "missing_required_parameter",
        ),
        (
            lambda b: b["messages"][0].pop("role"),
            "Missing required parameter: 'messages[0].role'.",
            "messages[0].role",
            "missing_required_parameter",
        ),
        (
            lambda b: b.update(temperature="hot"),
            "Invalid type for 'temperature': expected a decimal, but got a string instead.",
            "temperature",
            "invalid_type",
        ),
        (
            lambda b: b.update(top_k=5),
            "Unrecognized request argument supplied: top_k",
            None,
            None,
        ),
    ],
)
@pytest.mark.parametrize("route", ["openai", "azure"])
async def test_fake_refuses_what_the_real_api_refuses(
    change: Any, message: str, param: str | None, code: str | None, route: str
) -> None:
    body = json.loads(msgspec.json.encode(_full_request()))
    change(body)
    with pytest.raises(Rejected):
        check_chat(body, azure=route == "azure")
    async with FakeUpstream() as fake, httpx.AsyncClient(base_url=fake.url) as client:
        if route == "openai":
            url = "/v1/chat/completions"
        else:
            url = "/openai/deployments/d/chat/completions?api-version=2024-06-01"
        resp = await client.post(url, json=body, headers={"api-key": "k"})
    assert resp.status_code == 400
    assert resp.json() == {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }
