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
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

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
        "  - name: claude-sonnet\n    deployments:\n      - provider: anthropic\n"
        f"        model: claude-sonnet-4-5\n        api_base: {fake_url}\n"
        "        api_key: os.environ/FAKE_KEY\n"
    )
    port = free_port()
    env = {**os.environ, "FAKE_KEY": "fake", "PARLEY_DATABASE_URL": f"sqlite:///{home}/p.db"}
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

                phone = browser.new_context(
                    viewport={"width": 375, "height": 760},
                    color_scheme="dark",
                    base_url=url,
                    storage_state=desktop.storage_state(),
                )
                phone.route("**/*", _guard)
                small = phone.new_page()
                small.goto(page.url)
                small.get_by_role("article", name="Assistant").first.wait_for()
                small.locator("math").first.wait_for()
                small.screenshot(path=out / "chat-phone-dark.png")
                small.get_by_role("button", name="Menu").click()
                small.screenshot(path=out / "sidebar-phone-dark.png")
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
    for name in sorted(p.name for p in out.glob("*.png")):
        print(out / name)


if __name__ == "__main__":
    main()
