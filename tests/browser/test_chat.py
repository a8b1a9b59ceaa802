"""The web app as a user meets it: register, chat with a streamed Markdown answer, stay
signed in across a reload, sign out; and answers that try to run script stay inert."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.browser.conftest import PASSWORD, Server, register

NewPage = Callable[..., Any]


def test_register_chat_reload_and_log_out(new_page: NewPage, server: Server) -> None:
    """A new user registers, sends a message with Enter, sees the answer rendered as
    Markdown, finds the conversation in the sidebar, is still signed in after a reload
    (the refresh cookie), and is signed out by "Log out"."""
    page = new_page()
    email = register(page)
    box = page.get_by_role("textbox", name="Message")
    assert page.get_by_role("combobox", name="Model").input_value() == "chat-fast"

    box.fill("Say **bold** please")
    box.press("Enter")
    answer = page.get_by_role("article", name="Assistant").last
    answer.locator("strong", has_text="bold").wait_for()  # Markdown, not literal asterisks
    assert "You said: Say" in answer.inner_text()
    page.wait_for_url(re.compile(r"/c/[^/]+$"))
    sidebar = page.get_by_role("navigation", name="Conversations")
    assert sidebar.get_by_role("link").count() == 1

    page.reload()
    page.get_by_role("article", name="Assistant").locator("strong").wait_for()
    you = page.get_by_role("article", name="You").locator(".plain")
    assert you.inner_text() == "Say **bold** please"  # the user's text stays text

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    page.reload()  # the cookie is gone too: still signed out
    page.get_by_role("button", name="Sign in", exact=True).wait_for()

    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("navigation", name="Conversations").get_by_role("link").first.wait_for()


def test_shift_enter_is_a_new_line_and_enter_sends(new_page: NewPage) -> None:
    page = new_page()
    register(page)
    box = page.get_by_role("textbox", name="Message")
    box.click()
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    assert box.input_value() == "first line\nsecond line"
    assert page.get_by_role("article").count() == 0  # nothing sent yet
    page.keyboard.press("Enter")
    page.get_by_role("article", name="Assistant").wait_for()
    assert box.input_value() == ""
    you = page.get_by_role("article", name="You").inner_text()
    assert "first line\nsecond line" in you


def test_html_in_an_answer_is_inert(new_page: NewPage) -> None:
    """The fake echoes the question, so the answer carries the attack: marked's HTML goes
    through DOMPurify, and neither the handler nor the script URL survives."""
    page = new_page()
    register(page)
    box = page.get_by_role("textbox", name="Message")
    box.fill(
        '<img src="x" onerror="window.__pwned = 1"> '
        "[click](javascript:window.__pwned=2) <script>window.__pwned=3</script>"
    )
    box.press("Enter")
    answer = page.get_by_role("article", name="Assistant")
    answer.wait_for()
    page.wait_for_timeout(300)  # give an injected handler the chance to fire
    assert page.evaluate("window.__pwned") is None
    assert answer.locator("[onerror]").count() == 0
    assert answer.locator("script").count() == 0
    for href in answer.locator("a").evaluate_all("links => links.map(a => a.href)"):
        assert not href.startswith("javascript:")


def test_two_tabs_share_one_session(new_page: NewPage, browser: Any, server: Server) -> None:
    """A second tab of the same browser is signed in from the cookie, and logging out in
    one tab signs the other out too (BroadcastChannel)."""
    first = new_page()
    register(first)
    second = new_page(context=first.context)
    second.goto("/")
    second.get_by_role("textbox", name="Message").wait_for()

    first.bring_to_front()  # a background tab gets no animation frames: clicks there wait
    first.get_by_role("button", name="Log out").click()
    second.wait_for_url("**/login")
    second.get_by_role("button", name="Sign in", exact=True).wait_for()


def test_phone_width_and_dark_mode(new_page: NewPage) -> None:
    """At 375 px the sidebar hides behind "Menu" and the composer stays on screen."""
    page = new_page(width=375, height=740, dark=True)
    register(page)
    sidebar = page.get_by_role("navigation", name="Conversations")
    assert not sidebar.is_visible()
    menu = page.get_by_role("button", name="Menu")
    menu.click()
    assert sidebar.is_visible()
    assert menu.get_attribute("aria-expanded") == "true"
    menu.click()
    send = page.get_by_role("button", name="Send")
    box = send.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= 375
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background != "rgb(255, 255, 255)"  # the dark palette applies


def test_math_tables_and_code_render_and_code_copies_exactly(new_page: NewPage) -> None:
    """The fake echoes the question, so the answer holds what the question held: a GFM
    table, inline and display math (MathML, drawn by KaTeX once it has loaded) and a code
    fence whose copy button copies the code exactly."""
    page = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    register(page)
    code = 'def f(x):\n    return "<tag>" * x'
    text = (
        "Sum: $a^2 + b^2$\n\n$$\\int_0^1 x\\,dx$$\n\n"
        f"| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\n{code}\n```"
    )
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")
    answer = page.get_by_role("article", name="Assistant")
    answer.locator("table td", has_text="2").wait_for()
    answer.locator("math").first.wait_for()
    assert answer.locator("math[display='block']").count() == 1
    assert answer.locator("math").count() == 2
    answer.locator("pre code.hljs").wait_for()  # highlighted once highlight.js loaded
    answer.get_by_role("button", name="Copy code").click()
    assert page.evaluate("navigator.clipboard.readText()") == code
