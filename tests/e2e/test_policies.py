"""Parameter policy (drop_params), the SSRF guard, secret hygiene, health and metrics."""

from __future__ import annotations

import io
import json

import httpx
import pytest
import structlog

from parley.observability.logging import configure_logging
from parley.testing.fake_upstream import FakeUpstream
from tests.conftest import ParleyFactory

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
SECRET = "bad-sk-supersecretvalue-0123456789"


def test_unsupported_param_refused_without_drop_params(
    parley: ParleyFactory, fake: FakeUpstream
) -> None:
    url = parley()
    response = httpx.post(
        f"{url}/v1/chat/completions", json={**CHAT, "model": "anthropic", "seed": 7}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "seed"
    assert error["code"] == "unsupported_parameter"
    assert fake.calls == []


def test_unsupported_param_dropped_with_warning_header(
    parley: ParleyFactory, fake: FakeUpstream
) -> None:
    url = parley(drop_params=True)
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={**CHAT, "model": "anthropic", "seed": 7, "n": 1, "presence_penalty": 0.5},
    )
    assert response.status_code == 200
    assert response.headers["x-parley-dropped-params"] == "presence_penalty,seed"
    assert "seed" in response.headers["x-parley-warning"]
    sent = fake.calls[0].body
    assert "seed" not in sent
    assert "presence_penalty" not in sent


def test_supported_params_reach_openai_unchanged(parley: ParleyFactory, fake: FakeUpstream) -> None:
    url = parley()
    body = {
        **CHAT,
        "model": "openai",
        "seed": 7,
        "n": 2,
        "logprobs": True,
        "top_logprobs": 2,
        "stop": ["END"],
        "user": "u1",
        "parallel_tool_calls": False,
        "max_completion_tokens": 9,
    }
    response = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert len(response.json()["choices"]) == 2
    sent = fake.calls[0].body
    for key in ("seed", "n", "logprobs", "top_logprobs", "stop", "user", "max_completion_tokens"):
        assert sent[key] == body[key]
    assert sent["model"] == "gpt-4o-mini"  # the deployment's upstream id, not the group


@pytest.mark.parametrize("field", ["api_base", "base_url"])
def test_client_cannot_redirect_credentials(
    parley: ParleyFactory, fake: FakeUpstream, field: str
) -> None:
    url = parley()
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={**CHAT, "model": "openai", field: "http://127.0.0.1:1/steal"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == field
    assert fake.calls == []


def test_admin_may_allow_api_base_override(parley: ParleyFactory, fake: FakeUpstream) -> None:
    url = parley(extra={"allow_client_api_base": True, "api_base": "http://127.0.0.1:1"})
    own_key = {"x-parley-upstream-key": "client-own-key-123"}  # test_client_api_base.py
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={**CHAT, "model": "anthropic", "api_base": fake.url},
        headers=own_key,
    )
    assert response.status_code == 200
    assert "api_base" not in fake.calls[0].body
    for bad in ("ftp://127.0.0.1/", "http://127.0.0.1:99999/v1", "http:///v1"):
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={**CHAT, "model": "anthropic", "api_base": bad},
            headers=own_key,
        )
        assert response.status_code == 400, bad
        assert response.json()["error"]["param"] == "api_base"
    assert len(fake.calls) == 1


def test_secrets_never_in_error_bodies_or_logs(parley: ParleyFactory, fake: FakeUpstream) -> None:
    """The fake answers 401 echoing the key it got; neither the client nor the logs see it."""
    buffer = io.StringIO()
    configure_logging("debug", "json")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(buffer))
    try:
        url = parley(key=SECRET)
        bodies = []
        with structlog.testing.capture_logs() as captured:
            for family in ("openai", "azure", "anthropic", "gemini"):
                for stream in (False, True):
                    response = httpx.post(
                        f"{url}/v1/chat/completions",
                        json={**CHAT, "model": family, "stream": stream},
                    )
                    assert response.status_code == 401
                    bodies.append(response.text)
    finally:
        configure_logging()
    assert len(fake.calls) == 8
    sent = json.dumps([c.headers for c in fake.calls])
    assert SECRET in sent  # the key did go upstream, so the test can fail
    for text in [*bodies, buffer.getvalue(), repr(captured)]:
        assert SECRET not in text
        assert "supersecretvalue" not in text
    assert "Incorrect API key provided" in bodies[0]


def test_health_and_metrics(parley: ParleyFactory) -> None:
    url = parley()
    assert httpx.get(f"{url}/health/live").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/health/ready")
    assert ready.status_code == 200
    httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "model": "gemini"})
    metrics = httpx.get(f"{url}/metrics").text
    assert (
        'parley_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}'
        in metrics
    )
    assert (
        'parley_tokens_total{deployment="gemini/gemini/gemini-2.5-flash",kind="completion"'
        in metrics
    )
    assert "parley_overhead_seconds_bucket" in metrics
