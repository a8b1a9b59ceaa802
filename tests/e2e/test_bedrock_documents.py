"""Documents and failed tool results reaching Bedrock through a running Parley: an Anthropic
``document`` block and an OpenAI ``file`` part arrive at the fake (which checks them as
Bedrock does) as Converse ``document`` blocks, a ``tool_result`` with ``is_error`` as a
``toolResult`` with ``status: "error"``; a document Bedrock cannot take is refused before
any upstream call, in the inbound API's own error shape, or dropped and named in
``x-parley-dropped-params`` with ``drop_params``."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import httpx
import openai
import pytest

from parley.testing.fake_upstream import FakeUpstream
from tests.conftest import ParleyFactory

PDF = base64.b64encode(b"%PDF-1.4 quarterly figures").decode()
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
URL_DOCUMENT = {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}


def _bedrock_body(fake: FakeUpstream) -> dict[str, Any]:
    calls = fake.calls_to("bedrock")
    assert len(calls) == 1
    body = calls[0].body
    assert isinstance(body, dict)
    return body


def test_an_anthropic_document_reaches_bedrock_as_a_document_block(
    parley: ParleyFactory, fake: FakeUpstream
) -> None:
    with anthropic.Anthropic(base_url=parley(), api_key="unused", max_retries=0) as client:
        reply = client.messages.create(
            model="bedrock",
            max_tokens=64,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": PDF,
                            },
                            "title": "Q3 figures.pdf",
                            "cache_control": {"type": "ephemeral"},
                        },
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                        },
                        {"type": "text", "text": "summarise them"},
                    ],
                }
            ],
        )
    assert reply.content[0].text == "You said: summarise them"  # type: ignore[union-attr]
    content = _bedrock_body(fake)["messages"][0]["content"]
    assert content[0] == {
        "document": {"format": "pdf", "name": "Q3 figures pdf", "source": {"bytes": PDF}}
    }
    assert content[1] == {"cachePoint": {"type": "default"}}
    plain = content[2]["document"]
    assert (plain["format"], plain["name"]) == ("txt", "document")
    assert base64.b64decode(plain["source"]["bytes"]) == b"notes"
    assert content[3] == {"text": "summarise them"}


@pytest.mark.parametrize("stream", [False, True])
def test_an_is_error_tool_result_reaches_bedrock_as_status_error(
    parley: ParleyFactory, fake: FakeUpstream, stream: bool
) -> None:
    body = {
        "model": "bedrock",
        "max_tokens": 64,
        "stream": stream,
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "weather in Oslo?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": "service down",
                        "is_error": True,
                    },
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "sunny"},
                ],
            },
        ],
    }
    response = httpx.post(f"{parley()}/v1/messages", json=body, timeout=30)
    assert response.status_code == 200, response.text
    results = [b["toolResult"] for b in _bedrock_body(fake)["messages"][2]["content"]]
    assert results == [
        {"toolUseId": "toolu_1", "content": [{"text": "service down"}], "status": "error"},
        {"toolUseId": "toolu_2", "content": [{"text": "sunny"}]},
    ]


def test_an_openai_file_part_reaches_bedrock_as_a_document_block(
    parley: ParleyFactory, fake: FakeUpstream
) -> None:
    client = openai.OpenAI(base_url=parley() + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model="bedrock",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what does it say"},
                    {
                        "type": "file",
                        "file": {
                            "file_data": f"data:application/pdf;base64,{PDF}",
                            "filename": "annual_report.pdf",
                        },
                    },
                ],
            }
        ],
    )
    assert reply.choices[0].message.content == "You said: what does it say"
    document = _bedrock_body(fake)["messages"][0]["content"][1]["document"]
    assert document == {"format": "pdf", "name": "annual report", "source": {"bytes": PDF}}


@pytest.mark.parametrize("stream", [False, True])
def test_a_url_document_is_refused_in_anthropics_shape_before_any_upstream_call(
    parley: ParleyFactory, fake: FakeUpstream, stream: bool
) -> None:
    body = {
        "model": "bedrock",
        "max_tokens": 16,
        "stream": stream,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, URL_DOCUMENT]}],
    }
    response = httpx.post(f"{parley()}/v1/messages", json=body, timeout=30)
    assert response.status_code == 400  # an HTTP error, not a 200 stream
    error = response.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    message = error["error"]["message"]
    assert message.startswith("messages[0].content[1]: ")
    assert "does not fetch document URLs" in message
    assert "drop_params" in message
    assert fake.calls == []


def test_a_file_id_is_refused_in_openais_shape(parley: ParleyFactory, fake: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=parley() + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="bedrock",
            messages=[
                {"role": "system", "content": "be brief"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "read it"},
                        {"type": "file", "file": {"file_id": "file-abc"}},
                    ],
                },
            ],
        )
    error = info.value.body
    assert isinstance(error, dict)
    assert error["code"] == "unsupported_parameter"
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages[1].content[1]"
    assert "cannot read a file by id" in error["message"]
    assert fake.calls == []


def test_with_drop_params_the_document_is_dropped_and_named(
    parley: ParleyFactory, fake: FakeUpstream
) -> None:
    url = parley(drop_params=True)
    body = {
        "model": "bedrock",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, URL_DOCUMENT]}],
    }
    response = httpx.post(f"{url}/v1/messages", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["x-parley-dropped-params"] == "messages[0].content[1]"
    assert "messages[0].content[1]" in response.headers["x-parley-warning"]
    assert _bedrock_body(fake)["messages"] == [{"role": "user", "content": [{"text": "hi"}]}]
    chat = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": "bedrock",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "file", "file": {"file_data": "data:application/zip;base64,UEs="}},
                        {"type": "text", "text": "and this"},
                    ],
                }
            ],
        },
        timeout=30,
    )
    assert chat.status_code == 200, chat.text
    assert chat.headers["x-parley-dropped-params"] == "messages[0].content[0]"
    assert fake.calls[-1].body["messages"] == [{"role": "user", "content": [{"text": "and this"}]}]
