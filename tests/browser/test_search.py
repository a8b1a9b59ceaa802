"""Search (Ctrl+K): hits open their conversation on the right branch, scrolled to the
message even when it is pages back; snippets stay text."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from tests.browser.conftest import PASSWORD, Server, register

NewPage = Callable[..., Any]


@contextlib.contextmanager
def _api(server: Server, email: str) -> Iterator[httpx.Client]:
    """The user's own API client (JSON mode), to build a conversation quickly."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        login = client.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        client.headers["authorization"] = f"Bearer {login.json()['access_token']}"
        yield client


def _send(client: httpx.Client, cid: str, text: str, **extra: Any) -> dict[str, Any]:
    response = client.post(
        f"/api/conversations/{cid}/messages", json={"content": text, "model": "chat-fast", **extra}
    )
    assert response.status_code == 200, response.text
    frames = [
        json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")
    ]
    done: dict[str, Any] = frames[-1]
    assert done["status"] == "complete", frames
    return done


def test_a_hit_pages_back_to_its_message(new_page: NewPage, server: Server) -> None:
    page = new_page()
    email = register(page)
    with _api(server, email) as api:
        cid = api.post("/api/conversations", json={"model": "chat-fast"}).json()["id"]
        _send(api, cid, "the needle aardvark is here")
        for n in range(30):  # 60 more messages: the needle is two pages back
            _send(api, cid, f"filler message number {n}")
    page.reload()
    page.get_by_role("navigation", name="Conversations").get_by_role("link").first.wait_for()

    page.keyboard.press("Control+k")
    dialog = page.get_by_role("dialog", name="Search conversations")
    dialog.get_by_role("searchbox", name="Search conversations").fill("aardvark")
    dialog.get_by_role("combobox").first.select_option("message")
    hits = dialog.get_by_role("list", name="Search results").get_by_role("button")
    hits.first.wait_for()
    assert hits.first.locator("mark").first.inner_text().lower() == "aardvark"
    hits.first.click()

    needle = page.get_by_role("article", name="You").filter(has_text="the needle aardvark is here")
    needle.wait_for()
    page.wait_for_function("document.activeElement && document.activeElement.tagName === 'ARTICLE'")
    assert needle.evaluate("el => el === document.activeElement")
    assert needle.is_visible()


def test_a_hit_on_another_branch_opens_that_branch(new_page: NewPage, server: Server) -> None:
    page = new_page()
    email = register(page)
    with _api(server, email) as api:
        cid = api.post("/api/conversations", json={"model": "chat-fast"}).json()["id"]
        first = _send(api, cid, "original wombat question")
        edited = api.post(
            f"/api/conversations/{cid}/messages/{first['user_message_id']}/edit",
            json={"content": "rewritten question", "model": "chat-fast"},
        )
        assert edited.status_code == 200
    page.goto(f"/c/{cid}")
    page.get_by_role("article", name="You").filter(has_text="rewritten question").wait_for()

    page.get_by_role("button", name="Search").click()
    dialog = page.get_by_role("dialog", name="Search conversations")
    dialog.get_by_role("searchbox", name="Search conversations").fill("wombat")
    dialog.get_by_role("list", name="Search results").get_by_role("button").first.click()
    page.get_by_role("article", name="You").filter(has_text="original wombat question").wait_for()
    assert page.get_by_role("article", name="You").get_by_text("1 / 2").is_visible()


def test_snippets_are_text_not_html(new_page: NewPage) -> None:
    page = new_page()
    register(page)
    box = page.get_by_role("textbox", name="Message")
    box.fill("zebracorn <img src=x onerror=window.__pwned=9> stripes")
    box.press("Enter")
    page.get_by_role("article", name="Assistant").wait_for()
    page.keyboard.press("Control+k")
    dialog = page.get_by_role("dialog", name="Search conversations")
    dialog.get_by_role("searchbox", name="Search conversations").fill("zebracorn")
    hit = dialog.get_by_role("list", name="Search results").get_by_role("button").first
    hit.wait_for()
    assert "<img src=x" in hit.inner_text()  # shown as the characters the user typed
    assert dialog.locator("img").count() == 0
    assert page.evaluate("window.__pwned") is None
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
