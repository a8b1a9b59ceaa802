"""Single sign-on in Chromium: the login page offers "Sign in with <provider>", the real
OpenID provider (tests/oidc) signs the user in, and the flow ends in the chat, signed in;
logging out ends the provider's session too and comes back to the login page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.testing.fake_upstream import FakeUpstream
from tests.browser.conftest import Guard, Server, _model, own_address, serving
from tests.oidc import CLIENT_SECRET, CLIENT_SECRET_ENV, OpenIdProvider, running_provider

ACCOUNTS = {
    "grace-sub": {
        "email": "grace@example.com",
        "email_verified": True,
        "name": "Grace Hopper",
        "groups": ["staff"],
    }
}


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[OpenIdProvider]:
    with running_provider(tmp_path, ACCOUNTS) as provider:
        yield provider


@pytest.fixture
def sso_server(idp: OpenIdProvider, browser_fake: FakeUpstream, tmp_path: Path) -> Iterator[Server]:
    models = _model("chat-fast", "openai", "gpt-4o-mini", f"{browser_fake.url}/v1") + (
        "sso:\n"
        "  providers:\n"
        "    - name: acme\n"
        "      display_name: Acme ID\n"
        f"      issuer: {idp.issuer}\n"
        "      client_id: parley-web\n"
        f"      client_secret: os.environ/{CLIENT_SECRET_ENV}\n"
        "      mappings:\n"
        "        - {claim: groups, value: staff, team: Staff, role: member}\n"
        "      scopes: [openid, email, profile, groups]\n"
    )
    home = tmp_path / "parley"
    home.mkdir()
    with serving(home, browser_fake, models, {CLIENT_SECRET_ENV: CLIENT_SECRET}) as running:
        idp.add_client(
            "parley-web",
            redirect_uris=[f"{running.url}/auth/oidc/acme/callback"],
            post_logout_redirect_uris=[f"{running.url}/login"],
        )
        yield running


@pytest.fixture
def context(browser: Any, sso_server: Server) -> Iterator[Any]:
    made: list[tuple[Any, Guard]] = []

    def make(*, width: int = 1280, dark: bool = False) -> Any:
        ctx = browser.new_context(
            viewport={"width": width, "height": 800},
            color_scheme="dark" if dark else "light",
            base_url=sso_server.url,
            extra_http_headers=own_address(),
        )
        guard = Guard()
        ctx.route("**/*", guard)
        made.append((ctx, guard))
        return ctx

    yield make
    for ctx, guard in made:
        ctx.close()
        assert not guard.escaped, f"requests left 127.0.0.1: {guard.escaped}"


def test_the_login_page_offers_the_provider_at_every_size(context: Any, tmp_path: Path) -> None:
    for width, dark, name in (
        (1280, False, "desktop"),
        (375, False, "narrow"),
        (1280, True, "dark"),
    ):
        page = context(width=width, dark=dark).new_page()
        page.goto("/login")
        link = page.get_by_role("link", name="Sign in with Acme ID")
        link.wait_for()
        assert link.get_attribute("href") == "/auth/oidc/acme/login"
        page.get_by_label("Password").wait_for()  # passwords stay on (not SSO only)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width  # nothing scrolls sideways at 375 px
        page.screenshot(path=str(tmp_path / f"login-sso-{name}.png"))


def test_sign_in_with_the_provider_ends_in_the_chat_and_logout_ends_both(
    context: Any, sso_server: Server
) -> None:
    page = context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(20_000)
    page.goto("/login")
    page.get_by_role("link", name="Sign in with Acme ID").click()
    page.get_by_role("heading", name="Sign in to the test provider").wait_for()
    page.get_by_label("Username").fill("grace-sub")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("textbox", name="Message").wait_for()  # the chat, signed in
    assert page.url.rstrip("/") == sso_server.url
    page.get_by_text("Grace Hopper").wait_for()
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Yes, sign me out").click()  # the provider's own page
    page.get_by_role("link", name="Sign in with Acme ID").wait_for()
    assert page.url.startswith(f"{sso_server.url}/login")
    # the provider's session ended too: signing in again asks who you are
    page.get_by_role("link", name="Sign in with Acme ID").click()
    page.get_by_label("Username").wait_for()
    assert not errors, errors
