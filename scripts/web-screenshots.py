"""Screenshots of the web app for docs/guide.md, taken from the real UI.

    .venv/bin/python scripts/web-screenshots.py [--out docs/images]

Starts the ``parley.testing`` fake upstream and a ``parley serve`` in front of it on free
loopback ports, drives Debian's Chromium through the main views (desktop, 375 px, dark),
and writes one PNG per view. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from parley.config.vault import new_key
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
QUESTION = (
    "Compare the two options in a table, then show the formula and a Python helper:\n\n"
    "| option | cost | speed |\n|---|---|---|\n"
    "| cache | $0 | 1 ms |\n| model | $0.002 | 800 ms |\n\n"
    "$$\\text{saving} = \\sum_i c_i \\cdot h_i$$\n\n"
    "```python\ndef saving(costs, hits):\n    return sum(c * h for c, h in zip(costs, hits))\n```"
)


def _fake() -> tuple[FakeUpstream, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    fake = FakeUpstream()
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
    return fake, loop


def _serve(home: Path, fake_url: str) -> tuple[subprocess.Popen[bytes], str]:
    config = home / "parley.yaml"
    config.write_text(
        "models:\n"
        "  - name: chat-fast\n    deployments:\n      - provider: openai\n"
        f"        model: gpt-4o-mini\n        api_base: {fake_url}/v1\n"
        "        api_key: os.environ/FAKE_KEY\n"
        "        price: {input_per_mtok: 0.15, output_per_mtok: 0.6}\n"
        "    limits: {rpm: 600}\n    cache: {enabled: true, ttl: 600}\n"
        "  - name: claude-sonnet\n    deployments:\n      - provider: anthropic\n"
        f"        model: claude-sonnet-4-5\n        api_base: {fake_url}\n"
        "        api_key: os.environ/FAKE_KEY\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "FAKE_KEY": "fake",
        "PARLEY_DATABASE_URL": f"sqlite:///{home}/p.db",
        "PARLEY_SECRETS_KEY": new_key(),  # the console's Models page stores a typed secret
    }
    log = (home / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley", "serve", "--port", str(port), "--config", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"parley serve did not start: {(home / 'serve.log').read_text()[-2000:]}")


def _guard(route: object) -> None:
    request = route.request  # type: ignore[attr-defined]
    if request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
        route.continue_()  # type: ignore[attr-defined]
    else:
        route.abort()  # type: ignore[attr-defined]


def _send(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")
    page.get_by_role("article", name="Assistant").last.wait_for()
    page.locator("article[aria-busy='true']").wait_for(state="detached")


def _console(page: Page, url: str, out: Path) -> None:
    """The admin console as the first account (the install's admin) sees it, with a team,
    a member, two keys and some traffic through one of them."""
    login = {"email": "ada@example.com", "password": "correct horse battery staple 9"}
    token = httpx.post(f"{url}/auth/login", json=login).json()["access_token"]
    bearer = {"authorization": f"Bearer {token}"}
    grace = httpx.post(
        f"{url}/auth/register",
        json={"email": "grace@example.com", "password": login["password"], "name": "Grace Hopper"},
    ).json()
    team = httpx.post(f"{url}/admin/teams", headers=bearer, json={"name": "Platform"}).json()
    httpx.put(
        f"{url}/admin/teams/{team['id']}/members/{grace['id']}",
        headers=bearer,
        json={"role": "admin"},
    )
    httpx.post(
        f"{url}/admin/keys",
        headers=bearer,
        json={"name": "ci", "team_id": team["id"], "rpm": 60, "expires_in_days": 90},
    )
    page.goto("/manage/keys")
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Create key")
    dialog.get_by_label("Name").fill("billing service")
    dialog.get_by_role("checkbox", name="chat-fast").check()
    dialog.get_by_label("Budget (USD)", exact=True).fill("25")
    dialog.get_by_label("Requests per minute").fill("120")
    page.screenshot(path=out / "console-create-key.png")
    dialog.get_by_role("button", name="Create key").click()
    created = page.get_by_role("dialog", name="Key created")
    secret = created.get_by_role("textbox", name="New key").input_value()
    page.screenshot(path=out / "console-key-created.png")
    created.get_by_role("button", name="Done").click()
    for n in range(5):  # traffic, so spend and latency have something to show
        httpx.post(
            f"{url}/v1/chat/completions",
            headers={"authorization": f"Bearer {secret}"},
            json={"model": "chat-fast", "messages": [{"role": "user", "content": f"hi {n}"}]},
        )
    for n in (0, 0, 1):  # asked again: answered from the cache, for its hit rate
        httpx.post(
            f"{url}/v1/chat/completions",
            headers={"authorization": f"Bearer {secret}"},
            json={"model": "chat-fast", "messages": [{"role": "user", "content": f"hi {n}"}]},
        )
    for n in range(3):  # and a second group, for the overview's per-group figures
        httpx.post(
            f"{url}/v1/chat/completions",
            headers=bearer,
            json={"model": "claude-sonnet", "messages": [{"role": "user", "content": f"yo {n}"}]},
        )
    page.reload()
    page.get_by_role("table", name=re.compile("^API keys")).wait_for()
    page.screenshot(path=out / "console-keys.png")
    shown = {
        "overview": ("table", "Model groups"),
        "usage": ("table", "Usage by day"),
        "audit": ("table", "Audit log"),
        "teams": ("heading", "Members"),
        "users": ("table", "Users"),
        "cache": ("table", "Cache hit rates"),
        "deployments": ("table", "Deployments"),
    }
    for section, (role, name) in shown.items():
        page.goto(f"/manage/{section}")
        page.get_by_role(role, name=name).wait_for()  # type: ignore[arg-type]
        page.screenshot(path=out / f"console-{section}.png")


def _models(page: Page, url: str, fake_url: str, out: Path) -> None:
    """The Models page: a group added through its form (a refused try first), edited once,
    with a little traffic; its revisions."""
    page.set_viewport_size({"width": 1280, "height": 1500})  # the whole form, the whole page
    page.goto("/manage/models")
    page.get_by_role("button", name="Add model").click()
    dialog = page.get_by_role("dialog", name="Add model")
    dialog.get_by_label("Group name").fill("chat-mini")
    dialog.get_by_label("Strategy").select_option("latency")
    dialog.get_by_label("Requests per minute").fill("300")
    dialog.get_by_role("checkbox", name="chat-fast").check()
    dialog.get_by_label("Model", exact=True).fill("gpt-4o-mini")
    dialog.get_by_label("API base").fill("127.0.0.1/v1")
    dialog.get_by_label("API key from").select_option("secret")
    dialog.get_by_label("API key", exact=True).fill("sk-screenshot-secret-4f2a")
    dialog.get_by_role("button", name="Save").click()
    dialog.get_by_role("alert").wait_for()
    page.screenshot(path=out / "console-add-model-error.png")
    dialog.get_by_label("API base").fill(f"{fake_url}/v1")
    dialog.get_by_label("Input price (USD / 1M tokens)").fill("0.15")
    dialog.get_by_label("Output price (USD / 1M tokens)").fill("0.6")
    dialog.get_by_role("button", name="Test connection").click()
    dialog.get_by_text("Connected").wait_for()
    page.screenshot(path=out / "console-add-model.png")
    dialog.get_by_role("button", name="Save").click()
    group = page.get_by_role("region", name="chat-mini")
    group.get_by_role("button", name="Edit").click()
    page.get_by_role("dialog").get_by_label("Retries").fill("1")
    page.get_by_role("dialog").get_by_role("button", name="Save").click()
    group.get_by_text("stored · revision 2").wait_for()
    login = {"email": "ada@example.com", "password": "correct horse battery staple 9"}
    token = httpx.post(f"{url}/auth/login", json=login).json()["access_token"]
    made = httpx.post(
        f"{url}/admin/keys", headers={"authorization": f"Bearer {token}"}, json={"name": "demo"}
    )
    for n in range(4):  # latency for the health columns
        httpx.post(
            f"{url}/v1/chat/completions",
            headers={"authorization": f"Bearer {made.json()['key']}"},
            json={"model": "chat-mini", "messages": [{"role": "user", "content": f"hi {n}"}]},
        )
    admin = {"authorization": f"Bearer {token}"}
    legacy = {
        "name": "chat-legacy",
        "deployments": [{"provider": "openai_compatible", "model": "m", "api_base": fake_url}],
    }
    httpx.post(f"{url}/admin/models", headers=admin, json=legacy).raise_for_status()
    httpx.delete(f"{url}/admin/models/chat-legacy", headers=admin).raise_for_status()
    page.reload()
    page.get_by_role("region", name="chat-mini").get_by_text("Closed").wait_for()
    page.screenshot(path=out / "console-models.png")
    deleted = page.get_by_role("region", name="Deleted groups")
    deleted.scroll_into_view_if_needed()
    deleted.screenshot(path=out / "console-models-deleted.png")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("region", name="chat-mini").get_by_role("button", name="Revisions").click()
    page.get_by_role("dialog").get_by_role("row").nth(2).wait_for()
    page.screenshot(path=out / "console-model-revisions.png")
    page.keyboard.press("Escape")


def _console_phone(small: Page, out: Path) -> None:
    """The console at 375 px in dark mode, then the deployments page dark on a desktop
    (the same context: a second one from the same cookie would trip refresh-token reuse
    detection)."""
    small.goto("/manage/keys")
    small.get_by_role("table", name=re.compile("^API keys")).wait_for()
    small.screenshot(path=out / "console-keys-phone-dark.png")
    small.goto("/manage/teams")
    small.get_by_role("heading", name="Members").wait_for()
    small.screenshot(path=out / "console-teams-phone-dark.png")
    small.get_by_role("button", name="Menu").click()
    small.screenshot(path=out / "console-nav-phone-dark.png")
    small.goto("/manage/models")
    small.get_by_role("region", name="chat-mini").wait_for()
    small.screenshot(path=out / "console-models-phone-dark.png")
    small.set_viewport_size({"width": 375, "height": 1500})  # the main pane scrolls itself
    for section, table in (("overview", "Model groups"), ("usage", "Usage by day")):
        small.goto(f"/manage/{section}")
        small.get_by_role("table", name=table).wait_for()
        small.screenshot(path=out / f"console-{section}-phone-dark.png")
    small.set_viewport_size({"width": 1280, "height": 800})
    small.goto("/manage/deployments")
    small.get_by_role("table", name="Deployments").wait_for()
    small.screenshot(path=out / "console-deployments-dark.png")
    small.goto("/manage/overview")
    small.get_by_role("table", name="Model groups").wait_for()
    small.screenshot(path=out / "console-overview-dark.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    out: Path = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    fake, loop = _fake()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = _serve(Path(tmp), fake.url)
        try:
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                desktop = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=url)
                desktop.route("**/*", _guard)
                page = desktop.new_page()
                page.goto("/register")
                page.get_by_label("Name").wait_for()
                page.screenshot(path=out / "register.png")
                page.get_by_label("Name").fill("Ada Lovelace")
                page.get_by_label("Email").fill("ada@example.com")
                page.get_by_label("Password").fill("correct horse battery staple 9")
                page.get_by_role("button", name="Create account").click()
                page.get_by_role("textbox", name="Message").wait_for()
                _send(page, "Plan a weekend in Lisbon")
                nav = page.get_by_role("navigation", name="Conversations")
                nav.get_by_role("button", name="Rename New conversation").click()
                page.get_by_role("textbox", name="Conversation title").fill("Lisbon weekend")
                page.get_by_role("textbox", name="Conversation title").press("Enter")
                nav.get_by_role("button", name="Tags Lisbon weekend").click()
                page.get_by_role("textbox", name="Tags for Lisbon weekend").fill("travel, 2027")
                page.get_by_role("textbox", name="Tags for Lisbon weekend").press("Enter")
                nav.get_by_role("list", name="Tags of Lisbon weekend").wait_for()
                page.get_by_role("button", name="New chat").click()
                _send(page, QUESTION)
                page.locator("math").first.wait_for()
                page.locator("pre code.hljs").first.wait_for()
                page.screenshot(path=out / "chat.png")
                page.keyboard.press("Control+k")
                dialog = page.get_by_role("dialog", name="Search conversations")
                dialog.get_by_role("searchbox").fill("Lisbon")
                dialog.get_by_role("list", name="Search results").wait_for()
                page.screenshot(path=out / "search.png")
                page.keyboard.press("Escape")
                page.get_by_role("button", name="Conversation settings").click()
                settings = page.get_by_role("dialog", name="Conversation settings")
                settings.get_by_label("System prompt").fill("Answer in three sentences or fewer.")
                settings.get_by_label("New preset name").fill("Concise")
                settings.get_by_role("button", name="Save as preset").click()
                settings.get_by_text("Saved preset “Concise”.").wait_for()
                page.screenshot(path=out / "settings.png")
                page.keyboard.press("Escape")
                chat = page.url
                _console(page, url, out)
                _models(page, url, fake.url, out)

                phone = browser.new_context(
                    viewport={"width": 375, "height": 760},
                    color_scheme="dark",
                    base_url=url,
                    storage_state=desktop.storage_state(),
                )
                phone.route("**/*", _guard)
                small = phone.new_page()
                small.goto(chat)
                small.get_by_role("article", name="Assistant").first.wait_for()
                small.locator("math").first.wait_for()
                small.screenshot(path=out / "chat-phone-dark.png")
                small.get_by_role("button", name="Menu").click()
                small.screenshot(path=out / "sidebar-phone-dark.png")
                _console_phone(small, out)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
    for name in sorted(p.name for p in out.glob("*.png")):
        print(out / name)


if __name__ == "__main__":
    main()
