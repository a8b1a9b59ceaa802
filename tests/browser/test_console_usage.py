"""The console's usage pages in Chromium against a real ``parley serve``: the usage chart
and table show the traffic just sent through ``/v1`` (and export it as CSV); a team's
admin sees only their team's usage, in the page and at the API; the overview shows the
figures of traffic just sent and redraws from the API (on its interval and on a range
change) without reloading; the cache page shows hit rates; the audit log lists an action
just done, filters and pages."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import FakeUpstream
from tests.browser.conftest import PASSWORD, Server, _model, register, serving, unique_email
from tests.polling import eventually

NewPage = Callable[..., Any]
ADMIN_KEY = "pk-admin-browser-usage-0123456789ab"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def server(
    browser_fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server of its own: ``chat-fast`` with the exact cache on, ``chat-other``."""
    url = f"{browser_fake.url}/v1"
    cached = "    cache:\n      enabled: true\n"
    models = _model("chat-fast", "openai", "gpt-4o-mini", url, cached) + _model(
        "chat-other", "openai", "gpt-4o-mini", url
    )
    env = {"PARLEY_ADMIN_KEY": ADMIN_KEY, "PARLEY_USAGE_FLUSH_SECONDS": "0.05"}
    home = tmp_path_factory.mktemp("console-usage-server")
    with serving(home, browser_fake, models, env) as running:
        yield running


def _admin(server: Server, method: str, path: str, **kwargs: Any) -> Any:
    answer = httpx.request(method, f"{server.url}{path}", headers=ADMIN, timeout=20, **kwargs)
    assert answer.status_code < 300, answer.text
    return answer.json()


def _user_id(server: Server, email: str) -> str:
    users = _admin(server, "GET", "/admin/users", params={"limit": 1000})["data"]
    return str(next(u["id"] for u in users if u["email"] == email))


def _token(server: Server, email: str) -> str:
    answer = httpx.post(f"{server.url}/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _team(server: Server, name: str) -> str:
    return str(_admin(server, "POST", "/admin/teams", json={"name": name})["id"])


def _join(server: Server, team_id: str, email: str, role: str) -> None:
    user_id = _user_id(server, email)
    _admin(server, "PUT", f"/admin/teams/{team_id}/members/{user_id}", json={"role": role})


def _as_global_admin(page: Any, server: Server) -> str:
    email = register(page, name="Grace Hopper")
    _admin(server, "PATCH", f"/admin/users/{_user_id(server, email)}", json={"is_admin": True})
    page.reload()
    page.get_by_role("link", name="Console", include_hidden=True).first.wait_for(state="attached")
    return email


def _chat(server: Server, key: str, text: str = "hello", model: str = "chat-fast") -> None:
    answer = httpx.post(
        f"{server.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": text}]},
        timeout=20,
    )
    assert answer.status_code == 200, answer.text


def _recorded(server: Server, team_id: str, requests: int) -> None:
    """Wait until the usage writer has stored the team's requests (it batches)."""

    def stored() -> bool:
        totals = _admin(server, "GET", "/admin/usage", params={"team_id": team_id})["totals"]
        return bool(totals["requests"] == requests)

    eventually(stored)


def _suffix() -> str:
    return unique_email().split("@")[0]


def _figure(page: Any, name: str) -> Any:
    """The value of one of the overview's figures (a <dt>/<dd> pair)."""
    return page.locator(".figure").filter(has=page.get_by_text(name, exact=True)).locator("dd")


