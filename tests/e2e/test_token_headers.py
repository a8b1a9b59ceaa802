"""Access tokens from an attacker: a JWT whose header is not a JSON object, or not even
base64, is a 401 in the API's envelope (never a 500, never a traceback in the log), and a
token naming a signing key nobody made cannot make every request reload the key set from
the database."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog.testing
from sqlalchemy import event

from parley.app import create_app
from parley.config import Settings
from parley.services import Services
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, fake_models, serve_in_thread
from tests.backends import sqlite_url

PASSWORD = "correct horse battery staple 42"


def _b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _token(header: Any, claims: Any = None) -> str:
    body = _b64(claims if claims is not None else {"sub": "x", "sid": "y", "exp": 2**40})
    head = header if isinstance(header, str) and header.startswith("!") else _b64(header)
    return f"{head}.{body}.{_b64(b'not-a-signature')}"


@pytest.fixture
def served(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> Iterator[tuple[httpx.Client, Services]]:
    settings = Settings(database_url=sqlite_url(tmp_path), allow_registration=True)
    app = create_app(settings, models=fake_models(fake.url))
    with serve_in_thread(loop_thread, app) as url, httpx.Client(base_url=url, timeout=20) as http:
        yield http, app.state.services


@pytest.mark.parametrize(
    "header",
    [
        [],
        None,
        "a string",
        42,
        b"\xff\xfe not json",
        "!!!not-base64",
        {"kid": 5, "alg": "ES256"},
        {"alg": "ES256"},
        {"kid": "k", "alg": "ES256", "crit": 5},
        {"kid": "k", "alg": "none"},
    ],
    ids=repr,
)
def test_a_malformed_jwt_header_is_a_401_without_a_traceback(
    served: tuple[httpx.Client, Services], header: Any
) -> None:
    http, _ = served
    with structlog.testing.capture_logs() as logs:
        for path in ("/api/me", "/admin/keys", "/api/conversations"):
            answer = http.get(path, headers={"authorization": f"Bearer {_token(header)}"})
            assert answer.status_code == 401, (path, answer.text)
            assert answer.json()["error"]["type"] == "authentication_error"
    assert not [e for e in logs if e.get("log_level") in ("error", "critical")], logs
    assert not [e for e in logs if "exc_info" in e or "exception" in e], logs


def test_a_known_kid_with_a_critical_extension_is_a_401(
    served: tuple[httpx.Client, Services],
) -> None:
    """``crit`` names header extensions a verifier must understand; Parley uses none."""
    http, svc = served
    kid = svc.accounts.tokens.jwks()["keys"][0]["kid"]
    for crit in (5, ["b64"], [5], "exp"):
        token = _token({"kid": kid, "alg": "ES256", "crit": crit})
        answer = http.get("/api/me", headers={"authorization": f"Bearer {token}"})
        assert answer.status_code == 401, (crit, answer.text)


def test_unknown_kids_do_not_reload_the_signing_keys_per_request(
    served: tuple[httpx.Client, Services],
) -> None:
    http, svc = served
    reloads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM signing_keys" in statement:
            reloads.append(statement)

    engine = svc.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        for n in range(30):
            token = _token({"kid": f"made-up-{n}", "alg": "ES256"})
            answer = http.get("/api/me", headers={"authorization": f"Bearer {token}"})
            assert answer.status_code == 401
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # at most one refresh for the whole burst (the bound is one per few seconds), not 30
    assert len(reloads) <= 1, len(reloads)
    # and a real token still works afterwards
    created = http.post(
        "/auth/register", json={"email": "ada@example.com", "password": PASSWORD, "name": "Ada"}
    )
    assert created.status_code == 201, created.text
    login = http.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    me = http.get("/api/me", headers={"authorization": f"Bearer {login.json()['access_token']}"})
    assert me.status_code == 200
