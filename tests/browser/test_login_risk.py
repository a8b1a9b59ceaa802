"""Risk-based step-up in Chromium: a sign-in scored into the step-up band, by an account
with no second factor, shows "Verify it's you"; the code mailed to a real SMTP server
(aiosmtpd) completes it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import FakeUpstream
from tests.browser.conftest import PASSWORD, Guard, Server, _model, serving, unique_email
from tests.smtp import Inbox, smtp_server, text_of

pytestmark = pytest.mark.timeout(120)  # it starts its own server (and SMTP server)


@pytest.fixture
def risk_server(browser_fake: FakeUpstream, tmp_path: Path) -> Iterator[tuple[Server, Inbox]]:
    with smtp_server() as (inbox, port):
        env = {
            "PARLEY_SMTP_HOST": "127.0.0.1",
            "PARLEY_SMTP_PORT": str(port),
            "PARLEY_SMTP_SECURITY": "none",
            "PARLEY_MAIL_POLL_SECONDS": "0.1",
            "PARLEY_EMAIL_VERIFICATION": "off",
            "PARLEY_RISK_ENABLED": "true",
            # the browser comes from 127.0.0.1 (no country): a new device alone steps up
            "PARLEY_RISK_STEP_UP_AT": "0.2",
        }
        models = _model("chat-fast", "openai", "gpt-4o-mini", f"{browser_fake.url}/v1")
        with serving(tmp_path, browser_fake, models, env) as running:
            yield running, inbox


@pytest.fixture
def page(browser: Any, risk_server: tuple[Server, Inbox]) -> Iterator[Any]:
    context = browser.new_context(base_url=risk_server[0].url)
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


def test_a_new_device_is_asked_for_the_emailed_code(
    page: Any, risk_server: tuple[Server, Inbox]
) -> None:
    server, inbox = risk_server
    email = unique_email()
    made = httpx.post(
        f"{server.url}/auth/register",
        json={"email": email, "password": PASSWORD, "name": "Ada Lovelace"},
    )
    assert made.status_code == 201, made.text
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Verify it's you").wait_for()
    [message] = inbox.wait(1)
    found = re.search(r"\b(\d{6})\b", text_of(message))
    assert found is not None
    code = found.group(1)
    page.get_by_label("Code").fill("000000" if code != "000000" else "111111")
    page.get_by_role("button", name="Verify").click()
    page.get_by_role("alert").wait_for()  # a wrong code is refused, the prompt stays
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Verify").click()
    page.get_by_role("textbox", name="Message").wait_for()