def test_the_usage_page_shows_the_traffic_just_sent(new_page: NewPage, server: Server) -> None:
    suffix = _suffix()
    team = _team(server, f"Traffic {suffix}")
    key = _admin(server, "POST", "/admin/keys", json={"team_id": team, "name": f"svc {suffix}"})
    quiet = _admin(server, "POST", "/admin/keys", json={"team_id": team, "name": f"quiet {suffix}"})
    for n in range(4):
        _chat(server, key["key"], f"question {n}")
    _chat(server, quiet["key"], model="chat-other")
    _recorded(server, team, 5)

    page = new_page()
    _as_global_admin(page, server)
    page.goto("/manage/usage")
    page.get_by_role("heading", level=1, name="Usage").wait_for()
    page.get_by_label("Team", exact=True).select_option(label=f"Traffic {suffix}")
    page.get_by_role("status").filter(has_text="5 requests").wait_for()
    page.get_by_label("Group by").select_option(label="Key")
    table = page.get_by_role("table", name="Usage by key")
    row = table.get_by_role("row").filter(has_text=f"svc {suffix}")
    row.get_by_role("cell").nth(1).filter(has_text=re.compile(r"^4$")).wait_for()
    quiet_row = table.get_by_role("row").filter(has_text=f"quiet {suffix}")
    quiet_row.get_by_role("cell").nth(1).filter(has_text=re.compile(r"^1$")).wait_for()
    chart = page.get_by_role("img", name=re.compile(r"^Requests by key"))
    assert f"the highest 4 (svc {suffix}" in str(chart.get_attribute("aria-label"))
    assert chart.locator("rect").count() == 2  # one bar per key

    page.get_by_label("Group by").select_option(label="Model group")
    by_group = page.get_by_role("table", name="Usage by model group")
    fast = by_group.get_by_role("row").filter(has_text="chat-fast")
    fast.get_by_role("cell").nth(1).filter(has_text=re.compile(r"^4$")).wait_for()

    with page.expect_download() as caught:
        page.get_by_role("button", name="Download CSV").click()
    download = caught.value
    assert download.suggested_filename.startswith("parley-usage-by-model_group-")
    path = download.path()
    assert path is not None
    with open(path, encoding="utf-8") as exported:
        rows = list(csv.DictReader(io.StringIO(exported.read())))
    assert {r["bucket"]: int(r["requests"]) for r in rows} == {"chat-fast": 4, "chat-other": 1}

    page.get_by_label("Group by").select_option(label="Day")
    chart = page.get_by_role("img", name=re.compile(r"^Requests by day"))
    chart.wait_for()
    assert chart.locator("rect").count() == 1  # seven days, one with traffic
    assert "the highest 5" in str(chart.get_attribute("aria-label"))


def test_a_team_admin_cannot_see_another_teams_usage(new_page: NewPage, server: Server) -> None:
    suffix = _suffix()
    ours, theirs = _team(server, f"Ours {suffix}"), _team(server, f"Theirs {suffix}")
    our_key = _admin(server, "POST", "/admin/keys", json={"team_id": ours, "name": "our svc"})
    their_key = _admin(server, "POST", "/admin/keys", json={"team_id": theirs, "name": "their svc"})
    for _ in range(2):
        _chat(server, our_key["key"], f"ours {suffix}")
    for n in range(3):
        _chat(server, their_key["key"], f"theirs {suffix} {n}")
    _recorded(server, ours, 2)
    _recorded(server, theirs, 3)

    page = new_page()
    email = register(page, name="Team Admin")
    _join(server, ours, email, "admin")
    page.reload()
    page.get_by_role("textbox", name="Message").wait_for()  # its session refreshed first
    page.goto("/manage/usage")
    page.get_by_role("status").filter(has_text="2 requests").wait_for()
    assert page.get_by_label("Team", exact=True).count() == 0  # one team: no picker
    for grouping, shown in (("Team", f"Ours {suffix}"), ("Key", "our svc")):
        page.get_by_label("Group by").select_option(label=grouping)
        table = page.get_by_role("table", name=f"Usage by {grouping.lower()}")
        table.get_by_role("row").filter(has_text=shown).wait_for()
        assert table.get_by_role("row").count() == 2  # the header and our one row
        content = page.content()
        assert f"Theirs {suffix}" not in content
        assert their_key["id"] not in content
        assert theirs not in content
    page.goto("/manage/overview")
    _figure(page, "Requests").filter(has_text=re.compile(r"^2$")).wait_for()
    assert page.get_by_text("breaker").count() == 0  # deployments are for global admins
    page.goto("/manage/cache")
    page.get_by_role("heading", name="Hit rates").wait_for()
    page.get_by_role("table", name="Cache hit rates").get_by_role("row").filter(
        has_text="Every group"
    ).get_by_role("cell").nth(1).filter(has_text=re.compile(r"^2$")).wait_for()

    bearer = {"authorization": f"Bearer {_token(server, email)}"}
    for path in ("/admin/usage", "/admin/usage.csv", "/admin/overview", "/admin/cache/hit-rates"):
        refused = httpx.get(f"{server.url}{path}", headers=bearer, params={"team_id": theirs})
        assert refused.status_code == 403, (path, refused.text)
        probe = httpx.get(f"{server.url}{path}", headers=bearer, params={"key_id": their_key["id"]})
        assert probe.status_code == 200, (path, probe.text)
        assert their_key["id"] not in probe.text, path  # their key as a filter: nothing
    mine = httpx.get(f"{server.url}/admin/usage", headers=bearer, params={"group_by": "team"})
    assert [r["bucket"] for r in mine.json()["data"]] == [ours]


