"""The conversation list: rename in place, pin, archive, delete with undo, and another tab
following each change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.browser.conftest import register

NewPage = Callable[..., Any]


def _chat(page: Any, text: str) -> None:
    page.get_by_role("button", name="New chat").click()
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("textbox", name="Message").press("Enter")
    page.get_by_role("article", name="Assistant").get_by_text(f"You said: {text}").wait_for()
    page.locator("article[aria-busy='true']").wait_for(state="detached")  # the answer ended


def test_rename_pin_archive_and_delete_with_undo(new_page: NewPage) -> None:
    page = new_page()
    register(page)
    other = new_page(context=page.context)
    _chat(page, "first")
    _chat(page, "second")
    other.goto("/")
    nav = page.get_by_role("navigation", name="Conversations")
    other_nav = other.get_by_role("navigation", name="Conversations")
    other_nav.get_by_role("link").nth(1).wait_for()

    # Rename in place (the newest conversation is open and first in the list).
    nav.get_by_role("button", name="Rename New conversation").first.click()
    title = page.get_by_role("textbox", name="Conversation title")
    title.fill("Trip plans")
    title.press("Enter")
    nav.get_by_role("link", name="Trip plans").wait_for()
    other_nav.get_by_role("link", name="Trip plans").wait_for()  # the other tab follows

    # Pin the older one: it moves to the top.
    older = nav.get_by_role("link", name="New conversation")
    older.click()
    nav.get_by_role("button", name="Pin New conversation").click()
    nav.get_by_role("button", name="Unpin New conversation").wait_for()
    assert nav.get_by_role("link").first.inner_text().endswith("New conversation")

    # Archive "Trip plans": it leaves the list and waits under "Archived conversations".
    nav.get_by_role("link", name="Trip plans").click()
    nav.get_by_role("button", name="Archive Trip plans").click()
    nav.get_by_role("link", name="Trip plans").wait_for(state="detached")
    nav.get_by_role("button", name="Archived conversations").click()
    nav.get_by_role("link", name="Trip plans").wait_for()
    nav.get_by_role("link", name="Trip plans").click()
    nav.get_by_role("button", name="Unarchive Trip plans").click()
    nav.get_by_role("button", name="Back to conversations").click()
    nav.get_by_role("link", name="Trip plans").wait_for()

    # Delete, then undo: nothing is lost.
    nav.get_by_role("button", name="Delete Trip plans").click()
    nav.get_by_role("link", name="Trip plans").wait_for(state="detached")
    nav.get_by_role("button", name="Undo").click()
    nav.get_by_role("link", name="Trip plans").wait_for()

    # Delete for good: once the undo window passes it is gone, here, after a reload, and
    # in the other tab.
    nav.get_by_role("link", name="Trip plans").click()
    nav.get_by_role("button", name="Delete Trip plans").click()
    nav.get_by_role("button", name="Undo").wait_for(state="detached", timeout=20_000)
    other_nav.get_by_role("link", name="Trip plans").wait_for(state="detached")
    page.reload()
    page.get_by_role("navigation", name="Conversations").get_by_role("link").first.wait_for()
    assert page.get_by_role("navigation", name="Conversations").get_by_role("link").count() == 1
