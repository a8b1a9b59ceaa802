"""Accessibility: axe-core finds no serious or critical violation on the main pages (light
and dark), the chat works from the keyboard alone, and nothing needs sideways scrolling at
320 px wide or at 200% zoom."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.browser.conftest import PASSWORD, register, unique_email

NewPage = Callable[..., Any]
AXE = Axe()
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def _violations(page: Any) -> list[str]:
    """Serious and critical axe findings on the page as it is now, one line each."""
    results = AXE.run(page, options={"runOnly": {"type": "tag", "values": TAGS}})
    found = results.response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def _chat(page: Any, text: str) -> None:
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("textbox", name="Message").press("Enter")
    page.get_by_role("article", name="Assistant").wait_for()
    page.locator("article[aria-busy='true']").wait_for(state="detached")


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_axe_finds_nothing_serious(new_page: NewPage, dark: bool) -> None:
    page = new_page(dark=dark)
    page.goto("/login")
    page.get_by_role("button", name="Sign in", exact=True).wait_for()
    pages = {"login": _violations(page)}
    page.goto("/register")
    page.get_by_role("button", name="Create account").wait_for()
    pages["register"] = _violations(page)
    page.goto("/forgot-password")
    page.get_by_role("button", name="Send reset link").wait_for()
    pages["forgot-password"] = _violations(page)
    page.goto("/reset-password#token=prs_not-a-real-token")
    page.get_by_role("button", name="Set password").wait_for()
    pages["reset-password"] = _violations(page)
    register(page)
    _chat(page, "A table:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nprint('hi')\n```")
    page.locator("pre code.hljs").first.wait_for()
    pages["chat"] = _violations(page)
    page.get_by_role("button", name="Conversation settings").click()
    page.get_by_role("dialog", name="Conversation settings").wait_for()
    pages["conversation settings"] = _violations(page)
    page.keyboard.press("Escape")
    page.keyboard.press("Control+k")
    search = page.get_by_role("dialog", name="Search conversations")
    search.get_by_role("searchbox").fill("table")
    search.get_by_role("list", name="Search results").wait_for()
    pages["search"] = _violations(page)
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Share").click()
    share = page.get_by_role("dialog", name="Share conversation")
    share.get_by_role("button", name="Create link").click()
    link = share.get_by_label("Share link").input_value()
    page.keyboard.press("Escape")
    page.goto("/settings")
    page.get_by_role("heading", name="Settings").wait_for()
    pages["settings"] = _violations(page)
    stranger = new_page(dark=dark)
    stranger.goto(link)
    stranger.get_by_role("article", name="You").wait_for()
    pages["shared"] = _violations(stranger)
    assert {name: found for name, found in pages.items() if found} == {}


def test_keyboard_alone(new_page: NewPage) -> None:
    """Register, chat, regenerate, rename and search without touching the mouse."""
    page = new_page()
    page.goto("/register")
    page.get_by_label("Name").wait_for()
    page.get_by_label("Name").focus()
    page.keyboard.type("Kay Board")
    page.keyboard.press("Tab")
    page.keyboard.type(unique_email())
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    box = page.get_by_role("textbox", name="Message")
    box.wait_for()
    page.get_by_role("combobox", name="Model").wait_for()
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Message"
    page.keyboard.type("first question")
    page.keyboard.press("Enter")
    page.get_by_text("You said: first question").wait_for()
    page.locator("article[aria-busy='true']").wait_for(state="detached")

    def tab_to(name: str, *, back: bool = False, limit: int = 60) -> None:
        for _ in range(limit):
            page.keyboard.press("Shift+Tab" if back else "Tab")
            label = page.evaluate(
                "document.activeElement.getAttribute('aria-label')"
                " || document.activeElement.textContent.trim()"
            )
            if label == name:
                return
        pytest.fail(f"Tab never reached {name!r}")

    tab_to("Regenerate", back=True)
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Previous version").wait_for()
    page.locator("article[aria-busy='true']").wait_for(state="detached")

    tab_to("Rename New conversation", back=True)
    page.keyboard.press("Enter")
    page.keyboard.press("Control+a")
    page.keyboard.type("Typed only")
    page.keyboard.press("Enter")
    nav = page.get_by_role("navigation", name="Conversations")
    nav.get_by_role("link", name="Typed only").wait_for()

    page.keyboard.press("Control+k")
    page.keyboard.type("first")
    page.get_by_role("list", name="Search results").get_by_role("listitem").first.wait_for()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("!!document.activeElement.closest('[aria-label=\"Search results\"]')"):
            break
    else:
        pytest.fail("Tab never reached the search results")
    page.keyboard.press("Enter")
    page.get_by_role("dialog", name="Search conversations").wait_for(state="hidden")
    assert re.search(r"/c/[^/]+$", page.url)
    page.get_by_role("article", name="Assistant").get_by_text("You said: first question").wait_for()


@pytest.mark.parametrize(
    ("width", "height"), [(320, 700), (640, 400)], ids=["320px", "200% zoom of 1280x800"]
)
def test_no_sideways_scrolling(new_page: NewPage, width: int, height: int) -> None:
    """200% zoom of a 1280x800 window lays out as a 640x400 CSS px one."""
    page = new_page(width=width, height=height)
    register(page)
    wide = "```\n" + "a_long_unbroken_identifier_" * 6 + "\n```\n\n| a | b | c | d | e |\n"
    _chat(page, wide + "|---|---|---|---|---|\n| 1 | 2 | 3 | 4 | 5 |")
    chat = page.url
    for where in (chat, "/settings", "/"):
        page.goto(where)
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{where} scrolls sideways by {overflow} px at {width} px"
    send = page.get_by_role("button", name="Send").bounding_box()
    assert send is not None
    assert send["x"] + send["width"] <= width
    assert send["y"] + send["height"] <= height  # the composer stays on screen