def test_the_overview_shows_traffic_just_sent_and_redraws(
    new_page: NewPage, server: Server
) -> None:
    suffix = _suffix()
    team = _team(server, f"Watched {suffix}")
    key = _admin(server, "POST", "/admin/keys", json={"team_id": team, "name": "watched"})
    for text in ("same question", "same question", f"another {suffix}"):
        _chat(server, key["key"], f"{text} {suffix}")
    _recorded(server, team, 3)

    page = new_page()
    _as_global_admin(page, server)
    page.goto("/manage/overview")
    page.get_by_role("heading", level=1, name="Overview").wait_for()
    page.get_by_text("Every deployment's breaker is closed.").wait_for()
    page.get_by_label("Team", exact=True).select_option(label=f"Watched {suffix}")
    _figure(page, "Requests").filter(has_text=re.compile(r"^3$")).wait_for()
    assert _figure(page, "Cache hit rate").inner_text() == "33 %"  # miss, hit, miss
    assert _figure(page, "Latency p50").inner_text().endswith("ms")
    row = page.get_by_role("table", name="Model groups").get_by_role("row")
    row.filter(has_text="chat-fast").get_by_text("33 %").wait_for()
    chart = page.get_by_role("img", name=re.compile(r"^Requests per hour"))
    assert "the highest 3" in str(chart.get_attribute("aria-label"))

    page.evaluate("window.notReloaded = true")
    for n in range(2):
        _chat(server, key["key"], f"more {suffix} {n}")
    _recorded(server, team, 5)
    # the page asks the API again by itself (every 15 s while visible)
    _figure(page, "Requests").filter(has_text=re.compile(r"^5$")).wait_for(timeout=45_000)
    page.get_by_role("button", name="Last week").click()
    assert page.get_by_role("button", name="Last week").get_attribute("aria-pressed") == "true"
    page.get_by_role("img", name=re.compile(r"^Requests per day")).wait_for()
    _figure(page, "Requests").filter(has_text=re.compile(r"^5$")).wait_for()
    page.get_by_label("Chart").select_option(label="Latency p99")
    page.get_by_role("img", name=re.compile(r"^Latency p99 per day")).wait_for()
    assert page.evaluate("window.notReloaded") is True

    page.goto("/manage/cache")
    page.get_by_label("Team", exact=True).select_option(label=f"Watched {suffix}")
    fast = page.get_by_role("table", name="Cache hit rates").get_by_role("row")
    fast.filter(has_text="chat-fast").get_by_text("1 (20 %)").wait_for()  # 1 hit of 5


