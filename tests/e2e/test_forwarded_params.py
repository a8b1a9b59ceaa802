"""Parameters Parley has no translation for are never lost without a word: OpenAI and
Azure get the documented parameters as sent; an OpenAI-compatible server gets any
extra field (``top_k``, ``min_p``, ... as the SDKs send ``extra_body``) unless its
deployment refuses it; everything else is refused with a 400 naming it, or dropped under
``drop_params`` with ``x-parley-dropped-params``. The cache tells requests apart by them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, models_from, serve_in_thread
from tests.backends import redis_url, sqlite_url
from tests.conftest import ParleyFactory
from tests.e2e.test_access import ADMIN

USER = [{"role": "user", "content": "hello"}]
DOCUMENTED: dict[str, Any] = {
    "store": True,
    "metadata": {"app": "tests"},
    "reasoning_effort": "low",
    "service_tier": "flex",
    "modalities": ["text"],
    "prediction": {"type": "content", "content": "hello"},
    "verbosity": "low",
    "prompt_cache_key": "k-1",
    "safety_identifier": "user-hash-1",
    "web_search_options": {"search_context_size": "low"},
}
SAMPLING = {"top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1}


def chat(url: str, model: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions", json={"model": model, "messages": USER, **extra}
    )


@pytest.fixture
def serve(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> Iterator[Callable[..., str]]:
    """Parley with one group ``chat`` on the fake's OpenAI-compatible route."""
    servers = contextlib.ExitStack()

    def start(
        drop_params: bool = False,
        cache: bool = False,
        settings: dict[str, Any] | None = None,
        **deployment: Any,
    ) -> str:
        dep = {
            "provider": "openai_compatible",
            "model": "llama",
            "api_base": f"{fake.url}/compat/v1",
            **deployment,
        }
        groups = [
            {
                "name": "chat",
                "deployments": [dep],
                "drop_params": drop_params,
                "cache": {"enabled": cache},
            }
        ]
        merged = {"database_url": sqlite_url(tmp_path), **(settings or {})}
        app = create_app(Settings(**merged), models=models_from(groups))
        return servers.enter_context(serve_in_thread(loop_thread, app))

    with servers:
        yield start


@pytest.mark.parametrize("family", ["openai", "azure", "openai_compatible"])
def test_documented_parameters_reach_openai_format_upstreams(
    parley: ParleyFactory, fake: FakeUpstream, family: str
) -> None:
    response = chat(parley(), family, **DOCUMENTED)
    assert response.status_code == 200, response.text
    assert "x-parley-dropped-params" not in response.headers
    sent = fake.calls[-1].body
    for name, value in DOCUMENTED.items():
        assert sent[name] == value, name


@pytest.mark.parametrize("family", ["openai", "azure"])
def test_unknown_parameters_are_refused_for_openai(
    parley: ParleyFactory, fake: FakeUpstream, family: str
) -> None:
    response = chat(parley(), family, min_p=0.05)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unsupported_parameter"
    assert error["param"] == "min_p"
    assert "'min_p'" in error["message"]
    assert fake.calls == []


@pytest.mark.parametrize("family", ["openai", "azure"])
def test_unknown_parameters_are_dropped_for_openai_under_drop_params(
    parley: ParleyFactory, fake: FakeUpstream, family: str
) -> None:
    response = chat(parley(drop_params=True), family, **SAMPLING, temperature=0.5)
    assert response.status_code == 200, response.text
    assert response.headers["x-parley-dropped-params"] == "top_k,min_p,repeat_penalty"
    sent = fake.calls[-1].body
    assert not set(SAMPLING) & set(sent)
    assert sent["temperature"] == 0.5


def test_compatible_server_gets_sampling_extras_from_the_sdk(
    serve: Callable[..., str], fake: FakeUpstream
) -> None:
    client = openai.OpenAI(base_url=serve() + "/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="chat",
        messages=USER,  # type: ignore[arg-type]
        extra_body=SAMPLING,
    )
    assert raw.parse().choices[0].message.content == "You said: hello"
    assert "x-parley-dropped-params" not in raw.headers
    sent = fake.calls[-1].body
    for name, value in SAMPLING.items():
        assert sent[name] == value
    assert "extra" not in sent


def test_compatible_stream_gets_the_extras_too(
    serve: Callable[..., str], fake: FakeUpstream
) -> None:
    response = chat(serve(), "chat", stream=True, **SAMPLING)
    assert response.status_code == 200
    assert response.text.rstrip().endswith("data: [DONE]")
    sent = fake.calls[-1].body
    assert {name: sent[name] for name in SAMPLING} == SAMPLING


def test_deployment_refused_params(serve: Callable[..., str], fake: FakeUpstream) -> None:
    url = serve(refused_params=["min_p", "seed"])
    for name, value in (("min_p", 0.1), ("seed", 7)):
        refused = chat(url, "chat", **{name: value})
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == name
    assert fake.calls == []
    allowed = chat(url, "chat", top_k=5)
    assert allowed.status_code == 200
    assert fake.calls[-1].body["top_k"] == 5


def test_deployment_refused_params_dropped(serve: Callable[..., str], fake: FakeUpstream) -> None:
    url = serve(drop_params=True, refused_params=["min_p"])
    response = chat(url, "chat", **SAMPLING)
    assert response.status_code == 200
    assert response.headers["x-parley-dropped-params"] == "min_p"
    sent = fake.calls[-1].body
    assert "min_p" not in sent
    assert sent["top_k"] == 40


