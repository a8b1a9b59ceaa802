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
    # the tab this test clicks in is the front one: a background tab gets no animation
    # frames, so each of Playwright's "stable" checks there waits out its retries (~1.4 s)
    page.bring_to_front()
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


def test_tags_show_as_chips_and_filter_the_list(new_page: NewPage) -> None:
    page = new_page()
    register(page)
    _chat(page, "budget for q3")
    _chat(page, "holiday ideas")
    nav = page.get_by_role("navigation", name="Conversations")

    nav.get_by_role("link", name="New conversation").nth(1).click()  # the older one
    nav.get_by_role("button", name="Tags New conversation").click()
    tags = page.get_by_role("textbox", name="Tags for New conversation")
    tags.fill(" work, q3 ,work,")
    tags.press("Enter")
    chips = nav.get_by_role("list", name="Tags of New conversation")
    chips.get_by_role("button").nth(1).wait_for()
    assert chips.get_by_role("button").all_inner_texts() == ["work", "q3"]  # trimmed, once each

    page.reload()
    nav = page.get_by_role("navigation", name="Conversations")
    nav.get_by_role("button", name="Show conversations tagged q3").click()
    nav.get_by_role("heading", name="Tagged “q3”").wait_for()
    nav.get_by_role("link").first.wait_for()
    assert nav.get_by_role("link").count() == 1
    nav.get_by_role("link").first.click()
    page.get_by_text("You said: budget for q3").wait_for()

    # Taking the tag off while filtered by it moves the conversation out of the list.
    nav.get_by_role("button", name="Tags New conversation").click()
    page.get_by_role("textbox", name="Tags for New conversation").fill("work")
    page.get_by_role("textbox", name="Tags for New conversation").press("Enter")
    nav.get_by_text("No conversations with this tag.").wait_for()
    nav.get_by_role("button", name="Show all conversations").click()
    nav.get_by_role("link").nth(1).wait_for()
    assert nav.get_by_role("link").count() == 2
