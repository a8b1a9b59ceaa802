"""Stopping, regenerating, editing, switching versions and forking, in the browser."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.browser.conftest import register

NewPage = Callable[..., Any]


def test_stop_regenerate_switch_versions_edit_and_fork(new_page: NewPage) -> None:
    page = new_page()
    register(page)
    page.get_by_role("combobox", name="Model").select_option("chat-slow")
    box = page.get_by_role("textbox", name="Message")
    box.fill("tell me a long story")
    box.press("Enter")

    # Stop mid-answer: what had arrived is kept, marked stopped, and survives a reload.
    streaming = page.locator("article[aria-busy='true']")
    streaming.get_by_text(re.compile(r"\w+ \w+ \w+")).wait_for()
    page.get_by_role("button", name="Stop").click()
    answer = page.get_by_role("article", name="Assistant")
    answer.get_by_text("Stopped.").wait_for()
    stopped_text = answer.locator(".markdown").inner_text()
    assert stopped_text
    page.get_by_role("button", name="Send").wait_for()
    page.reload()
    page.get_by_role("article", name="Assistant").get_by_text("Stopped.").wait_for()

    # Regenerate with another model: a second version of the answer.
    page.get_by_role("combobox", name="Model").select_option("chat-fast")
    page.get_by_role("button", name="Regenerate").click()
    answer = page.get_by_role("article", name="Assistant")
    answer.get_by_text("You said: tell me a long story").wait_for()
    answer.get_by_text("2 / 2").wait_for()
    assert answer.get_by_role("button", name="Next version").is_disabled()

    # The previous version comes back, and the choice survives a reload.
    answer.get_by_role("button", name="Previous version").click()
    answer.get_by_text("1 / 2").wait_for()
    answer.get_by_text("Stopped.").wait_for()
    page.reload()
    answer = page.get_by_role("article", name="Assistant")
    answer.get_by_text("1 / 2").wait_for()
    assert answer.locator(".markdown").inner_text() == stopped_text

    # Edit the question: a second version of it, answered anew. (After the reload the
    # picker shows the conversation's own model again.)
    assert page.get_by_role("combobox", name="Model").input_value() == "chat-slow"
    page.get_by_role("combobox", name="Model").select_option("chat-fast")
    question = page.get_by_role("article", name="You")
    question.get_by_role("button", name="Edit").click()
    editor = page.get_by_role("textbox", name="Edit message")
    editor.fill("a short one instead")
    page.get_by_role("button", name="Save and send").click()
    page.get_by_role("article", name="Assistant").get_by_text(
        "You said: a short one instead"
    ).wait_for()
    page.get_by_role("article", name="You").get_by_text("2 / 2").wait_for()

    # Fork from the answer: a new conversation opens with a copy of the branch.
    first_url = page.url
    page.get_by_role("article", name="Assistant").get_by_role("button", name="Fork").click()
    page.wait_for_url(lambda url: url != first_url and "/c/" in url)
    page.get_by_role("article", name="Assistant").get_by_text(
        "You said: a short one instead"
    ).wait_for()
    sidebar = page.get_by_role("navigation", name="Conversations")
    assert sidebar.get_by_role("link").count() == 2
