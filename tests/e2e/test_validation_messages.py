"""A refused field is named in the error's message itself, as OpenAI names it: the SDKs
print the message alone, so "Expected `float` <= 2.0" left a user guessing which field.
Both ways into the handlers are checked: the fast path, and the framework path a browser's
cross-origin call takes (the CORS layer)."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from parley.testing.fake_upstream import FakeUpstream
from tests.conftest import ParleyFactory

ORIGIN = "https://app.example"
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(params=["fast", "framework"])
def post(request: pytest.FixtureRequest, parley: ParleyFactory) -> Any:
    url = parley(cors_origins=[ORIGIN])
    headers = {"origin": ORIGIN} if request.param == "framework" else {}

    def send(path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{url}{path}", json=body, headers=headers)

    return send


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        (
            {"model": "openai", "messages": USER, "temperature": 3},
            "Invalid value for 'temperature': Expected `float` <= 2.0",
            "temperature",
        ),
        (
            {"model": "openai", "messages": USER, "temperature": "warm"},
            "Invalid type for 'temperature': Expected `float | null`, got `str`",
            "temperature",
        ),
        (
            {"model": "openai", "messages": [{"role": "user"}]},
            "Missing required parameter: 'messages[0].content'.",
            "messages[0]",
        ),
        (
            {"model": "openai"},
            "Missing required parameter: 'messages'.",
            None,
        ),
        (
            {"model": "openai", "messages": [{"role": "robot", "content": "x"}]},
            "Invalid value for 'messages[0].role': Invalid value 'robot'",
            "messages[0].role",
        ),
    ],
)
def test_chat_errors_name_the_field(
    post: Any, fake: FakeUpstream, body: dict[str, Any], message: str, param: str | None
) -> None:
    response = post("/v1/chat/completions", body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == message
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert fake.calls == []


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        (
            {"model": "openai", "input": "x", "dimensions": 0},
            "Invalid value for 'dimensions': Expected `int` >= 1",
            "dimensions",
        ),
        (
            {"model": "openai", "input": "x", "encoding_format": "hex"},
            "Invalid value for 'encoding_format': Invalid enum value 'hex'",
            "encoding_format",
        ),
        (
            {"model": "openai", "input": [1, "a"]},
            "Invalid value for 'input': input must be a string or a list of strings; token "
            "arrays are not supported",
            "input",
        ),
    ],
)
def test_embedding_errors_name_the_field(
    post: Any, fake: FakeUpstream, body: dict[str, Any], message: str, param: str
) -> None:
    response = post("/v1/embeddings", body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == message
    assert error["param"] == param
    assert fake.calls == []


def test_the_sdk_shows_the_field(parley: ParleyFactory) -> None:
    """What a user of the openai SDK actually reads: ``str(error)``."""
    client = openai.OpenAI(base_url=parley() + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="openai", messages=USER, top_p=1.5)  # type: ignore[arg-type]
    assert "'top_p'" in str(info.value)
