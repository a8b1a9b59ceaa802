"""Answers from OpenAI-compatible servers as they really come: some leave out ``id``,
``created``, ``model`` or a choice's ``index`` (filled, not a protocol error), some send
``reasoning_content`` (vLLM, llama.cpp, DeepSeek), and OpenAI sends usage breakdowns
(``prompt_tokens_details``, ``completion_tokens_details``). Parley passes these on, in
complete answers, in streams, and from its cache."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, models_from, serve_in_thread
from tests.backends import sqlite_url

USER = [{"role": "user", "content": "why is the sky blue"}]
DETAILS = {
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 7,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


@pytest.fixture
def serve(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> Iterator[Callable[..., str]]:
    """Parley with one group ``chat`` on ``provider`` at the fake, model ``model``."""
    servers = contextlib.ExitStack()

    def start(model: str, provider: str = "openai_compatible", cache: bool = False) -> str:
        dep: dict[str, Any] = {"provider": provider, "model": model, "api_base": f"{fake.url}/v1"}
        if provider == "openai":
            dep["api_key"] = "os.environ/PARLEY_TEST_FAKE_KEY"
        groups = [{"name": "chat", "deployments": [dep], "cache": {"enabled": cache}}]
        settings = Settings(database_url=sqlite_url(tmp_path))
        app = create_app(settings, models=models_from(groups))
        return servers.enter_context(serve_in_thread(loop_thread, app))

    with servers:
        yield start


def chunks_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_the_sparse_fake_leaves_the_fields_out(fake: FakeUpstream) -> None:
    body = {"model": "llama+sparse", "messages": USER}
    reply = httpx.post(f"{fake.url}/v1/chat/completions", json=body).json()
    assert not {"id", "created", "model"} & set(reply)
    assert "index" not in reply["choices"][0]
    stream = httpx.post(f"{fake.url}/v1/chat/completions", json={**body, "stream": True})
    first = json.loads(stream.text.split("\n\n")[0].removeprefix("data: "))
    assert not {"id", "created", "model"} & set(first)
    assert "index" not in first["choices"][0]


def test_sparse_completion_is_filled(serve: Callable[..., str]) -> None:
    url = serve("llama+sparse")
    response = httpx.post(f"{url}/v1/chat/completions", json={"model": "chat", "messages": USER})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert body["created"] > 0
    assert body["model"] == "llama+sparse"
    assert body["choices"][0]["index"] == 0
    assert body["choices"][0]["message"]["content"] == "You said: why is the sky blue"


def test_sparse_stream_is_filled_with_one_id(serve: Callable[..., str]) -> None:
    url = serve("llama+sparse")
    body = {
        "model": "chat",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    chunks = chunks_of(httpx.post(f"{url}/v1/chat/completions", json=body))
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert len({c["created"] for c in chunks}) == 1
    assert {c["model"] for c in chunks} == {"llama+sparse"}
    assert all(choice["index"] == 0 for c in chunks for choice in c["choices"])
    text = "".join(ch["delta"].get("content") or "" for c in chunks for ch in c["choices"])
    assert text == "You said: why is the sky blue"
    assert chunks[-1]["usage"]["total_tokens"] > 0


@pytest.mark.parametrize("provider", ["openai", "openai_compatible"])
def test_reasoning_and_usage_details_are_kept(serve: Callable[..., str], provider: str) -> None:
    url = serve("llama+reasoning", provider)
    response = httpx.post(f"{url}/v1/chat/completions", json={"model": "chat", "messages": USER})
    assert response.status_code == 200, response.text
    body = response.json()
    message = body["choices"][0]["message"]
    assert message["reasoning_content"] == "Thinking about: why is the sky blue"
    assert message["content"] == "You said: why is the sky blue"
    for name, value in DETAILS.items():
        assert body["usage"][name] == value

    stream = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": "chat",
            "messages": USER,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    chunks = chunks_of(stream)
    deltas = [ch["delta"] for c in chunks for ch in c["choices"]]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    assert reasoning == "Thinking about: why is the sky blue"
    for name, value in DETAILS.items():
        assert chunks[-1]["usage"][name] == value


def test_plain_answers_keep_openais_shape(serve: Callable[..., str]) -> None:
    """No ``reasoning_content`` key appears where the upstream sent none."""
    url = serve("gpt-4o-mini", "openai")
    body = httpx.post(f"{url}/v1/chat/completions", json={"model": "chat", "messages": USER}).json()
    assert set(body["choices"][0]["message"]) == {"role", "content", "tool_calls", "refusal"}


def test_cache_replay_keeps_reasoning_and_details(
    serve: Callable[..., str], fake: FakeUpstream
) -> None:
    url = serve("llama+reasoning", cache=True)
    stream_body = {
        "model": "chat",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    first = chunks_of(httpx.post(f"{url}/v1/chat/completions", json=stream_body))
    assert first[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 7
    # Stored from the stream; answered from the cache, complete and streamed.
    complete = httpx.post(f"{url}/v1/chat/completions", json={"model": "chat", "messages": USER})
    assert complete.headers["x-parley-deployment"] == "cache"
    body = complete.json()
    assert body["choices"][0]["message"]["reasoning_content"] == (
        "Thinking about: why is the sky blue"
    )
    for name, value in DETAILS.items():
        assert body["usage"][name] == value
    replayed = httpx.post(f"{url}/v1/chat/completions", json=stream_body)
    assert replayed.headers["x-parley-deployment"] == "cache"
    chunks = chunks_of(replayed)
    deltas = [ch["delta"] for c in chunks for ch in c["choices"]]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == (
        "Thinking about: why is the sky blue"
    )
    for name, value in DETAILS.items():
        assert chunks[-1]["usage"][name] == value
    assert len(fake.calls) == 1
