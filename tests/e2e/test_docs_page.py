"""``/docs`` works offline: Swagger UI comes from the installed wheel, the page references
only this origin, and its Content-Security-Policy allows nothing else (checked in a real
browser with every other host blocked)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, fake_models, serve_in_thread
from tests.backends import sqlite_url
from tests.conftest import ParleyFactory, chromium


def _references(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_docs_page_references_only_local_assets(parley: ParleyFactory) -> None:
    url = parley()
    page = httpx.get(f"{url}/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    refs = _references(page.text)
    assert len(refs) >= 3  # stylesheet, bundle, initializer
    for ref in refs:
        assert ref.startswith("/docs/"), ref  # same origin, no CDN
        asset = httpx.get(f"{url}{ref}")
        assert asset.status_code == 200, ref
        assert len(asset.content) > 0
    assert "<script>" not in page.text  # no inline script: the policy need not allow one
    csp = page.headers["content-security-policy"]
    assert "http" not in csp
    assert "script-src 'self';" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    init = httpx.get(f"{url}/docs/init.js").text
    assert '"/openapi.json"' in init
    # Other routes keep the API's own policy.
    assert httpx.get(f"{url}/health/live").headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'"
    )


def test_docs_can_be_turned_off(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> None:
    settings = Settings(database_url=sqlite_url(tmp_path, "p.db"), api_docs=False)
    with serve_in_thread(loop_thread, create_app(settings, models=fake_models(fake.url))) as url:
        for path in ("/docs", "/openapi.json", "/docs/init.js", "/docs/assets/swagger-ui.css"):
            assert httpx.get(f"{url}{path}").status_code == 404, path


def test_docs_render_in_a_browser_with_every_other_host_blocked(parley: ParleyFactory) -> None:
    url = parley()
    foreign: list[str] = []
    problems: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(url):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    with chromium() as browser:
        _render_docs(browser, url, only_local, problems)
    assert foreign == []
    assert problems == []  # a CSP violation is reported as a console error


def _render_docs(browser: Any, url: str, only_local: Any, problems: list[str]) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.route("**/*", only_local)

        def on_console(message: Any) -> None:
            if message.type == "error":
                problems.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{url}/docs")
        page.get_by_text("/v1/chat/completions").first.wait_for(timeout=30_000)
        assert page.get_by_role("heading", name=re.compile("Parley")).count() >= 1
    finally:
        context.close()
