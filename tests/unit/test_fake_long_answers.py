"""The fake upstream's long Markdown answers (``markdown-N``) streamed in fixed-size deltas
(``delta-chars-N``), as the web benchmark asks for them, in the OpenAI and Anthropic
stream formats."""

from __future__ import annotations

import json

import httpx

from parley.testing.fake_upstream import FakeUpstream
from parley.testing.scenario import markdown_document

MODEL = "gpt-4o-mini+markdown-3000+delta-chars-20"


def _events(body: str) -> list[dict[str, object]]:
    return [
        json.loads(line[5:])
        for line in body.splitlines()
        if line.startswith("data:") and line != "data: [DONE]"
    ]


def test_the_document_is_whole_sections_of_varied_markdown() -> None:
    text = markdown_document(3000)
    assert len(text) >= 3000
    assert text == markdown_document(3000)  # the same every time
    assert text.count("```") % 2 == 0  # every fence closed
    for mark in ("## ", "```python", "|---|", "> ", "$a_"):
        assert mark in text


async def test_openai_stream_sends_the_document_in_20_character_deltas() -> None:
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "go"}]}
    async with FakeUpstream() as fake, httpx.AsyncClient(base_url=fake.url) as client:
        resp = await client.post("/v1/chat/completions", json=body)
    pieces = [
        choice["delta"]["content"]
        for event in _events(resp.text)
        for choice in event["choices"]  # type: ignore[attr-defined]
        if choice["delta"].get("content")
    ]
    assert "".join(pieces) == markdown_document(3000)
    assert {len(p) for p in pieces[:-1]} == {20}
    assert 0 < len(pieces[-1]) <= 20


async def test_anthropic_stream_sends_the_same_deltas() -> None:
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "go"}],
    }
    headers = {"anthropic-version": "2023-06-01", "x-api-key": "k"}
    async with FakeUpstream() as fake, httpx.AsyncClient(base_url=fake.url) as client:
        resp = await client.post("/v1/messages", json=body, headers=headers)
    pieces = [
        event["delta"]["text"]  # type: ignore[index]
        for event in _events(resp.text)
        if event.get("type") == "content_block_delta"
    ]
    assert "".join(pieces) == markdown_document(3000)
    assert {len(p) for p in pieces[:-1]} == {20}