@pytest.mark.parametrize("family", ["anthropic", "gemini"])
def test_top_k_is_translated(parley: ParleyFactory, fake: FakeUpstream, family: str) -> None:
    response = chat(parley(), family, top_k=12)
    assert response.status_code == 200, response.text
    sent = fake.calls[-1].body
    if family == "anthropic":
        assert sent["top_k"] == 12
    else:
        assert sent["generationConfig"]["topK"] == 12


@pytest.mark.parametrize(
    ("param", "family"),
    [
        (param, family)
        for family in ("anthropic", "gemini", "bedrock")
        for param in ("min_p", "verbosity", "reasoning_effort", "metadata")
        # a thinking budget for Claude, on Anthropic and on Bedrock
        if (param, family)
        not in (("reasoning_effort", "anthropic"), ("reasoning_effort", "bedrock"))
    ],
)
def test_untranslatable_parameters_are_refused_or_dropped(
    parley: ParleyFactory, fake: FakeUpstream, family: str, param: str
) -> None:
    value = {"min_p": 0.1, "metadata": {"a": "b"}}.get(param, "low")
    url = parley()
    refused = chat(url, family, **{param: value})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == param
    assert fake.calls == []
    dropping = parley(drop_params=True)
    response = chat(dropping, family, **{param: value})
    assert response.status_code == 200, response.text
    assert response.headers["x-parley-dropped-params"] == param
    assert param not in str(fake.calls[-1].body)


@pytest.mark.parametrize(
    ("effort", "limits"),
    [
        ("low", (None, {"type": "enabled", "budget_tokens": 1024}, 4096)),
        ("high", (None, {"type": "enabled", "budget_tokens": 16384}, 16384 + 4096)),
        ("medium", (3000, {"type": "enabled", "budget_tokens": 2999}, 3000)),
        ("medium", (1000, None, 1000)),  # no room for Anthropic's 1024-token minimum
        ("minimal", (None, None, 4096)),
    ],
)
@pytest.mark.parametrize("family", ["anthropic", "bedrock"])
def test_claude_takes_reasoning_effort_as_a_thinking_budget(
    parley: ParleyFactory, fake: FakeUpstream, effort: str, limits: tuple[Any, ...], family: str
) -> None:
    """(max_tokens asked, thinking sent, max_tokens sent): the budget stays below the cap.
    One table for Anthropic and Claude on Bedrock (``additionalModelRequestFields``), which
    is sent no cap at all when it is not thinking and the client set none."""
    max_tokens, thinking, sent_max = limits
    extra = {"max_tokens": max_tokens} if max_tokens else {}
    response = chat(parley(), family, reasoning_effort=effort, **extra)
    assert response.status_code == 200, response.text
    sent = fake.calls[-1].body
    if family == "anthropic":
        assert sent.get("thinking") == thinking
        assert sent["max_tokens"] == sent_max
        return
    assert (sent.get("additionalModelRequestFields") or {}).get("thinking") == thinking
    expected_max = sent_max if thinking is not None or max_tokens else None
    assert (sent.get("inferenceConfig") or {}).get("maxTokens") == expected_max


def test_anthropic_takes_safety_identifier_as_its_user(
    parley: ParleyFactory, fake: FakeUpstream
) -> None:
    response = chat(parley(), "anthropic", safety_identifier="user-hash-1", store=False)
    assert response.status_code == 200, response.text
    assert fake.calls[-1].body["metadata"] == {"user_id": "user-hash-1"}


def test_cache_tells_extras_apart(serve: Callable[..., str], fake: FakeUpstream) -> None:
    url = serve(cache=True)
    assert chat(url, "chat", top_k=5).headers["x-parley-deployment"] != "cache"
    assert chat(url, "chat", top_k=6).headers["x-parley-deployment"] != "cache"
    assert chat(url, "chat", min_p=0.1).headers["x-parley-deployment"] != "cache"
    assert chat(url, "chat", top_k=5).headers["x-parley-deployment"] == "cache"
    assert len(fake.calls) == 3


def test_instances_sharing_the_cache_tell_extras_apart(
    serve: Callable[..., str], fake: FakeUpstream
) -> None:
    """Two instances on one Redis: the key each computes includes the forwarded fields."""
    shared = redis_url()
    settings = {"redis_url": next(shared), "admin_key": ADMIN}
    auth = {"authorization": f"Bearer {ADMIN}"}

    def verdict(url: str, top_k: int) -> str:
        body = {"model": "chat", "messages": USER, "top_k": top_k}
        response = httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth)
        assert response.status_code == 200, response.text
        return response.headers["x-parley-cache"]

    try:
        a = serve(cache=True, settings=settings)
        b = serve(cache=True, settings=settings)
        assert verdict(a, 5) == "miss"
        assert verdict(b, 6) == "miss"
        assert verdict(b, 5) == "hit"
        assert verdict(a, 6) == "hit"
        assert len(fake.calls) == 2
    finally:
        next(shared, None)


def test_bad_values_are_still_named_with_extras_present(
    serve: Callable[..., str], fake: FakeUpstream
) -> None:
    response = chat(serve(), "chat", min_p=0.1, temperature=9)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "temperature"
    assert response.json()["error"]["message"].startswith("Invalid value for 'temperature'")
    assert fake.calls == []
