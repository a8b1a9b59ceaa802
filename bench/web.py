"""The web app in Chromium against a local ``parley serve``: page weight, first paint,
time to an interactive chat, a long streamed answer, and a 5,000-message conversation.

One ``parley serve`` (embedded tier, SQLite in a temporary directory) in front of the
``parley.testing`` fake upstream; one user seeded straight into the store with 1,000
conversations: the newest has 20 messages with Markdown answers (code, tables, math),
the one after it 5,000 short messages. Debian's Chromium (headless, the browser tests'
flags) then measures, each load in a fresh browser context (nothing cached):

* the chat page's JavaScript and CSS, compressed bytes as sent (Resource Timing's
  ``encodedBodySize``), without highlight.js and KaTeX, which load only when an answer
  has code or math (shown on their own row); web fonts fetched or declared;
* first contentful paint, and the time from navigation until the sidebar's first page
  and the newest conversation's last message are on screen, the model list is in and a
  task posted then has run (the main thread is free to take input);
* streaming a ``--answer-chars`` Markdown answer in ``--delta-chars`` deltas (the fake
  sends one every ``--delta-delay`` seconds: far faster than a model, so many deltas
  land per frame), from Enter until the saved answer is shown and the page has settled:
  the renderer main thread's tasks from a Chromium trace, by CPU time (the longest, how
  many went over 50 ms, all of them together), since on a shared machine the clock
  counts other processes' turns too; the clock's figures (CDP ``TaskDuration``, the
  ``longtask`` entries) are printed under the table;
* opening the 5,000-message conversation from the sidebar: until its last message is in
  view, and how many messages were fetched and rendered.

The baseline, in the same run: a blank static page (one paragraph, from a loopback file
server) for the page rows; for the stream and the long conversation, a blank page on
Parley's origin that makes the same API calls with ``fetch`` and only keeps the text
(showing its length once a frame): the cost of receiving the data, with no app around it.
The stream's total counts that cost too; the row under it, Parley minus the baseline, is
the app's own.

    python -m bench.web [--runs 5] [--streams 2] [--answer-chars 100000]

Loopback only: Chromium resolves no host name but 127.0.0.1, and any request elsewhere
fails the run. Needs Chromium (``scripts/install-chromium.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import BrowserContext, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from tests.conftest import CHROMIUM, CHROMIUM_ARGS

from bench.common import database_url, print_table, process
from parley.chat.conversations import Conversations
from parley.identity.passwords import Passwords
from parley.identity.users import Users
from parley.store import migrate
from parley.store.db import Database
from parley.testing.scenario import markdown_document
from parley.testing.servers import free_port

EMAIL = "bench@example.com"
PASSWORD = "correct horse battery staple 42"  # noqa: S105 - a throwaway bench account
LAZY = ("vendor/highlight.js", "vendor/katex.js", "vendor/highlight-light.css",
        "vendor/highlight-dark.css")  # fmt: skip
SIDEBAR_PAGE = 50
# Only loopback resolves; an IP literal elsewhere is caught by the request listener.
ISOLATED = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
BLANK = b"<!doctype html><html><head><title>Blank</title></head><body><p>Blank page.</p></body>"

# Long tasks as the page sees them, from its first moment (``buffered`` for the early ones).
OBSERVER = """
window.__bench = { longtasks: [] };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) __bench.longtasks.push([e.startTime, e.duration]);
}).observe({ type: "longtask", buffered: true });
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if (e.name === "first-contentful-paint") __bench.fcp = e.startTime;
  }
}).observe({ type: "paint", buffered: true });
"""

# Until the sidebar's first page, the newest conversation's last message and the model
# list are on screen; then a posted task runs once the main thread is free.
READY = """
window.__readyFor = (lastId, links) => {
  const ok = () =>
    document.querySelectorAll('nav[aria-label="Conversations"] a').length >= links
    && document.getElementById("m-" + lastId)
    && document.querySelector('select[aria-label="Model"]')
    && document.querySelector('textarea[aria-label="Message"]');
  const check = () => {
    if (!ok()) return;
    observer.disconnect();
    const shown = performance.now();
    setTimeout(() => { __bench.ready = { shown, free: performance.now() }; }, 0);
  };
  const observer = new MutationObserver(check);
  observer.observe(document, { subtree: true, childList: true, attributes: true });
};
"""

# From a click on the conversation's sidebar link until its last message is in view.
OPEN_LONG = """
async ([title, lastId]) => {
  const link = [...document.querySelectorAll('nav[aria-label="Conversations"] a')]
    .find((a) => a.textContent.trim() === title);
  const inView = () => {
    const el = document.getElementById("m-" + lastId);
    if (!el || document.querySelector('main[aria-busy="true"]')) return false;
    const box = el.getBoundingClientRect();
    return box.bottom <= innerHeight + 1 && box.bottom > 0;
  };
  const started = performance.now();
  // Checked after every DOM change and every frame (scrolling changes no node).
  const done = new Promise((resolve) => {
    let over = false;
    const check = () => {
      if (over || !inView()) return;
      over = true;
      observer.disconnect();
      const shown = performance.now();
      setTimeout(() => resolve({ shown, free: performance.now() }), 0);
    };
    const observer = new MutationObserver(check);
    observer.observe(document, { subtree: true, childList: true, attributes: true });
    const frame = () => { check(); if (!over) requestAnimationFrame(frame); };
    requestAnimationFrame(frame);
  });
  const late = new Promise((_, reject) => setTimeout(() => {
    const el = document.getElementById("m-" + lastId);
    const where = el ? JSON.stringify(el.getBoundingClientRect()) : "absent";
    reject(new Error(`not in view after 30 s: ${where}`));
  }, 30000));
  link.click();
  const { shown, free } = await Promise.race([done, late]);
  return {
    ms: free - started, shown: shown - started,
    rendered: document.querySelectorAll("main article.message").length,
  };
}
"""

# The stream's end: no message busy, and the saved answer (with its actions) shown.
STREAM_DONE = """
() => !document.querySelector('article[aria-busy="true"]')
  && [...document.querySelectorAll('article[aria-label="Assistant"]')].some(
    (a) => a.querySelector("button") && a.textContent.includes("Part 1: a worked example"))
