"""Every provider family's answer says what it cost: ``x-parley-cost-usd`` and
``x-parley-cached-tokens`` on a complete answer, the ``parley`` object of a stream's last
(usage) chunk, each equal to the figure computed here by hand from the usage the answer
reports, at prices set on the deployments so the arithmetic is plain."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from parley.testing.servers import FAMILIES
from tests.conftest import ParleyFactory
from tests.polling import eventually

# USD per million tokens: one input token costs $0.001, a cached read $0.0001, an output
# token $0.002, a reasoning token (where the provider reports them apart) $0.003.
PRICE = {
    "input_per_mtok": 1000.0,
    "cached_input_per_mtok": 100.0,
    "output_per_mtok": 2000.0,
    "reasoning_output_per_mtok": 3000.0,
}
# Cached reads (OpenAI and Gemini formats) and reasoning (OpenAI's reasoning_tokens,
# Gemini's thoughtsTokenCount; Anthropic and Bedrock count thinking as plain output).
DIRECTIVE = "+tokens-9+cached-2+reasoning"
BODY = {"messages": [{"role": "user", "content": "one two three four five six"}], "max_tokens": 9}


def by_hand(usage: dict[str, Any]) -> float:
    """Uncached input at the input price, cache reads at the cached price, cache writes at
    the input price (no write price set), reasoning at its price, the rest of the output at
    the output price."""
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens", 0)
    written = details.get("cache_creation_tokens", 0)
    uncached = usage["prompt_tokens"] - cached - written
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
    output = usage["completion_tokens"] - reasoning
    tokens = uncached * 1000 + cached * 100 + written * 1000 + reasoning * 3000 + output * 2000
    return tokens / 1e6


def _events(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line[len("data: ") :])
        for line in text.splitlines()
        if line.startswith("data: {")
    ]


def _answered(url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    response = httpx.post(f"{url}{path}", json=body)
    assert response.status_code == 200, response.text
    return response


def _the_costed_event(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The stream's one ``kind`` event, which must be the only one carrying ``parley``."""
    (found,) = [e for e in events if e["type"] == kind]
    assert [e["type"] for e in events if "parley" in e] == [kind]
    return found


@pytest.mark.parametrize("family", FAMILIES)
def test_a_complete_answer_carries_its_cost(parley: ParleyFactory, family: str) -> None:
    url = parley(directive=DIRECTIVE, extra={"price": PRICE})
    response = httpx.post(f"{url}/v1/chat/completions", json={**BODY, "model": family})
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert usage["completion_tokens"] >= 9
    assert float(response.headers["x-parley-cost-usd"]) == pytest.approx(by_hand(usage))
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    assert response.headers["x-parley-cached-tokens"] == str(cached)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_stream_ends_with_its_cost(parley: ParleyFactory, family: str) -> None:
    url = parley(directive=DIRECTIVE, extra={"price": PRICE})
    body = {**BODY, "model": family, "stream": True, "stream_options": {"include_usage": True}}
    response = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    chunks = _events(response.text)
    last = chunks[-1]
    assert last["choices"] == []
    usage = last["usage"]
    assert usage["completion_tokens"] >= 9
    assert last["parley"]["cost_usd"] == pytest.approx(by_hand(usage))
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    assert last["parley"]["cached_tokens"] == cached
    assert all("parley" not in chunk for chunk in chunks[:-1])


