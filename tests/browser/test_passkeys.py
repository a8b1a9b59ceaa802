"""Passkeys in Chromium, with the DevTools protocol's virtual authenticator (a CTAP2
platform authenticator holding resident keys, user verification on): add one in the
settings, sign in with it and no password, use it as the second factor after a password,
rename and remove it.

The page is served as ``http://localhost:<port>``: a relying-party id must be a domain,
and browsers refuse an IP address (``127.0.0.1``) as one. ``localhost`` is the same
loopback server, so the package's guard rule (nothing leaves the machine) still holds,
here with ``localhost`` allowed too.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.browser.conftest import PASSWORD, Server, own_address, register

NewPage = Callable[[], tuple[Any, Any, str]]


@pytest.fixture
def passkey_page(browser: Any, server: Server) -> Iterator[NewPage]:
    """``passkey_page()``: (page at localhost, its CDP session, the id of the virtual
    authenticator added to it)."""
    base = server.url.replace("127.0.0.1", "localhost")
    contexts: list[Any] = []
    escaped: list[str] = []
    errors: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).hostname in (
            "localhost",
            "127.0.0.1",
        ):
            route.continue_()
        else:
            escaped.append(url)
            route.abort()

    def make() -> tuple[Any, Any, str]:
        context = browser.new_context(
            base_url=base, viewport={"width": 1280, "height": 800}, extra_http_headers=own_address()
        )
        context.route("**/*", guard)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(20_000)
        cdp = context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        added = cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        return page, cdp, str(added["authenticatorId"])

    yield make
    for context in contexts:
        context.close()
    assert not escaped, f"requests left the machine: {escaped}"
    assert not errors, f"uncaught errors in the page: {errors}"


def _amr(response: Any) -> list[str]:
    """The ``amr`` claim of the access token a sign-in answered with."""
    payload = response.json()["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return list(claims["amr"])


def test_add_a_passkey_sign_in_with_it_then_as_second_factor(passkey_page: NewPage) -> None:
    page, cdp, authenticator = passkey_page()
    email = register(page, name="Ada Lovelace")
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Passkey name").fill("This laptop")
    page.get_by_role("button", name="Add a passkey").click()
    page.get_by_role("status").filter(has_text="Passkey “This laptop” added.").wait_for()
    listed = page.get_by_role("list", name="Your passkeys").get_by_role("listitem")
    assert listed.count() == 1
    assert "never used" in listed.first.inner_text()

    # The authenticator holds a discoverable credential for this site, for this user.
    authenticators = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    (stored,) = authenticators["credentials"]
    assert stored["isResidentCredential"] is True
    assert stored["rpId"] == "localhost"

    # Passwordless: no email typed, the authenticator offers the account.
    page.get_by_role("button", name="Log out", exact=True).click()
    with page.expect_response("**/auth/passkeys/login") as signed_in:
        page.get_by_role("button", name="Sign in with a passkey").click()
    page.get_by_role("textbox", name="Message").wait_for()
    assert _amr(signed_in.value) == ["hwk", "user"]

    # With a passkey on the account, a password alone is not enough: the passkey follows.
    page.get_by_role("button", name="Log out", exact=True).click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    assert page.get_by_label("Authentication code").count() == 0  # no TOTP on this account
    with page.expect_response("**/auth/passkeys/login") as second:
        page.get_by_role("button", name="Use a passkey").click()
    page.get_by_role("textbox", name="Message").wait_for()
    assert _amr(second.value) == ["pwd", "hwk", "user"]

    page.get_by_role("link", name="Settings").click()
    listed.first.get_by_role("button", name="Rename This laptop").click()
    page.get_by_label("New name for This laptop").fill("Work laptop")
    listed.first.get_by_role("button", name="Save").click()
    listed.first.get_by_text("Work laptop").wait_for()
    assert "last used" in listed.first.inner_text()
    listed.first.get_by_role("button", name="Remove Work laptop").click()
    page.get_by_text("No passkeys yet.").wait_for()

    # Removed: the credential left on the authenticator no longer signs in.
    page.get_by_role("button", name="Log out", exact=True).click()
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.get_by_role("alert").filter(has_text="unknown passkey").wait_for()


def test_download_my_data_then_delete_the_account_with_a_passkey(
    passkey_page: NewPage, server: Server
) -> None:
    page, _, _ = passkey_page()
    email = register(page, name="Grace Hopper")
    page.get_by_role("textbox", name="Message").fill("remember the compiler")
    page.get_by_role("textbox", name="Message").press("Enter")
    page.get_by_role("article", name="Assistant").get_by_text("You said: remember").wait_for()
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Passkey name").fill("Desk key")
    page.get_by_role("button", name="Add a passkey").click()
    page.get_by_role("status").filter(has_text="Passkey “Desk key” added.").wait_for()

    with page.expect_download() as downloading:
        page.get_by_role("button", name="Download my data").click()
    exported = json.loads(Path(downloading.value.path()).read_text())
    assert exported["profile"]["email"] == email
    assert "remember the compiler" in json.dumps(exported["conversations"])

    page.get_by_role("button", name="Delete account").click()
    dialog = page.get_by_role("dialog", name="Delete account")
    delete = dialog.get_by_role("button", name="Delete my account")
    assert delete.is_disabled()
    dialog.get_by_label("Type your email to confirm").fill("someone@else.example")
    assert delete.is_disabled()
    dialog.get_by_label("Type your email to confirm").fill(email)
    dialog.get_by_label("Password").fill("not the password at all")
    delete.click()
    dialog.get_by_role("alert").filter(has_text="password is wrong").wait_for()
    dialog.get_by_role("button", name="Delete with a passkey").click()
    page.get_by_role("button", name="Sign in with a passkey").wait_for()  # signed out

    gone = httpx.post(
        f"{server.url}/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert gone.status_code == 401
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.get_by_role("alert").filter(has_text="unknown passkey").wait_for()
