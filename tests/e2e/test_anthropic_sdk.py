"""The official ``anthropic`` SDK, pointed at a running Parley, gets Anthropic's shapes back
from every provider family's fake: plain and streamed answers, tool-use round trips (the
streamed arguments byte-equal to what the upstream sent), thinking with signatures kept
through a tool loop, prompt-cache breakpoints reaching Anthropic and cache usage coming
back, and errors in Anthropic's envelope."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import FAMILIES as ALL_FAMILIES
from tests.conftest import ParleyFactory

FAMILIES = list(ALL_FAMILIES)  # anthropic, openai, azure, gemini, openai_compatible
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def client(parley: ParleyFactory) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=parley(), api_key="unused", max_retries=0) as sdk:
        yield sdk


def _sdk(base_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0)


def _upstream_body(fake: FakeUpstream) -> dict[str, Any]:
    body = fake.calls[-1].body
    assert isinstance(body, dict)
    return body


@pytest.mark.parametrize("family", FAMILIES)
def test_plain_message(client: anthropic.Anthropic, family: str, fake: FakeUpstream) -> None:
    reply = client.messages.create(
        model=family,
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": "hello there"}],
        extra_body={"temperature": 0.2},  # this SDK no longer types the sampling knobs
    )
    assert reply.type == "message"
    assert reply.role == "assistant"
    assert reply.id.startswith("msg_")
    assert [block.type for block in reply.content] == ["text"]
    assert reply.content[0].text == "You said: hello there"  # type: ignore[union-attr]
    assert reply.stop_reason == "end_turn"
    assert reply.usage.output_tokens > 0
    assert reply.usage.input_tokens > 0
    assert len(fake.calls) == 1


def test_translated_request_reaches_openai(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    client.messages.create(
        model="openai",
        max_tokens=64,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        stop_sequences=["END"],
        metadata={"user_id": "user-7"},
        thinking={"type": "enabled", "budget_tokens": 2048},
    )
    body = _upstream_body(fake)
    assert body["messages"][0] == {
        "role": "system",
        "content": [{"type": "text", "text": "Be brief."}],
    }
    assert body["stop"] == ["END"]
    assert body["user"] == "user-7"
    assert body["max_tokens"] == 64
    assert body["reasoning_effort"] == "low"  # a 2048-token budget
    assert "thinking" not in body
    assert "protocol" not in body


def test_openai_refuses_top_k_unless_dropped(parley: ParleyFactory, fake: FakeUpstream) -> None:
    """top_k is Anthropic's; OpenAI cannot honour it: refused by default, in Anthropic's
    envelope, and dropped (and said so in a header) with drop_params."""
    with _sdk(parley()) as strict, pytest.raises(anthropic.BadRequestError) as refused:
        strict.messages.create(
            model="openai",
            max_tokens=16,
            messages=[{"role": "user", "content": "x"}],
            extra_body={"top_k": 5},
        )
    assert refused.value.body["type"] == "error"  # type: ignore[index]
    assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "top_k" in refused.value.body["error"]["message"]  # type: ignore[index]
    assert fake.calls == []
    with _sdk(parley(drop_params=True)) as lenient:
        raw = lenient.messages.with_raw_response.create(
            model="openai",
            max_tokens=16,
            messages=[{"role": "user", "content": "x"}],
            extra_body={"top_k": 5},
        )
    assert raw.headers["x-parley-dropped-params"] == "top_k"
    assert "top_k" not in _upstream_body(fake)


@pytest.mark.parametrize("family", FAMILIES)
def test_tool_use_round_trip(client: anthropic.Anthropic, family: str, fake: FakeUpstream) -> None:
    first = client.messages.create(
        model=family,
        max_tokens=128,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Paris"}],
    )
    assert first.stop_reason == "tool_use"
    uses = [block for block in first.content if block.type == "tool_use"]
    assert len(uses) == 1
    use = uses[0]
    assert use.name == "get_weather"
    assert use.input == {"city": "Paris"}
    second = client.messages.create(
        model=family,
        max_tokens=128,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "Paris"},
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "The tool returned: sunny"  # type: ignore[union-attr]


def test_tool_choice_any_and_none_reach_anthropic(
    client: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    client.messages.create(
        model="anthropic",
        max_tokens=32,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "Paris"}],
    )
    assert _upstream_body(fake)["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    reply = client.messages.create(
        model="openai",
        max_tokens=32,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "none"},
        messages=[{"role": "user", "content": "Paris"}],
    )
    assert _upstream_body(fake)["tool_choice"] == "none"
    assert reply.stop_reason == "end_turn"


def test_errors_in_anthropic_envelope(parley: ParleyFactory, fake: FakeUpstream) -> None:
    base = parley(require_auth=True)
    nobody = anthropic.Anthropic(base_url=base, api_key="pk-not-a-real-key", max_retries=0)
    with nobody, pytest.raises(anthropic.AuthenticationError) as denied:
        nobody.messages.create(
            model="openai", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert denied.value.status_code == 401
    assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    answer = httpx.post(
        base + "/v1/messages",
        headers={"anthropic-version": "2023-06-01"},
        json={"model": "openai", "messages": []},
    )
    assert answer.status_code == 401
    assert answer.json()["type"] == "error"


def test_validation_errors_name_the_field(client: anthropic.Anthropic) -> None:
    missing = httpx.post(
        str(client.base_url).rstrip("/") + "/v1/messages",
        json={"model": "openai", "messages": [{"role": "user", "content": "x"}]},
    )
    assert missing.status_code == 400
    assert missing.json()["type"] == "error"
    error = missing.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "max_tokens" in error["message"]
    with pytest.raises(anthropic.BadRequestError) as bad_block:
        client.messages.create(
            model="openai",
            max_tokens=8,
            messages=[{"role": "user", "content": [{"type": "video", "url": "x"}]}],  # type: ignore[list-item]
        )
    assert "messages[0].content" in bad_block.value.body["error"]["message"]  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as unknown:
        client.messages.create(
            model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert unknown.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_upstream_rate_limit_keeps_type_and_retry_after(
    parley: ParleyFactory, fake: FakeUpstream
) -> None:
    with (
        _sdk(parley(directive="+rate-limited")) as client,
        pytest.raises(anthropic.RateLimitError) as limited,
    ):
        client.messages.create(
            model="anthropic", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert limited.value.status_code == 429
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert limited.value.response.headers["retry-after"] == "7"


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def test_count_tokens(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    short = client.messages.count_tokens(
        model="anthropic", messages=[{"role": "user", "content": "hello"}]
    )
    longer = client.messages.count_tokens(
        model="openai",
        system="You are terse.",
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "hello there, how are you today?"}],
    )
    assert 0 < short.input_tokens < longer.input_tokens
    assert fake.calls == []  # counted by Parley, no upstream call
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(
            model="no-such-model", messages=[{"role": "user", "content": "x"}]
        )


def test_cache_reads_reach_usage_records_and_cost(parley: ParleyFactory) -> None:
    """Two requests with one prompt-cache breakpoint: the first writes the prefix to
    Anthropic's cache, the second reads it; the usage record counts the read, and each is
    billed at its own price."""
    admin = "admin-key-for-the-messages-usage-test"
    url = parley(admin_key=admin)
    system: Any = [{"type": "text", "text": "a b c d e f", "cache_control": {"type": "ephemeral"}}]
    with anthropic.Anthropic(base_url=url, api_key=admin, max_retries=0) as client:
        replies = [
            client.messages.create(
                model="anthropic",
                max_tokens=16,
                system=system,
                messages=[{"role": "user", "content": "g h"}],
            )
            for _ in range(2)
        ]
    assert replies[1].usage.cache_read_input_tokens == 6
    headers = {"authorization": f"Bearer {admin}"}
    rows: list[dict[str, Any]] = []
    for _ in range(100):
        rows = httpx.get(
            url + "/admin/usage", params={"group_by": "model_group"}, headers=headers
        ).json()["data"]
        if rows and rows[0]["requests"] == 2:
            break
        time.sleep(0.1)
    assert rows[0]["bucket"] == "anthropic"
    assert rows[0]["requests"] == 2
    assert rows[0]["prompt_tokens"] == 2 * 8
    assert rows[0]["cached_tokens"] == 6
    completion = rows[0]["completion_tokens"]
    # claude-sonnet-4-5 per million tokens: $3 in, $15 out, $3.75 for a (5-minute) cache
    # write, $0.30 for a cache read. The first request writes the 6-token prefix, the
    # second reads it.
    expected = ((2 * 3.0 + 6 * 3.75) + (2 * 3.0 + 6 * 0.30) + completion * 15.0) / 1e6
    assert rows[0]["cost_usd"] == pytest.approx(expected)


def test_oversized_body_is_request_too_large(parley: ParleyFactory) -> None:
    url = parley(max_request_bytes=2048)
    body = {
        "model": "openai",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "x" * 4096}],
    }
    declared = httpx.post(url + "/v1/messages", json=body)
    chunked = httpx.post(
        url + "/v1/messages",
        content=iter([json.dumps(body).encode()]),  # no Content-Length: counted as it comes
        headers={"content-type": "application/json"},
    )
    for answer in (declared, chunked):
        assert answer.status_code == 413
        assert answer.json()["type"] == "error"
        assert answer.json()["error"]["type"] == "request_too_large"
