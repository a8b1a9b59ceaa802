"""Concurrent ``/v1/embeddings`` requests to one deployment share upstream calls, and
every client still gets exactly its own vectors, in order, with its own usage."""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.testing import scenario
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, models_from, serve_in_thread
from tests.backends import sqlite_url

Start = Callable[..., str]


@pytest.fixture
def start(loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path) -> Iterator[Start]:
    stack = contextlib.ExitStack()

    def run(**settings: Any) -> str:
        dep = {
            "provider": "openai_compatible",
            "model": "embedder+latency-0.3",
            "api_base": f"{fake.url}/v1",
        }
        models = models_from([{"name": "emb", "deployments": [dep]}])
        if "database_url" not in settings:
            settings["database_url"] = sqlite_url(tmp_path)
        return stack.enter_context(
            serve_in_thread(loop_thread, create_app(Settings(**settings), models=models))
        )

    with stack:
        yield run


def embed_all(url: str, count: int) -> list[httpx.Response]:
    def one(i: int) -> httpx.Response:
        body = {"model": "emb", "input": [f"first text {i}", f"second text {i}"]}
        return httpx.post(f"{url}/v1/embeddings", json=body, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def check_own_vectors(answers: list[httpx.Response]) -> None:
    for i, answer in enumerate(answers):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        got = [row["embedding"] for row in sorted(body["data"], key=lambda r: r["index"])]
        want = [
            scenario.embedding(f"first text {i}", 16),
            scenario.embedding(f"second text {i}", 16),
        ]
        assert len(got) == len(want)
        for vector, expected in zip(got, want, strict=True):
            assert vector == pytest.approx(expected)
        assert body["usage"]["prompt_tokens"] > 0


def test_concurrent_requests_share_upstream_calls(start: Start, fake: FakeUpstream) -> None:
    url = start(embeddings_batch_in_flight=1)
    answers = embed_all(url, 20)
    check_own_vectors(answers)
    calls = [c for c in fake.calls if c.path.endswith("/embeddings")]
    assert 2 <= len(calls) < 20
    sizes = sorted(len(c.body["input"]) for c in calls)
    assert sum(sizes) == 40
    assert sizes[-1] > 2  # at least one upstream call carried several requests' inputs


def test_batching_can_be_turned_off(start: Start, fake: FakeUpstream) -> None:
    url = start(embeddings_batch_max=1)
    check_own_vectors(embed_all(url, 8))
    assert len([c for c in fake.calls if c.path.endswith("/embeddings")]) == 8
