"""A client-chosen upstream (``api_base``/``base_url`` where ``allow_client_api_base`` is
set) gets the client's own key and never the deployment's credentials: not on the first
attempt, not on retries, not on fallbacks; userinfo URLs are refused."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, models_from, serve_in_thread
from tests.backends import sqlite_url
from tests.conftest import ParleyFactory

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
DEPLOYMENT_KEY = "fake-deployment-key-0123456789"
HEADER_SECRET = "org-header-secret-abcdef"
CLIENT_KEY = "client-own-upstream-key-42"
ALLOW = {"allow_client_api_base": True, "extra_headers": {"X-Org-Token": HEADER_SECRET}}


def _sent(upstream: FakeUpstream) -> str:
    """Everything an upstream received, headers and bodies, as one searchable text."""
    return json.dumps([[c.headers, c.body, c.path] for c in upstream.calls])


def _client_base(family: str, upstream: FakeUpstream) -> str:
    return f"{upstream.url}/v1" if family in ("openai", "openai_compatible") else upstream.url


@pytest.mark.parametrize(
    "family", ["openai", "azure", "anthropic", "gemini", "openai_compatible", "bedrock"]
)
@pytest.mark.parametrize("stream", [False, True])
def test_client_base_gets_the_clients_key_and_nothing_of_the_deployments(
    parley: ParleyFactory,
    fake: FakeUpstream,
    second_fake: FakeUpstream,
    family: str,
    stream: bool,
) -> None:
    url = parley(key=DEPLOYMENT_KEY, extra=ALLOW)
    base = _client_base(family, second_fake)
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={**CHAT, "model": family, "stream": stream, "api_base": base},
        headers={"x-parley-upstream-key": CLIENT_KEY},
    )
    assert response.status_code == 200, response.text
    assert fake.calls == []  # the configured upstream was not asked
    assert len(second_fake.calls) == 1
    sent = _sent(second_fake)
    assert CLIENT_KEY in sent
    assert DEPLOYMENT_KEY not in sent
    assert HEADER_SECRET not in sent
    assert "x-org-token" not in sent.lower()
    assert "x-parley-upstream-key" not in sent.lower()


@pytest.mark.parametrize("field", ["api_base", "base_url"])
def test_client_base_without_the_clients_key_is_refused(
    parley: ParleyFactory, fake: FakeUpstream, second_fake: FakeUpstream, field: str
) -> None:
    url = parley(key=DEPLOYMENT_KEY, extra=ALLOW)
    for headers in ({}, {"x-parley-upstream-key": ""}):
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={**CHAT, "model": "openai", field: f"{second_fake.url}/v1"},
            headers=headers,
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == field
        assert error["code"] == "missing_upstream_key"
        assert "x-parley-upstream-key" in error["message"]
        assert DEPLOYMENT_KEY not in response.text
    assert fake.calls == []
    assert second_fake.calls == []


@pytest.mark.parametrize("userinfo", ["user:hunter2secret@", "user@", ":hunter2secret@", "@"])
def test_client_base_with_userinfo_is_refused(
    parley: ParleyFactory, fake: FakeUpstream, second_fake: FakeUpstream, userinfo: str
) -> None:
    url = parley(key=DEPLOYMENT_KEY, extra=ALLOW)
    base = second_fake.url.replace("http://", f"http://{userinfo}") + "/v1"
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={**CHAT, "model": "openai", "api_base": base},
        headers={"x-parley-upstream-key": CLIENT_KEY},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "api_base"
    assert "credentials" in error["message"]
    assert "hunter2secret" not in response.text
    assert fake.calls == []
    assert second_fake.calls == []


def test_retries_and_fallbacks_never_send_a_configured_key_to_the_client_base(
    loop_thread: LoopThread, tmp_path: Path, fake: FakeUpstream, second_fake: FakeUpstream
) -> None:
    """The first group fails every attempt (500), then its fallback group answers: each of
    the four calls lands on the client's server with the client's key only."""

    def dep(model: str, name: str) -> dict[str, object]:
        return {
            "provider": "openai",
            "model": model,
            "name": name,
            "api_base": f"{fake.url}/v1",
            "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
            **ALLOW,
        }

    models = models_from(
        [
            {
                "name": "chat",
                "retries": 2,
                "backoff": {"base": 0, "max": 0},
                "fallbacks": ["backup"],
                "deployments": [dep("m+error-500", "primary")],
            },
            {"name": "backup", "deployments": [dep("n", "spare")]},
        ],
        key=DEPLOYMENT_KEY,
    )
    app = create_app(Settings(database_url=sqlite_url(tmp_path, "p.db")), models=models)
    with serve_in_thread(loop_thread, app) as url:
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={**CHAT, "model": "chat", "api_base": f"{second_fake.url}/v1"},
            headers={"x-parley-upstream-key": CLIENT_KEY},
            timeout=30,
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-parley-deployment"] == "spare"
    assert [c.body["model"] for c in second_fake.calls] == ["m+error-500"] * 3 + ["n"]
    assert fake.calls == []
    for call in second_fake.calls:
        headers = {k.lower(): v for k, v in call.headers.items()}
        assert headers["authorization"] == f"Bearer {CLIENT_KEY}"
    assert DEPLOYMENT_KEY not in _sent(second_fake)
    assert HEADER_SECRET not in _sent(second_fake)


def test_client_base_answers_are_not_cached_for_the_group(
    loop_thread: LoopThread, tmp_path: Path, fake: FakeUpstream, second_fake: FakeUpstream
) -> None:
    """The cache key does not name the URL: an answer from a client's own server must not
    be served to the next caller of the group (nor a cached answer to that client)."""
    models = models_from(
        [
            {
                "name": "chat",
                "cache": {"enabled": True},
                "deployments": [
                    {
                        "provider": "openai_compatible",
                        "model": "m",
                        "api_base": f"{fake.url}/v1",
                        "allow_client_api_base": True,
                    }
                ],
            }
        ]
    )
    app = create_app(Settings(database_url=sqlite_url(tmp_path, "p.db")), models=models)
    body = {**CHAT, "model": "chat", "temperature": 0}
    with serve_in_thread(loop_thread, app) as url:
        own = httpx.post(
            f"{url}/v1/chat/completions",
            json={**body, "api_base": f"{second_fake.url}/v1"},
            headers={"x-parley-upstream-key": CLIENT_KEY},
        )
        assert own.status_code == 200, own.text
        assert "x-parley-cache" not in own.headers
        shared = httpx.post(f"{url}/v1/chat/completions", json=body)
        assert shared.status_code == 200
        assert shared.headers["x-parley-cache"] == "miss"
        again = httpx.post(
            f"{url}/v1/chat/completions",
            json={**body, "api_base": f"{second_fake.url}/v1"},
            headers={"x-parley-upstream-key": CLIENT_KEY},
        )
        assert again.status_code == 200
    assert len(fake.calls) == 1
    assert len(second_fake.calls) == 2
