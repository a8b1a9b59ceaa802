"""Answers that outlive their tab, and tabs that follow each other."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.browser.conftest import register

NewPage = Callable[..., Any]
FULL = " ".join(f"w{i}" for i in range(80))  # chat-slow's answer: 80 words, 0.15 s apart


def _words(locator: Any) -> str:
    return " ".join(locator.inner_text().split())


def test_a_closed_tab_reattaches_to_its_answer(new_page: NewPage) -> None:
    """Close the tab mid-answer and open the conversation again: the answer continues from
    the server's copy, never doubled or missing a piece, and ends saved whole."""
    page = new_page()
    register(page)
    page.get_by_role("combobox", name="Model").select_option("chat-slow")
    page.get_by_role("textbox", name="Message").fill("a long answer please")
    page.get_by_role("textbox", name="Message").press("Enter")
    page.locator("article[aria-busy='true']").get_by_text(re.compile(r"w3\b")).wait_for()
    url = page.url
    context = page.context
    page.close()

    again = new_page(context=context)
    again.goto(url)
    live = again.locator("article[aria-busy='true']")
    live.get_by_text(re.compile(r"w12\b")).wait_for()
    shown = _words(live.locator(".markdown"))
    assert FULL.startswith(shown), shown  # what is shown is the answer's own beginning
    assert len(shown.split()) >= 12
    done = again.get_by_role("article", name="Assistant")
    done.get_by_text(re.compile(r"w79\b")).wait_for(timeout=40_000)
    again.locator("article[aria-busy='true']").wait_for(state="detached")
    assert _words(done.locator(".markdown")) == FULL


def test_another_tab_sees_a_new_chat_and_its_live_answer(new_page: NewPage) -> None:
    first = new_page()
    register(first)
    second = new_page(context=first.context)
    second.goto("/")
    second.get_by_role("textbox", name="Message").wait_for()

    first.bring_to_front()  # a background tab gets no animation frames: clicks there wait
    first.get_by_role("combobox", name="Model").select_option("chat-slow")
    first.get_by_role("textbox", name="Message").fill("shared with my other tab")
    first.get_by_role("textbox", name="Message").press("Enter")
    first.wait_for_url(re.compile(r"/c/[^/]+$"))

    # The new conversation appears in the other tab's sidebar, and the answer streams there.
    link = second.get_by_role("navigation", name="Conversations").get_by_role("link")
    link.first.wait_for()
    second.bring_to_front()
    link.first.click()
    live = second.locator("article[aria-busy='true']")
    live.get_by_text(re.compile(r"w8\b")).wait_for(timeout=30_000)
    assert FULL.startswith(_words(live.locator(".markdown")))
    second.get_by_role("article", name="You").get_by_text("shared with my other tab").wait_for()
    second.get_by_role("article", name="Assistant").get_by_text(re.compile(r"w79\b")).wait_for(
        timeout=40_000
    )


def test_an_answer_stays_in_its_own_conversation(new_page: NewPage) -> None:
    """Leaving a conversation mid-answer for a new chat: the answer is not shown there, and
    Send says why it waits; back in the conversation, the answer is still coming."""
    page = new_page()
    register(page)
    page.get_by_role("combobox", name="Model").select_option("chat-slow")
    page.get_by_role("textbox", name="Message").fill("take your time")
    page.get_by_role("textbox", name="Message").press("Enter")
    page.locator("article[aria-busy='true']").get_by_text(re.compile(r"w2\b")).wait_for()
    page.get_by_role("button", name="New chat").click()
    page.get_by_text("Ask anything.").wait_for()
    assert page.locator("article").count() == 0
    page.get_by_text("An answer is still being written in another").wait_for()
    page.get_by_role("textbox", name="Message").fill("meanwhile")
    assert page.get_by_role("button", name="Send").is_disabled()
    page.get_by_role("navigation", name="Conversations").get_by_role("link").first.click()
    page.locator("article[aria-busy='true']").get_by_text(re.compile(r"w\d+\b")).first.wait_for()
