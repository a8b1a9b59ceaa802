"""Password reset and email verification in Chromium, with the links read from mail that
a real SMTP server (aiosmtpd) received: "Forgot password?" on the login page, the reset
page from the link, the verification notice and the page its link opens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.testing.fake_upstream import FakeUpstream
from tests.browser.conftest import PASSWORD, Guard, Server, _model, register, serving
from tests.smtp import Inbox, link_in, smtp_server

NEW_PASSWORD = "a brand new passphrase 7731"
pytestmark = pytest.mark.timeout(120)  # it starts its own server (and SMTP server)


@pytest.fixture
def mail_server(browser_fake: FakeUpstream, tmp_path: Path) -> Iterator[tuple[Server, Inbox]]:
    with smtp_server() as (inbox, port):
        env = {
            "PARLEY_SMTP_HOST": "127.0.0.1",
            "PARLEY_SMTP_PORT": str(port),
            "PARLEY_SMTP_SECURITY": "none",
            "PARLEY_MAIL_POLL_SECONDS": "0.1",
            "PARLEY_EMAIL_VERIFICATION": "optional",
        }
        models = _model("chat-fast", "openai", "gpt-4o-mini", f"{browser_fake.url}/v1")
        with serving(tmp_path, browser_fake, models, env) as running:
            yield running, inbox


@pytest.fixture
def page(browser: Any, mail_server: tuple[Server, Inbox]) -> Iterator[Any]:
    context = browser.new_context(base_url=mail_server[0].url)
    guard = Guard()
    context.route("**/*", guard)
    errors: list[str] = []
    opened = context.new_page()
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.set_default_timeout(20_000)
    yield opened
    context.close()
    assert not guard.escaped, f"requests left 127.0.0.1: {guard.escaped}"
    assert not errors, f"uncaught errors in the page: {errors}"


def test_verify_then_forget_and_reset_the_password(
    page: Any, mail_server: tuple[Server, Inbox]
) -> None:
    server, inbox = mail_server
    email = register(page)
    notice = page.get_by_role("status").filter(has_text="Verify your email address")
    notice.wait_for()
    [verification] = inbox.wait(1)
    base, token = link_in(verification)
    assert base == f"{server.url}/verify-email"
    page.goto(f"{base}#token={token}")
    page.get_by_text("Your email address is confirmed.").wait_for()
    assert "#token" not in page.url  # the token leaves the address bar and history
    page.get_by_role("link", name="Continue to Parley").click()
    page.get_by_role("textbox", name="Message").wait_for()
    assert notice.count() == 0

    page.get_by_role("button", name="Log out").click()
    page.get_by_role("link", name="Forgot password?").click()
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Send reset link").click()
    page.get_by_text("If an account has this address, a reset link is on its way.").wait_for()
    reset = inbox.wait(2)[1]
    assert reset["Subject"] == "Reset your Parley password"
    base, token = link_in(reset)
    page.goto(f"{base}#token={token}")
    page.get_by_label("New password").fill(email.split("@")[0] + "-2026")  # the policy holds
    page.get_by_role("button", name="Set password").click()
    page.get_by_role("alert").filter(has_text="must not contain your email").wait_for()
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    page.get_by_text("Your password is set").wait_for()
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("alert").filter(has_text="invalid email or password").wait_for()
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("textbox", name="Message").wait_for()

    page.goto(f"{base}#token={token}")  # a spent link says so
    page.get_by_label("New password").fill(NEW_PASSWORD + "!")
    page.get_by_role("button", name="Set password").click()
    page.get_by_role("link", name="Ask for a new link").wait_for()
