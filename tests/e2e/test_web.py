"""The web app's serving (explicit routes, hashed immutable files, compression, the pages'
own CSP) and the browser's refresh-token cookie, over real HTTP."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from parley.api.web import PAGE_CSP, PAGES, WebAssets
from tests.conftest import ParleyFactory

PASSWORD = "correct horse battery staple 42"
COOKIE_MODE = {"x-parley-refresh-cookie": "1"}
API_CSP = "default-src 'none'; frame-ancestors 'none'"


@pytest.fixture
def http(parley: ParleyFactory) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=parley(allow_registration=True), timeout=20) as client:
        yield client


def _prefix(shell: str) -> str:
    found = re.search(r'src="(/static/[0-9a-f]{16})/app/main\.js"', shell)
    assert found, shell
    return found.group(1)


def test_every_ui_path_answers_the_shell_with_its_own_policy(http: httpx.Client) -> None:
    paths = ("/", "/login", "/register", "/settings", "/c/abc", "/s/tok")
    recovery = ("/forgot-password", "/reset-password", "/verify-email")
    console = ("/manage", "/manage/keys")
    for path in paths + recovery + console:
        page = http.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-cache"
        # exactly one policy: the page's, not the API's "default-src 'none'" beside it
        assert page.headers.get_list("content-security-policy") == [PAGE_CSP]
        assert "'unsafe-inline'" not in PAGE_CSP
        assert "'unsafe-eval'" not in PAGE_CSP
        assert "<script>" not in page.text  # no inline script: only the module file
        assert 'type="module"' in page.text
    assert len(PAGES) == 11


def test_api_paths_still_answer_json_404(http: httpx.Client) -> None:
    for path in ("/nope", "/api/nope", "/c", "/c/a/b", "/static", "/manage/keys/x"):
        missing = http.get(path)
        assert missing.status_code == 404, path
        assert missing.headers["content-type"].startswith("application/json"), path
        assert missing.headers["content-security-policy"] == API_CSP


def test_static_files_are_immutable_compressed_and_confined(http: httpx.Client) -> None:
    prefix = _prefix(http.get("/").text)
    url = f"{prefix}/vendor/preact.js"
    with http.stream("GET", url, headers={"accept-encoding": "gzip"}) as js:
        assert js.status_code == 200
        assert js.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert js.headers["content-encoding"] == "gzip"
        assert js.headers["content-type"].startswith("text/javascript")
        sent = b"".join(js.iter_raw())  # as it crossed the wire, not decoded by httpx
    plain = http.get(url, headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert len(sent) < len(plain.content) / 2
    assert gzip.decompress(sent) == plain.content
    # An old prefix (a page loaded before an upgrade) gets today's file, not cached.
    stale = http.get("/static/0000000000000000/app/main.js")
    assert stale.status_code == 200
    assert stale.headers["cache-control"] == "no-cache"
    # Only files the app ships, by name: no traversal, no licence texts, no sources.
    for name in ("../api/web.py", "%2e%2e/api/web.py", "vendor/VENDORED.md", "app/nope.js"):
        assert http.get(f"{prefix}/{name}").status_code == 404, name


def test_asset_version_follows_content(tmp_path: Path) -> None:
    root = tmp_path
    (root / "app").mkdir()
    (root / "app" / "main.js").write_text("console.log(1)")
    first = WebAssets.load(root)
    (root / "app" / "main.js").write_text("console.log(2)")
    second = WebAssets.load(root)
    assert first.version != second.version
    assert first.prefix in first.shell().decode()


def _register(http: httpx.Client, email: str) -> None:
    created = http.post(
        "/auth/register", json={"email": email, "password": PASSWORD, "name": "Ada Lovelace"}
    )
    assert created.status_code == 201, created.text


def test_cookie_mode_keeps_the_refresh_token_out_of_script_reach(http: httpx.Client) -> None:
    _register(http, "ada@example.com")
    login = http.post(
        "/auth/login",
        json={"email": "ada@example.com", "password": PASSWORD},
        headers=COOKIE_MODE,
    )
    assert login.status_code == 200, login.text
    assert "refresh_token" not in login.json()
    cookie = login.headers["set-cookie"]
    assert cookie.startswith("parley_refresh=prt_")
    for attribute in ("HttpOnly", "Path=/auth", "SameSite=strict"):
        assert attribute.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain HTTP on loopback; set over TLS

    # The cookie alone refreshes, and rotates: the new cookie replaces the old.
    first = http.cookies["parley_refresh"]
    refreshed = http.post("/auth/refresh", json={}, headers=COOKIE_MODE)
    assert refreshed.status_code == 200, refreshed.text
    assert "access_token" in refreshed.json()
    assert "refresh_token" not in refreshed.json()
    assert http.cookies["parley_refresh"] != first

    # Without the mode header the cookie is not read (a cross-site form cannot set it).
    assert http.post("/auth/refresh", json={}).status_code == 401
    # With it, but from another origin: refused before anything is spent.
    foreign = http.post(
        "/auth/refresh", json={}, headers={**COOKIE_MODE, "origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert foreign.json()["error"]["code"] == "cross_origin"
    again = http.post("/auth/refresh", json={}, headers=COOKIE_MODE)
    assert again.status_code == 200  # the foreign attempt spent nothing

    # Logging out clears the cookie; refreshing afterwards fails.
    access = again.json()["access_token"]
    out = http.post("/auth/logout", headers={**COOKIE_MODE, "authorization": f"Bearer {access}"})
    assert out.status_code == 200
    assert "parley_refresh" not in http.cookies
    assert http.post("/auth/refresh", json={}, headers=COOKIE_MODE).status_code == 401


def test_a_reused_refresh_cookie_is_dropped_with_the_refusal(http: httpx.Client) -> None:
    _register(http, "grace@example.com")
    http.post(
        "/auth/login",
        json={"email": "grace@example.com", "password": PASSWORD},
        headers=COOKIE_MODE,
    )
    spent = http.cookies["parley_refresh"]
    assert http.post("/auth/refresh", json={}, headers=COOKIE_MODE).status_code == 200
    http.cookies.set("parley_refresh", spent, path="/auth")
    reused = http.post("/auth/refresh", json={}, headers=COOKIE_MODE)
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "token_reused"
    assert (
        'parley_refresh=""' in reused.headers["set-cookie"]
        or "Max-Age=0" in reused.headers["set-cookie"]
    )


def test_json_mode_is_unchanged_for_api_clients(http: httpx.Client) -> None:
    _register(http, "alan@example.com")
    login = http.post("/auth/login", json={"email": "alan@example.com", "password": PASSWORD})
    assert login.json()["refresh_token"].startswith("prt_")
    assert "set-cookie" not in login.headers
    body = {"refresh_token": login.json()["refresh_token"]}
    assert http.post("/auth/refresh", json=body).status_code == 200


def test_chat_models_lists_the_groups_for_a_signed_in_user(http: httpx.Client) -> None:
    assert http.get("/api/models").status_code == 401
    _register(http, "edsger@example.com")
    login = http.post("/auth/login", json={"email": "edsger@example.com", "password": PASSWORD})
    token = login.json()["access_token"]
    listed = http.get("/api/models", headers={"authorization": f"Bearer {token}"})
    assert listed.status_code == 200
    assert [m["id"] for m in listed.json()["data"]] == [
        "openai",
        "azure",
        "anthropic",
        "gemini",
        "openai_compatible",
        "bedrock",
    ]


def test_the_console_is_served_but_never_preloaded(http: httpx.Client) -> None:
    """The chat page names every module it needs up front; the console's are not among
    them (they load on demand), though they are served."""
    assets = WebAssets.load()
    console = [n for n in assets.files if n.startswith("app/manage/")]
    assert "app/manage/Console.js" in console
    assert not [n for n in assets.preloads() if n.startswith("app/manage/")]
    shell = http.get("/").text
    assert "app/manage/" not in shell
    prefix = re.search(r'href="(/static/[^/]+)/app/app.css"', shell)
    assert prefix is not None
    assert http.get(f"{prefix.group(1)}/app/manage/Console.js").status_code == 200