@pytest.mark.parametrize("family", ["openai", "gemini"])
def test_cached_reads_and_reasoning_are_priced_apart(parley: ParleyFactory, family: str) -> None:
    """The directive must really produce cached reads and reasoning tokens, or the tests
    above would only ever check plain input and output."""
    url = parley(directive=DIRECTIVE, extra={"price": PRICE})
    response = httpx.post(f"{url}/v1/chat/completions", json={**BODY, "model": family})
    usage = response.json()["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 2
    reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
    assert reasoning > 0
    output = usage["completion_tokens"] - reasoning
    expected = (
        (usage["prompt_tokens"] - 2) * 0.001 + 2 * 0.0001 + reasoning * 0.003 + output * 0.002
    )
    assert float(response.headers["x-parley-cost-usd"]) == pytest.approx(expected)


def messages_by_hand(usage: dict[str, Any]) -> float:
    """Anthropic's counts: ``input_tokens`` is the uncached input; no reasoning apart (the
    directive below asks for none, so every output token is at the output price)."""
    tokens = (
        usage["input_tokens"] * 1000
        + usage["cache_read_input_tokens"] * 100
        + usage["cache_creation_input_tokens"] * 1000
        + usage["output_tokens"] * 2000
    )
    return tokens / 1e6


def responses_by_hand(usage: dict[str, Any]) -> float:
    cached = usage["input_tokens_details"]["cached_tokens"]
    reasoning = usage["output_tokens_details"]["reasoning_tokens"]
    tokens = (
        (usage["input_tokens"] - cached) * 1000
        + cached * 100
        + reasoning * 3000
        + (usage["output_tokens"] - reasoning) * 2000
    )
    return tokens / 1e6


MESSAGES = {"messages": BODY["messages"], "max_tokens": 9}
RESPONSES = {"input": "one two three four five six", "max_output_tokens": 9}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("stream", [False, True])
def test_a_messages_answer_carries_its_cost(
    parley: ParleyFactory, family: str, stream: bool
) -> None:
    """/v1/messages: the headers on a complete answer; on a stream, ``parley`` beside the
    usage of its ``message_delta`` (and on no other event)."""
    url = parley(directive="+tokens-9+cached-2", extra={"price": PRICE})
    response = _answered(url, "/v1/messages", {**MESSAGES, "model": family, "stream": stream})
    if not stream:
        usage = response.json()["usage"]
        assert float(response.headers["x-parley-cost-usd"]) == pytest.approx(
            messages_by_hand(usage)
        )
        return
    delta = _the_costed_event(_events(response.text), "message_delta")
    usage = delta["usage"]
    assert usage["output_tokens"] >= 9
    assert delta["parley"]["cost_usd"] == pytest.approx(messages_by_hand(usage))
    assert delta["parley"]["cached_tokens"] == usage["cache_read_input_tokens"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("stream", [False, True])
def test_a_responses_answer_carries_its_cost(
    parley: ParleyFactory, family: str, stream: bool
) -> None:
    """/v1/responses: the headers on a complete answer; on a stream, ``parley`` beside the
    response of ``response.completed``, and the stored response has none of it."""
    url = parley(directive=DIRECTIVE, extra={"price": PRICE})
    response = _answered(url, "/v1/responses", {**RESPONSES, "model": family, "stream": stream})
    if not stream:
        usage = response.json()["usage"]
        assert float(response.headers["x-parley-cost-usd"]) == pytest.approx(
            responses_by_hand(usage)
        )
        return
    completed = _the_costed_event(_events(response.text), "response.completed")
    usage = completed["response"]["usage"]
    assert usage["output_tokens"] >= 9
    assert completed["parley"]["cost_usd"] == pytest.approx(responses_by_hand(usage))
    assert completed["parley"]["cached_tokens"] == usage["input_tokens_details"]["cached_tokens"]
    stored = httpx.get(f"{url}/v1/responses/{completed['response']['id']}")
    assert stored.status_code == 200, stored.text
    assert "parley" not in stored.json()
    assert stored.json()["usage"] == usage


@pytest.mark.parametrize("family", ["anthropic", "bedrock"])
def test_prompt_cache_writes_and_reads_are_priced_and_recorded(
    parley: ParleyFactory, family: str
) -> None:
    """Two /v1/messages requests with one breakpoint (a Bedrock cachePoint): the first
    writes the 6-word prefix, the second reads it. Each answer's cost header, and the
    usage record of both, equal the figures computed here: uncached input at $0.001 a
    token, writes at $0.00125, reads at $0.0001, output at $0.002."""
    admin = "admin-key-for-the-cache-cost-test"
    url = parley(
        admin_key=admin,
        usage_flush_seconds=0.05,
        extra={"price": {**PRICE, "cache_write_per_mtok": 1250.0}},
    )
    system = [{"type": "text", "text": "a b c d e f", "cache_control": {"type": "ephemeral"}}]
    body = {
        "model": family,
        "max_tokens": 16,
        "system": system,
        "messages": [{"role": "user", "content": "g h"}],
    }
    headers = {"authorization": f"Bearer {admin}"}
    usages, costs = [], []
    for _ in range(2):
        response = httpx.post(f"{url}/v1/messages", json=body, headers=headers)
        assert response.status_code == 200, response.text
        usages.append(response.json()["usage"])
        costs.append(float(response.headers["x-parley-cost-usd"]))
    first, second = usages
    assert (first["input_tokens"], first["cache_creation_input_tokens"]) == (2, 6)
    assert (second["input_tokens"], second["cache_read_input_tokens"]) == (2, 6)
    output = first["output_tokens"]
    by_hand = [
        (2 * 1000 + 6 * 1250 + output * 2000) / 1e6,
        (2 * 1000 + 6 * 100 + output * 2000) / 1e6,
    ]
    assert costs == pytest.approx(by_hand)
    rows: list[dict[str, Any]] = []

    def recorded() -> bool:
        nonlocal rows
        params = {"group_by": "model_group"}
        rows = httpx.get(f"{url}/admin/usage", params=params, headers=headers).json()["data"]
        return bool(rows) and rows[0]["requests"] == 2

    eventually(recorded)
    assert rows[0]["bucket"] == family
    assert rows[0]["prompt_tokens"] == 2 * 8
    assert rows[0]["cached_tokens"] == 6
    assert rows[0]["completion_tokens"] == 2 * output
    assert rows[0]["cost_usd"] == pytest.approx(sum(by_hand))
