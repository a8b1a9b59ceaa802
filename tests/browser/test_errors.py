"""Errors a person can act on: a locked sign-in and a rate limit count down their
Retry-After, a spent budget says so, a failed answer keeps its text and offers a retry, and
going offline is noticed."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import FakeUpstream
from tests.browser.conftest import PASSWORD, Server, _model, register, serving

NewPage = Callable[..., Any]
ADMIN_KEY = "pk-admin-browser-errors-0123456789"


@pytest.fixture(scope="module")
def server(
    browser_fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server of its own: an admin key (to set a user's limits), a proxy it trusts (so
    each test's sign-in failures count against an address of its own), a priced group and
    one whose answers fail part-way."""
    url = f"{browser_fake.url}/v1"
    price = "        price: {input_per_mtok: 1000000, output_per_mtok: 1000000}\n"
    spent = "    budget: {usd: 0, period: daily}\n    downgrade: {to: chat-cheap}\n"
    models = (
        _model("chat-fast", "openai", "gpt-4o-mini", url, price)
        + _model(
            "chat-broken", "openai", "gpt-4o-mini+chunk-delay-0.05+tokens-20+stream-error-4", url
        )
        + _model("chat-dear", "openai", "gpt-4o", url, price)
        + spent
        + _model("chat-cheap", "openai", "gpt-4o-mini", url)
    )
    env = {"PARLEY_ADMIN_KEY": ADMIN_KEY, "PARLEY_TRUSTED_PROXIES": "127.0.0.1"}
    with serving(tmp_path_factory.mktemp("errors-server"), browser_fake, models, env) as running:
        yield running


def _limit(server: Server, email: str, **fields: Any) -> None:
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    users = httpx.get(f"{server.url}/admin/users?limit=1000", headers=admin).json()["data"]
    user = next(u for u in users if u["email"] == email)
    answer = httpx.patch(f"{server.url}/admin/users/{user['id']}", headers=admin, json=fields)
    assert answer.status_code == 200, answer.text


def _send(page: Any, text: str) -> None:
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("textbox", name="Message").press("Enter")


def _seconds(text: str) -> int:
    found = re.search(r"Try again in (\d+) s", text)
    assert found, text
    return int(found.group(1))


def test_a_locked_sign_in_counts_down(new_page: NewPage) -> None:
    page = new_page(headers={"x-forwarded-for": "203.0.113.7"})
    email = register(page)
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Sign in", exact=True).wait_for()
    alert = page.get_by_role("alert")
    for attempt in range(1, 10):
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(f"wrong password {attempt}")
        page.get_by_role("button", name="Sign in", exact=True).click()
        alert.wait_for()
        page.wait_for_function("() => !document.querySelector('form[aria-busy=true]')")
        if "Try again in" in alert.inner_text():
            break
    else:
        pytest.fail("the sign-in was never locked")
    first = _seconds(alert.inner_text())
    assert "Too many failed sign-ins" in alert.inner_text()
    page.wait_for_function(
        f"() => !document.querySelector('[role=alert]').textContent.includes('in {first} s')"
    )
    assert _seconds(alert.inner_text()) < first  # it counts down where it is shown
    # The right password is refused too while the lock lasts.
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("alert").get_by_text("Too many failed sign-ins").wait_for()
    assert page.get_by_role("textbox", name="Message").count() == 0


def test_a_rate_limit_counts_down_and_a_spent_budget_says_so(
    new_page: NewPage, server: Server
) -> None:
    page = new_page()
    email = register(page)
    _limit(server, email, rpm=1)
    _send(page, "one")
    page.get_by_text("You said: one").wait_for()
    page.locator("article[aria-busy='true']").wait_for(state="detached")
    _send(page, "two")
    alert = page.get_by_role("alert").filter(has_text="Try again in")
    alert.wait_for()
    assert "1 requests per minute" in alert.inner_text()
    first = _seconds(alert.inner_text())
    assert 0 < first <= 60
    page.wait_for_function(
        "(s) => [...document.querySelectorAll('[role=alert]')]"
        ".some((e) => /Try again in \\d+ s/.test(e.textContent)"
        " && !e.textContent.includes(`in ${s} s`))",
        arg=first,
    )

    # The refused answer keeps its place, says why, and can be retried.
    refused = page.get_by_role("article", name="Assistant").nth(1)
    assert refused.get_by_role("button", name="Retry").is_visible()
    assert refused.get_by_role("button", name="Copy").count() == 0  # nothing to copy

    spender = new_page()
    email = register(spender)
    _limit(server, email, budget_usd=0.000001)
    _send(spender, "three")
    alert = spender.get_by_role("alert").filter(has_text="budget")
    alert.wait_for()
    assert "The spending budget for this period is used up" in alert.inner_text()
    spender.reload()  # once saved, the failure is still shown as one
    spender.get_by_text("This answer did not finish.").wait_for()


def test_an_answer_that_fails_midway_keeps_its_text_and_retries(new_page: NewPage) -> None:
    page = new_page()
    register(page)
    page.get_by_role("combobox", name="Model").select_option("chat-broken")
    _send(page, "tell me a story")
    answer = page.get_by_role("article", name="Assistant")
    answer.get_by_role("alert").filter(has_text="failed mid-stream").wait_for()
    assert answer.count() == 1  # shown once, not once live and once saved
    assert answer.locator(".markdown").inner_text().startswith("w0 w1")  # what arrived stays
    page.get_by_role("combobox", name="Model").select_option("chat-fast")
    answer.get_by_role("button", name="Retry").click()
    page.get_by_role("article", name="Assistant").get_by_text(
        "You said: tell me a story"
    ).wait_for()
    assert page.get_by_role("article", name="Assistant").get_by_role("alert").count() == 0


def test_a_downgraded_answer_says_which_model_wrote_it(new_page: NewPage) -> None:
    """chat-dear's budget is spent, so the answer comes from chat-cheap: the person is told,
    and after a reload the answer still names the model that wrote it."""
    page = new_page()
    register(page)
    page.get_by_role("combobox", name="Model").select_option("chat-dear")
    _send(page, "hello there")
    answer = page.get_by_role("article", name="Assistant")
    answer.get_by_text("You said: hello there").wait_for()
    answer.get_by_text(
        "Answered by chat-cheap instead of chat-dear: a budget for chat-dear is spent."
    ).wait_for()
    page.reload()
    answer = page.get_by_role("article", name="Assistant")
    answer.get_by_text("You said: hello there").wait_for()
    assert answer.locator(".status.model").inner_text() == "chat-cheap"


def test_offline_is_noticed_and_cleared(new_page: NewPage) -> None:
    page = new_page()
    register(page)
    page.context.set_offline(True)
    notice = page.get_by_role("status").filter(has_text="You are offline")
    notice.wait_for()
    page.context.set_offline(False)
    notice.wait_for(state="detached")
