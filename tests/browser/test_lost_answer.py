"""An answer whose server dies mid-stream, seen in the browser: the embedded tier started
again on the same database saves the lost answer as far as it got, marked as not finished,
and the open tab shows it with Retry (after the reconnect, and after a reload: it is the
saved message, not the tab's memory of the broken stream); Retry answers it."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import free_port
from tests.browser.conftest import Server, _model, register, serving

NewPage = Callable[..., Any]

QUICK = {
    # A lost answer is noticed 4 s after its process's last heartbeat: the restarted
    # process is up well before, so the tab reads the conversation back first and finds
    # the answer saved only later (as in production, whose limit is 15 s), which is the
    # order that needs the saved copy to replace the broken one in an open tab.
    "PARLEY_CHAT_GENERATION_HEARTBEAT_SECONDS": "0.2",
    "PARLEY_CHAT_GENERATION_STALE_SECONDS": "4",
}


class Restartable:
    """One embedded-tier server (its SQLite file in ``home``) that a test may kill and
    start again on the same port, so the page's address stays valid."""

    def __init__(self, home: Path, fake: FakeUpstream) -> None:
        url = f"{fake.url}/v1"
        self.models = _model(
            "chat-slow", "openai", "gpt-4o-mini+chunk-delay-0.1+tokens-200", url
        ) + _model("chat-fast", "openai", "gpt-4o-mini", url)
        self.home, self.fake, self.port = home, fake, free_port()
        self._running: Iterator[Server] | None = None
        self.current = self.start()

    def start(self) -> Server:
        self._running = serving(self.home, self.fake, self.models, QUICK, port=self.port)
        return self._running.__enter__()  # type: ignore[attr-defined,no-any-return]

    def kill_and_restart(self) -> None:
        assert self.current.process is not None
        self.current.process.send_signal(signal.SIGKILL)
        self.current.process.wait()
        self.stop()
        self.current = self.start()

    def stop(self) -> None:
        if self._running is not None:
            self._running.__exit__(None, None, None)  # type: ignore[attr-defined]
            self._running = None


@pytest.fixture(scope="module")
def restartable(
    browser_fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Restartable]:
    running = Restartable(tmp_path_factory.mktemp("lost-answer-server"), browser_fake)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def server(restartable: Restartable) -> Server:
    """What ``new_page`` opens pages on: the restartable server's first life (the port,
    and so every page's address, outlives it)."""
    return restartable.current


def test_an_answer_lost_with_its_server_is_shown_saved_with_retry(
    new_page: NewPage, restartable: Restartable
) -> None:
    page = new_page()
    register(page)
    page.get_by_role("combobox", name="Model").select_option("chat-slow")
    page.get_by_role("textbox", name="Message").fill("a long story please")
    page.get_by_role("textbox", name="Message").press("Enter")
    answer = page.get_by_role("article", name="Assistant")
    answer.get_by_text("w3 w4").wait_for()  # streaming: the answer is running on the server
    # The text is saved as of the last heartbeat (every 0.2 s): let one pass after "w4"
    # reached the tab, or the kill can land before it and the saved copy end at "w3".
    page.wait_for_timeout(600)

    restartable.kill_and_restart()

    # The tab's stream broke; once the socket is back, the conversation read back from the
    # server holds the answer the new process saved as lost: its text so far, and Retry.
    saved = page.get_by_role("article", name="Assistant")
    saved.get_by_role("button", name="Retry").wait_for()
    page.reload()
    saved = page.get_by_role("article", name="Assistant")
    saved.get_by_text("This answer did not finish.").wait_for()
    assert saved.count() == 1
    assert saved.locator(".markdown").inner_text().startswith("w0 w1 w2 w3 w4")

    page.get_by_role("combobox", name="Model").select_option("chat-fast")
    saved.get_by_role("button", name="Retry").click()
    page.get_by_role("article", name="Assistant").get_by_text(
        "You said: a long story please"
    ).wait_for()
    assert page.get_by_role("article", name="Assistant").get_by_role("alert").count() == 0