"""

# The baseline's stream: the same POST and SSE read, the text joined; nothing drawn but
# its length, once a frame (all the wire costs, with no rendering around it).
RAW_STREAM = """
async ([token, conversationId]) => {
  const shown = document.body.appendChild(document.createElement("p"));
  const started = performance.now();
  const response = await fetch(`/api/conversations/${conversationId}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ content: [{ type: "text", text: "Write at length." }] }),
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let text = "";
  let frame = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\\n\\n")) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\\n").filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trim()).join("\\n");
      if (!data) continue;
      const event = JSON.parse(data);
      if (event.type === "delta") text += event.content;
    }
    frame ||= requestAnimationFrame(() => { frame = 0; shown.textContent = `${text.length}`; });
  }
  return { ms: performance.now() - started, chars: text.length };
}
"""

# The baseline's long conversation: fetch its newest page and parse it, nothing else.
RAW_OPEN = """
async ([token, conversationId]) => {
  const started = performance.now();
  const response = await fetch(`/api/conversations/${conversationId}`,
    { headers: { authorization: `Bearer ${token}` } });
  const body = await response.json();
  return { ms: performance.now() - started, fetched: body.messages.length };
}
"""

LONGTASKS = "() => __bench.longtasks"
RESOURCES = """
() => performance.getEntriesByType("resource").map((e) => ({
  url: e.name, bytes: e.encodedBodySize, kind: e.initiatorType,
}))
"""
FCP = "() => __bench.fcp"


@dataclass
class Seeded:
    newest_id: str
    newest_last: str
    long_id: str
    long_title: str
    long_last: str
    seconds: float


async def seed(url: str, conversations: int, long_messages: int) -> Seeded:
    """The user and their conversations, written through the store before the server starts
    (the event path one message at a time would take minutes)."""
    started = time.perf_counter()
    db = Database(url)
    await migrate.upgrade(db)
    hashed = await Passwords().hash(PASSWORD)
    user = await Users(db).create(email=EMAIL, name="Bench", password_hash=hashed, is_admin=True)
    chat = Conversations(db)
    for i in range(conversations - 2):
        await chat.create(user.id, title=f"Conversation {i + 1}", model="bench-fast")
    long_title = f"{long_messages:,} messages"
    long = await chat.create(user.id, title=long_title, model="bench-fast")
    last = ""
    for i in range(long_messages):
        role = "user" if i % 2 == 0 else "assistant"
        text = f"Message {i + 1}: " + "a few words of an ordinary length " * 3
        added = await chat.add_message(
            user.id, long["id"], role=role, content=[{"type": "text", "text": text}]
        )
        last = added["id"]
    newest = await chat.create(user.id, title="The newest conversation", model="bench-fast")
    newest_last = ""
    for i in range(20):
        if i % 2 == 0:
            text = f"Question {i // 2 + 1}: how does this work?"
        else:
            text = markdown_document(1500)
        added = await chat.add_message(
            user.id,
            newest["id"],
            role="user" if i % 2 == 0 else "assistant",
            content=[{"type": "text", "text": text}],
        )
        newest_last = added["id"]
    await db.close()
    return Seeded(
        newest["id"], newest_last, long["id"], long_title, last, time.perf_counter() - started
    )


@contextmanager
def blank_server() -> Iterator[str]:
    """A static file server on loopback with the blank page: the page rows' baseline."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(BLANK)))
            self.end_headers()
            with contextlib.suppress(ConnectionError):  # the browser may not read it all
                self.wfile.write(BLANK)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def parley(home: Path, answer_chars: int, delta_chars: int, delay: float) -> Iterator[str]:
    """The fake upstream and ``parley serve`` in front of it, as two processes."""
    fake_port, port = free_port(), free_port()
    long = f"gpt-4o-mini+markdown-{answer_chars}+delta-chars-{delta_chars}+chunk-delay-{delay}"
    config = home / "parley.yaml"
    config.write_text(
        "models:\n"
        "  - name: bench-fast\n"
        "    deployments:\n"
        "      - {provider: openai, model: gpt-4o-mini, api_key: os.environ/BENCH_KEY,\n"
        f"         api_base: 'http://127.0.0.1:{fake_port}/v1'}}\n"
        "  - name: bench-long\n"
        "    deployments:\n"
        f"      - {{provider: openai, model: '{long}', api_key: os.environ/BENCH_KEY,\n"
        f"         api_base: 'http://127.0.0.1:{fake_port}/v1'}}\n"
    )
    env = {
        "BENCH_KEY": "fake-bench-key-123456",
        "PARLEY_DATABASE_URL": f"sqlite:///{home}/parley.db",
        "PARLEY_LOG_LEVEL": "warning",
    }
    fake = ["-m", "parley.testing.fake_upstream", "--port", str(fake_port)]
    serve = ["-m", "parley", "serve", "--port", str(port), "--config", str(config)]
    with process(fake, fake_port), process(serve, port, env=env):
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/health/ready").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("parley serve did not become ready")
            time.sleep(0.1)
        yield url


@dataclass
class Browser:
    """One Chromium; contexts that record every request leaving loopback."""

    browser: Any
    escaped: list[str] = field(default_factory=list)

    def context(self, base_url: str | None = None) -> BrowserContext:
        context = self.browser.new_context(viewport={"width": 1280, "height": 800})
        if base_url:
            context.set_default_timeout(60_000)

        def watch(request: Any) -> None:
            url = request.url
            if not url.startswith(("data:", "blob:")) and urlsplit(url).hostname != "127.0.0.1":
                self.escaped.append(url)

        context.on("request", watch)
        context.add_init_script(OBSERVER)
        return context


def signed_in(browser: Browser, url: str) -> BrowserContext:
    """A fresh context holding the refresh cookie, as after logging in on the login page."""
    context = browser.context(url)
    context.add_init_script(READY)
    response = context.request.post(
        f"{url}/auth/login",
        data={"email": EMAIL, "password": PASSWORD},
        headers={"x-parley-refresh-cookie": "1"},
    )
    if not response.ok:
        raise RuntimeError(f"login failed: {response.status} {response.text()}")
    return context


@dataclass
class Load:
    fcp: float
    interactive: float
    js: float  # KB, compressed, without the lazy chunks
    css: float
    lazy: float
    fonts: int
    longtasks: list[tuple[float, float]]


def load_chat(browser: Browser, url: str, seeded: Seeded) -> tuple[Load, Page]:
    context = signed_in(browser, url)
    page = context.new_page()
    page.add_init_script(f"__readyFor({json.dumps(seeded.newest_last)}, {SIDEBAR_PAGE})")
    page.goto(f"{url}/c/{seeded.newest_id}")
    try:
        times = page.wait_for_function("() => __bench.ready", timeout=30_000).json_value()
    except PlaywrightTimeout:
        shown = page.inner_text("body")[:2000]
        raise RuntimeError(f"the chat never became ready: {shown}") from None
    page.wait_for_timeout(300)  # let the lazy chunks (code, math) arrive
    resources = page.evaluate(RESOURCES)
    js = css = lazy = 0.0
    fonts = 0
    for item in resources:
        path = urlsplit(item["url"]).path
        size = item["bytes"] / 1024
        if path.endswith(LAZY):
            lazy += size
        elif path.endswith(".js"):
            js += size
        elif path.endswith(".css"):
            css += size
        if path.endswith((".woff2", ".woff", ".ttf", ".otf", ".eot")):
            fonts += 1
    fonts += page.evaluate("() => document.fonts.size")
    fcp = page.wait_for_function(FCP).json_value()
    return Load(fcp, times["free"], js, css, lazy, fonts, page.evaluate(LONGTASKS)), page


def load_blank(browser: Browser, blank_url: str) -> tuple[float, float]:
    """FCP and load-event end of the blank static page."""
    context = browser.context()
    page = context.new_page()
    page.goto(blank_url)
    page.wait_for_function("() => performance.getEntriesByType('navigation')[0]?.loadEventEnd")
    fcp = page.wait_for_function(FCP).json_value()
    loaded = page.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd")
    context.close()
    return fcp, loaded


@dataclass
class Stream:
    ms: float
    cpu_s: float  # the main thread's CPU time, from the trace
    longest_cpu: float  # ms, the longest task's CPU time
    over_50: int  # tasks with over 50 ms of CPU
    wall_s: float  # the main thread's busy time by the clock (CDP TaskDuration)
    longest_wall: float  # ms, the longest task by the clock (longtask entries; 0: none)
    chars: int


def _task_seconds(cdp: Any) -> float:
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))


@contextmanager
def main_thread(browser: Browser, page: Page) -> Iterator[dict[str, float]]:
    """The renderer main thread's tasks meanwhile, from a trace: their CPU time (``tdur``)
    is what the page cost, whatever else the machine was running; wall-clock figures
    stretch with every process the cores are shared with."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    before = _task_seconds(cdp)
    mark = page.evaluate("() => performance.now()")
    found: dict[str, float] = {}
    categories = ["devtools.timeline", "disabled-by-default-devtools.timeline"]
    browser.browser.start_tracing(page=page, categories=categories)
    yield found
    events = json.loads(browser.browser.stop_tracing())["traceEvents"]
    found["wall_s"] = _task_seconds(cdp) - before
    cdp.detach()
    mains = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"
    }
    per_thread: dict[tuple[int, int], list[float]] = {}
    for e in events:
        if e.get("name") == "RunTask" and e.get("ph") == "X" and (e["pid"], e["tid"]) in mains:
            per_thread.setdefault((e["pid"], e["tid"]), []).append(e.get("tdur", 0) / 1000)
    tasks = max(per_thread.values(), key=sum, default=[])  # the page's: the busiest
    found["cpu_s"] = sum(tasks) / 1000
    found["longest_cpu"] = max(tasks, default=0.0)
    found["over_50"] = sum(1 for t in tasks if t > 50)
    found["longest_wall"] = max((d for s, d in page.evaluate(LONGTASKS) if s >= mark), default=0.0)


def _stream(found: dict[str, float], ms: float, chars: int) -> Stream:
    return Stream(
        ms,
        found["cpu_s"],
        found["longest_cpu"],
        int(found["over_50"]),
        found["wall_s"],
        found["longest_wall"],
        chars,
    )


def stream_in_app(browser: Browser, page: Page) -> Stream:
    """A new chat on the long-answer model: Enter, until the saved answer is shown."""
    page.get_by_role("button", name="New chat").click()
    page.get_by_role("combobox", name="Model").select_option("bench-long")
    box = page.get_by_role("textbox", name="Message")
    box.fill("Write at length.")
    page.wait_for_timeout(300)
    with main_thread(browser, page) as found:
        mark = page.evaluate("() => performance.now()")
        box.press("Enter")
        page.wait_for_selector('article[aria-busy="true"]')
        page.wait_for_function(STREAM_DONE, polling=100, timeout=180_000)
        ended = page.evaluate("() => performance.now()")
        page.wait_for_timeout(500)  # what the end sets off (highlighting, math) counts too
    chars = page.evaluate(
        "() => [...document.querySelectorAll('article[aria-label=\"Assistant\"]')].at(-1)"
        ".textContent.length"
    )
    return _stream(found, ended - mark, chars)


def stream_raw(browser: Browser, page: Page, token: str, url: str) -> Stream:
    """The baseline: the same answer read with fetch on a blank page, the text kept."""
    created = httpx.post(
        f"{url}/api/conversations",
        json={"model": "bench-long"},
        headers={"authorization": f"Bearer {token}"},
    ).json()
    with main_thread(browser, page) as found:
        result = page.evaluate(RAW_STREAM, [token, created["id"]])
        page.wait_for_timeout(500)
    return _stream(found, result["ms"], result["chars"])


def blank_on_origin(browser: Browser, url: str) -> Page:
    """A blank page served at Parley's origin (by the browser itself), so it may call the
    API; only this context intercepts requests."""
    context = browser.context(url)
    context.route(
        f"{url}/__blank", lambda route: route.fulfill(body=BLANK, content_type="text/html")
    )
    page = context.new_page()
    page.goto(f"{url}/__blank")
    return page


def open_long(page: Page, seeded: Seeded, fetched: list[int]) -> dict[str, Any]:
    """Open the 5,000-message conversation from the sidebar, then go back to the newest."""
    fetched.clear()
    result: dict[str, Any] = page.evaluate(OPEN_LONG, [seeded.long_title, seeded.long_last])
    page.wait_for_timeout(200)
    result["fetched"] = sum(fetched)
    page.get_by_role("link", name="The newest conversation").click()
    page.locator(f"#m-{seeded.newest_last}").wait_for()
    page.wait_for_timeout(200)
    return result


def say(text: str) -> None:
    """Progress, on stderr: the table alone goes to stdout."""
    print(text, file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="cold loads, long opens")
    parser.add_argument("--streams", type=int, default=2, help="streamed answers (and baselines)")
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--answer-chars", type=int, default=100_000)
    parser.add_argument("--delta-chars", type=int, default=20)
    parser.add_argument("--delta-delay", type=float, default=0.002, help="seconds between deltas")
    args = parser.parse_args(argv)
    chromium = os.environ.get("PARLEY_TEST_CHROMIUM", CHROMIUM)

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        seeded = asyncio.run(
            seed(database_url(None, tmp, "parley.db"), args.conversations, args.messages)
        )
        print(
            f"seeded {args.conversations:,} conversations, one of {args.messages:,} messages, "
            f"in {seeded.seconds:.0f} s"
        )
        with (
            blank_server() as blank_url,
            parley(home, args.answer_chars, args.delta_chars, args.delta_delay) as url,
            sync_playwright() as driver,
        ):
            launched = driver.chromium.launch(
                executable_path=chromium, args=[*CHROMIUM_ARGS, *ISOLATED]
            )
            browser = Browser(launched)
            table = measure(browser, url, blank_url, seeded, args)
            launched.close()
        if browser.escaped:
            raise SystemExit(f"requests left 127.0.0.1: {browser.escaped}")
    print_table(["metric", "target", "blank page", "Parley", "result"], table)


def measure(
    browser: Browser, url: str, blank_url: str, seeded: Seeded, args: argparse.Namespace
) -> list[list[Any]]:
    say("blank page loads")
    blanks = [load_blank(browser, blank_url) for _ in range(args.runs)]
    say("chat page loads")
    loads: list[Load] = []
    page: Page | None = None
    for _ in range(args.runs):
        if page is not None:
            page.context.close()
        load, page = load_chat(browser, url, seeded)
        loads.append(load)
    assert page is not None
    fetched: list[int] = []

    def count(response: Any) -> None:
        if f"/api/conversations/{seeded.long_id}" in response.url and response.ok:
            fetched.append(len(response.json().get("messages", [])))

    page.on("response", count)
    say("long conversation opens")
    opens = [open_long(page, seeded, fetched) for _ in range(args.runs)]
    say("streams")
    streams = [stream_in_app(browser, page) for _ in range(args.streams)]
    say("baselines on Parley's origin")
    page.context.close()

    token = httpx.post(f"{url}/auth/login", json={"email": EMAIL, "password": PASSWORD}).json()[
        "access_token"
    ]
    raw = blank_on_origin(browser, url)
    raw_opens = [raw.evaluate(RAW_OPEN, [token, seeded.long_id]) for _ in range(args.runs)]
    raw_streams = [stream_raw(browser, raw, token, url) for _ in range(args.streams)]
    raw.context.close()

    last = loads[-1]
    fcp = median([x.fcp for x in loads])
    ready = median([x.interactive for x in loads])
    load_long = max((d for x in loads for _, d in x.longtasks), default=0.0)
    main_s = median([s.cpu_s for s in streams])
    longest = max(s.longest_cpu for s in streams)
    over = max(s.over_50 for s in streams)
    raw_main = median([s.cpu_s for s in raw_streams])
    raw_longest = max(s.longest_cpu for s in raw_streams)
    open_ms = median([o["ms"] for o in opens])
    k = f"{args.answer_chars // 1000} KB"
    print(
        f"{args.runs} cold loads, {args.runs} opens, {args.streams} streams of "
        f"{streams[0].chars:,} characters shown ({median([s.ms for s in streams]):,.0f} ms each; "
        f"the baseline's {median([s.ms for s in raw_streams]):,.0f} ms); longest task while "
        f"loading: {load_long:.0f} ms. By the clock while streaming (CPU shared with the "
        f"rest of the machine): main thread busy {median([s.wall_s for s in streams]):.2f} s "
        f"(baseline {median([s.wall_s for s in raw_streams]):.2f} s), longest task "
        f"{_task(max(s.longest_wall for s in streams))} ms "
        f"(baseline {_task(max(s.longest_wall for s in raw_streams))} ms)"
    )
    return [
        ["JS for the chat page, KB compressed", "<= 80", 0.0, last.js, verdict(last.js <= 80)],
        ["  highlight.js + KaTeX (on demand), KB", "-", "-", last.lazy, "-"],
        ["CSS, KB compressed", "<= 20", 0.0, last.css, verdict(last.css <= 20)],
        ["web fonts", "0", 0, last.fonts, verdict(last.fonts == 0)],
        [
            "first contentful paint, ms",
            "<= 300",
            median([b[0] for b in blanks]),
            fcp,
            verdict(fcp <= 300),
        ],
        [
            "sidebar + newest conversation interactive, ms",
            "<= 1000",
            median([b[1] for b in blanks]),
            ready,
            verdict(ready <= 1000),
        ],
        [
            f"stream {k}: longest main-thread task, CPU ms",
            "<= 50",
            raw_longest,
            longest,
            verdict(longest <= 50),
        ],
        [
            f"stream {k}: tasks over 50 ms CPU",
            "0",
            max(s.over_50 for s in raw_streams),
            over,
            verdict(over == 0),
        ],
        [
            f"stream {k}: main-thread CPU time, s",
            "<= 2",
            raw_main,
            main_s,
            verdict(main_s <= 2),
        ],
        [
            "  the app's own (Parley - blank page), s",
            "-",
            "-",
            main_s - raw_main,
            "-",
        ],
        [
            f"{args.messages:,}-message conversation open at its end, ms",
            "<= 1000",
            median([o["ms"] for o in raw_opens]),
            open_ms,
            verdict(open_ms <= 1000),
        ],
        [
            "  messages fetched / rendered",
            "newest page",
            f"{raw_opens[-1]['fetched']} / -",
            f"{opens[-1]['fetched']} / {opens[-1]['rendered']}",
            verdict(opens[-1]["fetched"] <= 200 and opens[-1]["rendered"] <= 200),
        ],
    ]


def _task(ms: float) -> str:
    return f"{ms:.0f}" if ms else "< 50"


if __name__ == "__main__":
    main()
