"""Conversation settings and presets, share links, export and import, and the account page."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyotp

from tests.browser.conftest import PASSWORD, Server, register

NewPage = Callable[..., Any]


def _chat(page: Any, text: str) -> None:
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("textbox", name="Message").press("Enter")
    page.get_by_role("article", name="Assistant").get_by_text(f"You said: {text}").wait_for()
    page.get_by_role("button", name="Regenerate").last.wait_for()  # saved, and read back


def test_settings_and_presets_and_a_concurrent_change(new_page: NewPage) -> None:
    page = new_page()
    register(page)
    _chat(page, "hello")
    page.get_by_role("button", name="Conversation settings").click()
    dialog = page.get_by_role("dialog", name="Conversation settings")
    dialog.get_by_label("System prompt").fill("Answer like a pirate.")
    dialog.get_by_label("Temperature").fill("0.3")
    dialog.get_by_label("New preset name").fill("Pirate")
    dialog.get_by_role("button", name="Save as preset").click()
    dialog.get_by_text("Saved preset “Pirate”.").wait_for()
    dialog.get_by_role("button", name="Save", exact=True).click()
    dialog.wait_for(state="hidden")

    page.reload()
    page.get_by_role("button", name="Conversation settings").click()
    dialog = page.get_by_role("dialog", name="Conversation settings")
    assert dialog.get_by_label("System prompt").input_value() == "Answer like a pirate."
    assert dialog.get_by_label("Temperature").input_value() == "0.3"
    dialog.get_by_label("System prompt").fill("")
    dialog.get_by_role("button", name="Apply preset Pirate").click()
    assert dialog.get_by_label("System prompt").input_value() == "Answer like a pirate."

    # Edit the preset in place: new values from the form, then a new name.
    dialog.get_by_label("System prompt").fill("Answer like a parrot.")
    dialog.get_by_role("button", name="Update preset Pirate from this form").click()
    dialog.get_by_text("Updated preset “Pirate”.").wait_for()
    dialog.get_by_role("button", name="Rename preset Pirate").click()
    dialog.get_by_role("textbox", name="Name of preset Pirate").fill("Parrot")
    dialog.get_by_role("textbox", name="Name of preset Pirate").press("Enter")
    dialog.get_by_text("Renamed preset to “Parrot”.").wait_for()
    dialog.get_by_label("System prompt").fill("")
    dialog.get_by_role("button", name="Apply preset Parrot").click()
    assert dialog.get_by_label("System prompt").input_value() == "Answer like a parrot."
    assert dialog.is_visible()  # Enter in the name field did not submit or close the dialog

    # Another tab renames the conversation meanwhile: saving here is refused, not merged.
    other = new_page(context=page.context)
    other.goto(page.url)
    nav = other.get_by_role("navigation", name="Conversations")
    nav.get_by_role("button", name="Rename New conversation").first.click()
    other.get_by_role("textbox", name="Conversation title").fill("Renamed elsewhere")
    other.get_by_role("textbox", name="Conversation title").press("Enter")
    nav.get_by_role("link", name="Renamed elsewhere").wait_for()
    page.bring_to_front()  # a background tab gets no animation frames: clicks there wait
    dialog.get_by_label("Top p").fill("0.5")
    dialog.get_by_role("button", name="Save", exact=True).click()
    dialog.get_by_text("This conversation was changed in another tab or device.").wait_for()
    dialog.get_by_role("button", name="Reload").click()
    page.get_by_role("heading", name="Renamed elsewhere").wait_for()


def test_share_link_opens_signed_out_and_dies_when_revoked(new_page: NewPage) -> None:
    page = new_page()
    register(page)
    _chat(page, "a question worth sharing")
    page.get_by_role("button", name="Share").click()
    dialog = page.get_by_role("dialog", name="Share conversation")
    dialog.get_by_role("button", name="Create link").click()
    link = dialog.get_by_label("Share link").input_value()
    assert re.search(r"/s/[^/]+$", link)

    stranger = new_page()  # a fresh context: signed out
    stranger.goto(link)
    stranger.get_by_role("article", name="You").get_by_text("a question worth sharing").wait_for()
    assert stranger.get_by_role("textbox", name="Message").count() == 0

    dialog.get_by_role("button", name="Revoke").click()
    dialog.get_by_role("button", name="Revoke").wait_for(state="detached")
    stranger.reload()
    stranger.get_by_role("heading", name="This link no longer works").wait_for()


def test_export_then_import_and_a_bad_file_names_its_path(
    new_page: NewPage, tmp_path: Path
) -> None:
    page = new_page()
    register(page)
    _chat(page, "keep this")
    with page.expect_download() as got:
        page.get_by_role("button", name="Export JSON").click()
    saved = tmp_path / "export.json"
    got.value.save_as(saved)
    exported = json.loads(saved.read_text())
    assert exported["format"] == "parley.conversation.v1"
    with page.expect_download() as got_md:
        page.get_by_role("button", name="Export Markdown").click()
    markdown = tmp_path / "export.md"
    got_md.value.save_as(markdown)
    assert "keep this" in markdown.read_text()

    page.locator("input[type=file]").set_input_files(str(saved))
    page.get_by_text("Imported 1 conversation.").wait_for()
    nav = page.get_by_role("navigation", name="Conversations")
    assert nav.get_by_role("link").count() == 2

    bad = tmp_path / "bad.json"
    exported["messages"][0]["content"] = [{"type": "nonsense"}]
    bad.write_text(json.dumps(exported))
    page.locator("input[type=file]").set_input_files(str(bad))
    alert = page.get_by_role("alert").filter(has_text="messages[0].content[0]")
    alert.wait_for()
    assert nav.get_by_role("link").count() == 2  # nothing written


def test_account_password_two_factor_and_sessions(new_page: NewPage, server: Server) -> None:
    page = new_page()
    email = register(page, name="Grace Hopper")
    page.get_by_role("link", name="Settings").click()
    new = page.get_by_label("New password")
    new.fill("grace")
    page.get_by_text("Needs: at least 12 characters; not containing your name.").wait_for()
    assert page.get_by_role("button", name="Change password").is_disabled()

    page.get_by_role("button", name="Set up two-factor sign-in").click()
    page.get_by_role("img", name="QR code for your authenticator app").wait_for()
    secret = page.locator(".hint code").inner_text()
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    codes = page.get_by_role("list", name="Recovery codes").get_by_role("listitem")
    codes.first.wait_for()
    assert codes.count() == 10

    # Signing in again now asks for the second factor; a recovery code works once.
    recovery, spare = (codes.nth(i).inner_text().strip() for i in (0, 1))
    page.get_by_role("button", name="Log out", exact=True).click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_label("Authentication code").fill(recovery)
    page.get_by_role("button", name="Verify").click()
    page.get_by_role("textbox", name="Message").wait_for()

    # Another device signs in (with the spare recovery code): it is listed, and signing it
    # out from here ends it.
    with httpx.Client(base_url=server.url, timeout=30) as device:
        first = device.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
        tokens = device.post(
            "/auth/login/mfa", json={"mfa_token": first["mfa_token"], "recovery_code": spare}
        ).json()
        page.get_by_role("link", name="Settings").click()
        listed = page.locator(".sessions li")
        listed.nth(1).wait_for()
        assert listed.count() == 2
        assert listed.filter(has_text="this browser").count() == 1
        listed.get_by_role("button", name="Sign out").click()
        listed.nth(1).wait_for(state="detached")
        gone = device.get("/api/me", headers={"authorization": f"Bearer {tokens['access_token']}"})
        assert gone.status_code == 401
