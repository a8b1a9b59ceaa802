"""Browser sessions end after an idle period and at an absolute lifetime, on every
instance at once (the shared state holds the idle clock); API clients' sessions keep the
refresh token's lifetime. Short settings (seconds), never long sleeps."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ParleyFactory
from tests.e2e.test_access import ADMIN, Client, backend, error, start
from tests.e2e.test_auth import PASSWORD, Account

__all__ = ["backend", "start"]

WEB = {"x-parley-refresh-cookie": "1"}
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def web_login_answer(client: Client, email: str) -> tuple[httpx.Client, str, httpx.Response]:
    """Sign in as the web app does: cookie mode, refresh token in an HttpOnly cookie."""
    browser = httpx.Client(base_url=client.url, timeout=20, headers={"user-agent": BROWSER_UA})
    answer = browser.post("/auth/login", json={"email": email, "password": PASSWORD}, headers=WEB)
    assert answer.status_code == 200, answer.text
    assert "refresh_token" not in answer.json()
    return browser, str(answer.json()["access_token"]), answer


def web_login(client: Client, email: str) -> tuple[httpx.Client, str]:
    browser, token, _ = web_login_answer(client, email)
    return browser, token


def me(client: Client, token: str) -> httpx.Response:
    return client.http.get("/api/me", headers={"authorization": f"Bearer {token}"})


@pytest.fixture
def pair(shared: dict[str, str], parley: ParleyFactory) -> Iterator[tuple[Client, Client]]:
    settings: dict[str, Any] = {
        "admin_key": ADMIN,
        "allow_registration": True,
        "web_session_idle_seconds": 4,  # long beside a request on a loaded machine
        **shared,
    }
    a, b = Client(parley(**settings)), Client(parley(**settings))
    yield a, b
    a.http.close()
    b.http.close()


def test_idle_expiry_holds_on_both_instances(pair: tuple[Client, Client]) -> None:
    """Use on instance B keeps a session signed in on A alive past the idle period; once
    it sits unused for that long, A and B both refuse it, and its cookie cannot refresh.
    An API client's session, idle as long, is untouched."""
    a, b = pair
    ada = Account(a, "ada@example.com")  # an API (JSON) session, no idle timeout
    browser, token = web_login(a, ada.email)
    for _ in range(10):  # 5 s of use, every 0.5 s, on the other instance
        assert me(b, token).status_code == 200
        time.sleep(0.5)
    listed = ada.get("/auth/sessions").json()["data"]
    web = next(s for s in listed if s["kind"] == "web")
    assert web["device"] == "Chrome on Linux"
    assert web["ip"] == "127.0.0.1"
    assert web["last_used_ms"] > 0
    time.sleep(5.0)
    refused = me(a, token)
    assert refused.status_code == 401
    assert error(refused)["code"] == "session_expired"
    assert me(b, token).status_code == 401
    assert browser.post("/auth/refresh", json={}, headers=WEB).status_code == 401
    assert [s["kind"] for s in ada.get("/auth/sessions").json()["data"]] == ["api"]
    assert ada.get("/api/me").status_code == 200
    refreshed = b.http.post("/auth/refresh", json={"refresh_token": ada.tokens["refresh_token"]})
    assert refreshed.status_code == 200
    browser.close()


def test_absolute_lifetime_ends_a_busy_browser_session(start: Callable[..., Client]) -> None:
    client = start(allow_registration=True, web_session_absolute_seconds=3)
    bea = Account(client, "bea@example.com")
    browser, token, answer = web_login_answer(client, bea.email)
    set_cookie = answer.headers["set-cookie"]
    assert "parley_refresh=" in set_cookie
    max_age = re.search(r"Max-Age=(\d+)", set_cookie, re.I)
    assert max_age is not None
    assert int(max_age.group(1)) <= 3  # the cookie ends with the session
    claims_life = browser.post("/auth/refresh", json={}, headers=WEB)
    assert claims_life.status_code == 200
    assert claims_life.json()["expires_in"] <= 3  # access tokens end with the session
    token = claims_life.json()["access_token"]
    latest = browser.cookies["parley_refresh"]
    time.sleep(3.2)
    assert me(client, token).status_code == 401
    assert browser.post("/auth/refresh", json={}, headers=WEB).status_code == 401  # cookie gone
    # and the server refuses the session itself, even when the cookie is kept
    late = client.http.post(
        "/auth/refresh", json={}, headers={**WEB, "cookie": f"parley_refresh={latest}"}
    )
    assert late.status_code == 401
    assert error(late)["code"] == "session_expired"
    assert bea.get("/api/me").status_code == 200  # the API session is not limited
    browser.close()


def test_a_second_embedded_process_keeps_a_live_browser_session(parley: ParleyFactory) -> None:
    """The embedded tier's idle clock is the process's memory: a process started again
    (or another ``--workers`` process on the same SQLite file) holds no clock for a
    session signed in before it. The database's record of the sign-in decides: a session
    used within the idle period goes on there, and still ends once idle for longer."""
    settings = {"admin_key": ADMIN, "allow_registration": True, "web_session_idle_seconds": 4}
    first = Client(parley(**settings))
    ada = Account(first, "ada@example.com")
    browser, token = web_login(first, ada.email)
    assert me(first, token).status_code == 200
    second = Client(parley(**settings))  # the same SQLite file, a memory of its own
    assert me(second, token).status_code == 200
    assert me(second, token).status_code == 200  # its own clock now
    time.sleep(5.0)
    refused = me(second, token)
    assert refused.status_code == 401
    assert error(refused)["code"] == "session_expired"
    assert me(first, token).status_code == 401  # revoked in the database: ended everywhere
    browser.close()
    first.http.close()
    second.http.close()