def test_the_audit_log_lists_what_was_just_done_filters_and_pages(
    new_page: NewPage, server: Server
) -> None:
    page = new_page()
    email = _as_global_admin(page, server)
    name = f"audited {_suffix()}"
    page.goto("/manage/keys")
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Create key")
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_role("button", name="Create key").click()
    page.get_by_role("dialog", name="Key created").get_by_role("button", name="Done").click()
    made = next(k for k in _admin(server, "GET", "/admin/keys")["data"] if k.get("name") == name)

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Audit").click()
    page.get_by_role("heading", level=1, name="Audit log").wait_for()
    table = page.get_by_role("table", name="Audit log")
    first = table.get_by_role("row").nth(1)  # newest first, under the header
    first.get_by_text("key.create").wait_for()
    first.get_by_text(made["id"]).wait_for()
    first.get_by_text(email).wait_for()  # the actor, by the email the admin knows

    page.get_by_label("Action").fill("team.*")
    page.get_by_role("button", name="Filter").click()
    table.get_by_text("key.create").first.wait_for(state="detached")
    rows = table.get_by_role("row")
    actions = {rows.nth(i).get_by_role("cell").nth(2).inner_text() for i in range(1, rows.count())}
    assert actions, "this module's tests made teams"
    assert all(a.startswith("team.") for a in actions), actions

    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Target").fill(made["id"])
    page.get_by_role("button", name="Filter").click()
    eventually(lambda: table.get_by_role("row").count() == 2)
    table.get_by_text("key.create").wait_for()

    # pages of 50: 52 more keys made by this admin, then newer and older pages
    bearer = {"authorization": f"Bearer {_token(server, email)}"}
    for n in range(52):
        made_one = httpx.post(
            f"{server.url}/admin/keys", headers=bearer, json={"name": f"bulk {n}"}, timeout=20
        )
        assert made_one.status_code == 201, made_one.text
    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Actor").fill(email)
    page.get_by_label("Action").fill("key.create")
    page.get_by_role("button", name="Filter").click()
    eventually(lambda: table.get_by_role("row").count() == 51)
    pages = page.get_by_role("navigation", name="Audit log pages")
    assert pages.get_by_role("button", name="Newer").is_disabled()
    pages.get_by_role("button", name="Older").click()
    eventually(lambda: table.get_by_role("row").count() == 4)  # 53 in all: 3 left
    table.get_by_text(made["id"]).wait_for()  # the oldest: the one made in the console
    assert pages.get_by_role("button", name="Older").is_disabled()
    pages.get_by_role("button", name="Newer").click()
    eventually(lambda: table.get_by_role("row").count() == 51)


def test_the_audit_log_shows_utc_times_as_its_day_filters_are(
    new_page: NewPage, server: Server
) -> None:
    """In a zone 14 hours ahead of UTC a local time would often fall on another day than
    the UTC day the From/To filters use; the log says each time in UTC."""
    page = new_page(timezone="Pacific/Kiritimati")
    email = _as_global_admin(page, server)
    bearer = {"authorization": f"Bearer {_token(server, email)}"}
    made = httpx.post(
        f"{server.url}/admin/keys", headers=bearer, json={"name": "utc check"}, timeout=20
    )
    assert made.status_code == 201, made.text
    entry = next(
        e
        for e in _admin(server, "GET", "/admin/audit", params={"target": made.json()["id"]})["data"]
        if e["action"] == "key.create"
    )
    at = dt.datetime.fromtimestamp(entry["time_ms"] / 1000, dt.UTC)
    page.goto("/manage/audit")
    page.get_by_label("Target").fill(made.json()["id"])
    page.get_by_role("button", name="Filter").click()
    table = page.get_by_role("table", name="Audit log")
    eventually(lambda: table.get_by_role("row").count() == 2)
    shown = table.get_by_role("row").nth(1).get_by_role("cell").first.inner_text()
    hour = f"{at.hour % 12 or 12}:{at.minute:02d} {'AM' if at.hour < 12 else 'PM'}"
    assert shown.endswith(f"{hour} UTC"), (shown, hour)
    assert f"{at:%b} {at.day}, {at.year}" in shown, shown
    # the filter's day is the same UTC day
    day = f"{at:%Y-%m-%d}"
    page.get_by_label("From (UTC day)").fill(day)
    page.get_by_label("To (UTC day)").fill(day)
    page.get_by_role("button", name="Filter").click()
    table.get_by_role("row").nth(1).wait_for()
    eventually(lambda: table.get_by_role("row").count() == 2)


@pytest.mark.parametrize("section", ["overview", "usage", "audit"])
def test_a_member_sees_none_of_the_usage_pages(
    new_page: NewPage, server: Server, section: str
) -> None:
    team = _team(server, f"Members {_suffix()}")
    page = new_page()
    email = register(page, name="Plain Member")
    _join(server, team, email, "member")
    page.reload()
    page.get_by_role("textbox", name="Message").wait_for()  # its session refreshed first
    page.goto(f"/manage/{section}")
    page.get_by_role("heading", level=1, name="Not allowed").wait_for()
    bearer = {"authorization": f"Bearer {_token(server, email)}"}
    path = {"overview": "/admin/overview", "usage": "/admin/usage", "audit": "/admin/audit"}
    for params in (None, {"team_id": team}):
        refused = httpx.get(f"{server.url}{path[section]}", headers=bearer, params=params)
        assert refused.status_code == 403, refused.text
