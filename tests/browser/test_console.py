"""The admin console at /manage, in Chromium against a real ``parley serve``: a global
admin makes a key that the ``openai`` SDK then uses, and revokes it (the SDK gets 401); a
team's admin sees and reaches only their team's keys, in the page and at the API; a member
sees no console at all; every console route is walked as each role. The console's modules
load only when it is opened, so the chat page never fetches them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pyotp
import pytest

from parley.testing.fake_upstream import FakeUpstream
from tests.browser.conftest import PASSWORD, Server, _model, register, serving, unique_email
from tests.browser.test_accessibility import _violations
from tests.polling import eventually

NewPage = Callable[..., Any]
ADMIN_KEY = "pk-admin-browser-console-0123456789"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
SECTIONS = (
    "overview",
    "keys",
    "teams",
    "users",
    "cache",
    "models",
    "deployments",
    "usage",
    "audit",
)


@pytest.fixture(scope="module")
def server(
    browser_fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server of its own, with an admin key to set up roles and teams as a test needs."""
    url = f"{browser_fake.url}/v1"
    models = _model("chat-fast", "openai", "gpt-4o-mini", url) + _model(
        "chat-other", "openai", "gpt-4o-mini", url
    )
    env = {"PARLEY_ADMIN_KEY": ADMIN_KEY}
    with serving(tmp_path_factory.mktemp("console-server"), browser_fake, models, env) as running:
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
    # the header's link when wide, the menu drawer's when narrow: either is on the page
    page.get_by_role("link", name="Console", include_hidden=True).first.wait_for(state="attached")
    return email


def _open_console(page: Any, section: str = "keys") -> None:
    page.get_by_role("link", name="Console").click()
    page.get_by_role("heading", level=1, name="Overview").wait_for()  # where it opens
    if section != "overview":
        console = page.get_by_role("navigation", name="Console")
        console.get_by_role("link", name=section.capitalize()).click()


def _key_row(page: Any, name: str) -> Any:
    return page.get_by_role("row").filter(has_text=name)


def _sdk(server: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def test_an_admin_creates_a_key_the_sdk_uses_then_revokes_it(
    new_page: NewPage, server: Server
) -> None:
    page = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    _as_global_admin(page, server)
    _open_console(page)
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Create key")
    dialog.get_by_label("Name").fill("billing service")
    dialog.get_by_role("checkbox", name="chat-fast").check()
    dialog.get_by_label("Budget (USD)", exact=True).fill("25")
    dialog.get_by_label("Budget period").select_option("weekly")
    dialog.get_by_label("Requests per minute").fill("120")
    dialog.get_by_label("Expires in (days)").fill("30")
    dialog.get_by_role("button", name="Create key").click()
    created = page.get_by_role("dialog", name="Key created")
    secret = created.get_by_role("textbox", name="New key").input_value()
    assert secret.startswith("pk-")
    created.get_by_role("button", name="Copy").click()
    created.get_by_text("Copied to the clipboard.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    created.get_by_role("button", name="Done").click()
    row = _key_row(page, "billing service")
    for shown in ("chat-fast", "$0 of $25.00 weekly", "120 rpm", "Active"):
        row.get_by_text(shown, exact=False).first.wait_for()
    assert secret not in page.content()  # shown once, in the dialog only

    sdk = _sdk(server, secret)
    answer = sdk.chat.completions.create(
        model="chat-fast", messages=[{"role": "user", "content": "hello from the sdk"}]
    )
    assert answer.choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError):  # scoped to chat-fast only
        sdk.chat.completions.create(model="chat-other", messages=[{"role": "user", "content": "x"}])

    row.get_by_role("button", name="Revoke").click()
    confirm = page.get_by_role("dialog", name="Revoke billing service", exact=False)
    confirm.get_by_role("button", name="Revoke").click()
    row.get_by_text("Revoked").wait_for()
    assert row.get_by_role("button", name="Revoke").count() == 0
    with pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="chat-fast", messages=[{"role": "user", "content": "x"}])


def test_rotate_shows_a_new_secret_and_the_old_one_lasts_its_grace(
    new_page: NewPage, server: Server
) -> None:
    page = new_page()
    _as_global_admin(page, server)
    made = _admin(server, "POST", "/admin/keys", json={"name": "rotating"})
    _open_console(page)
    _key_row(page, "rotating").get_by_role("button", name="Rotate").click()
    dialog = page.get_by_role("dialog", name="Rotate rotating", exact=False)
    dialog.get_by_label("Grace period (hours)").fill("1")
    dialog.get_by_role("button", name="Rotate").click()
    fresh = dialog.get_by_role("textbox", name="New key").input_value()
    assert fresh.startswith("pk-")
    assert fresh != made["key"]
    dialog.get_by_role("button", name="Done").click()
    _key_row(page, "rotating").get_by_text("Active (rotating)").wait_for()
    for secret in (made["key"], fresh):  # both work while the grace lasts
        answer = _sdk(server, secret).chat.completions.create(
            model="chat-fast", messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices[0].message.content


def test_a_team_admin_sees_and_reaches_only_their_teams_keys(
    new_page: NewPage, server: Server
) -> None:
    suffix = unique_email().split("@")[0]
    ours, theirs = _team(server, f"Ours {suffix}"), _team(server, f"Theirs {suffix}")
    _admin(server, "POST", "/admin/keys", json={"team_id": ours, "name": "our key"})
    other = _admin(server, "POST", "/admin/keys", json={"team_id": theirs, "name": "their key"})
    page = new_page()
    email = register(page, name="Team Admin")
    _join(server, ours, email, "admin")
    page.reload()
    _open_console(page)
    _key_row(page, "our key").wait_for()
    assert page.get_by_text("their key").count() == 0
    picker = page.get_by_label("Team", exact=True)
    options = picker.locator("option").all_inner_texts()
    assert options == [f"Ours {suffix}"]  # no "All keys", no other team's name
    assert f"Theirs {suffix}" not in page.content()

    # the team admin makes a key for their team in the console
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Create key")
    dialog.get_by_label("Name").fill("made by the team admin")
    dialog.get_by_role("button", name="Create key").click()
    page.get_by_role("dialog", name="Key created").get_by_role("button", name="Done").click()
    _key_row(page, "made by the team admin").get_by_text(f"Ours {suffix}").wait_for()

    # teams: only theirs, with its members
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Teams").click()
    page.get_by_role("cell", name=email).wait_for()
    assert page.get_by_label("Team", exact=True).locator("option").all_inner_texts() == [
        f"Ours {suffix} (1)"
    ]

    # the API refuses every way at the other team, and names nothing of it
    bearer = {"authorization": f"Bearer {_token(server, email)}"}
    for method, path, params in (
        ("GET", "/admin/keys", {"team_id": theirs}),
        ("GET", "/admin/keys", None),
        ("GET", f"/admin/keys/{other['id']}", None),
        ("DELETE", f"/admin/keys/{other['id']}", None),
        ("GET", f"/admin/teams/{theirs}", None),
        ("GET", "/admin/users", None),
        ("GET", "/admin/deployments", None),
    ):
        refused = httpx.request(method, f"{server.url}{path}", headers=bearer, params=params)
        assert refused.status_code in (403, 404), (method, path, refused.text)
        assert "their key" not in refused.text
        assert other["prefix"] not in refused.text
    listed = httpx.get(f"{server.url}/admin/teams", headers=bearer).json()["data"]
    assert [t["id"] for t in listed] == [ours]
    assert _sdk(server, other["key"]).models.list().data  # their key was not touched


def test_a_member_sees_no_console(new_page: NewPage, server: Server) -> None:
    team = _team(server, f"Members {unique_email().split('@')[0]}")
    page = new_page()
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    email = register(page, name="Plain Member")
    _join(server, team, email, "member")
    page.reload()
    page.get_by_role("textbox", name="Message").wait_for()
    assert page.get_by_role("link", name="Console").count() == 0
    for path in ("/manage", "/manage/keys", "/manage/users"):
        page.goto(path)
        page.get_by_role("heading", level=1, name="Not allowed").wait_for()
    assert not [url for url in fetched if "/app/manage/" in url]  # never even loaded
    bearer = {"authorization": f"Bearer {_token(server, email)}"}
    for path in ("/admin/keys", f"/admin/keys?team_id={team}", "/admin/teams"):
        assert httpx.get(f"{server.url}{path}", headers=bearer).status_code == 403


def test_the_chat_page_does_not_load_the_console(new_page: NewPage, server: Server) -> None:
    """Lazy: an admin's chat page fetches none of the console's files; opening the
    console does."""
    page = new_page()
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    _as_global_admin(page, server)
    page.get_by_role("combobox", name="Model").wait_for()
    assert not [url for url in fetched if "/app/manage/" in url]
    _open_console(page)
    assert [url for url in fetched if url.endswith("/app/manage/Console.js")]


HEADINGS = {
    "admin": {s: s.capitalize() for s in SECTIONS},
    "team admin": {
        "overview": "Overview",
        "keys": "Keys",
        "teams": "Teams",
        "users": "Not allowed",
        "cache": "Cache",
        "models": "Not allowed",
        "deployments": "Not allowed",
        "usage": "Usage",
        "audit": "Audit",
    },
    "member": dict.fromkeys(SECTIONS, "Not allowed"),
}


@pytest.mark.parametrize("role", sorted(HEADINGS))
def test_every_console_route_as_each_role(new_page: NewPage, server: Server, role: str) -> None:
    team = _team(server, f"Walk {unique_email().split('@')[0]}")
    page = new_page()
    email = register(page, name=f"The {role}")
    if role == "admin":
        _admin(server, "PATCH", f"/admin/users/{_user_id(server, email)}", json={"is_admin": True})
    else:
        _join(server, team, email, "owner" if role == "team admin" else "member")
    page.reload()
    page.get_by_role("textbox", name="Message").wait_for()
    links = page.get_by_role("link", name="Console").count()
    assert links == (0 if role == "member" else 1)
    page.goto("/manage")
    expected = "Not allowed" if role == "member" else "Overview"
    page.get_by_role("heading", level=1, name=expected).wait_for()
    if role != "member":
        assert page.url.endswith("/manage/overview")
        nav = page.get_by_role("navigation", name="Console")
        shown = [n.lower() for n in nav.get_by_role("link").all_inner_texts()]
        allowed = [s for s, h in HEADINGS[role].items() if h != "Not allowed"]
        assert shown == [*allowed, "back to the chat"]
    for section, heading in HEADINGS[role].items():
        page.goto(f"/manage/{section}")
        page.get_by_role("heading", level=1, name=heading).wait_for()
        assert page.get_by_role("alert").count() == 0 or heading == "Not allowed", section
    page.goto("/manage/nowhere")
    page.get_by_role(
        "heading", level=1, name="Not allowed" if role == "member" else "No such page"
    ).wait_for()


def test_an_admin_manages_a_team_and_a_user(new_page: NewPage, server: Server) -> None:
    """Teams and users: create a team, change a member's role, invite, set the team's
    budget; disable a user and reset their MFA (the API's audited reset)."""
    page = new_page()
    _as_global_admin(page, server)
    suffix = unique_email().split("@")[0]
    other = new_page()
    member_email = register(other, name="Mia Member")
    _open_console(page, "teams")
    page.get_by_label("New team").fill(f"Crew {suffix}")
    page.get_by_role("button", name="Create team").click()
    page.get_by_role("heading", name="Members").wait_for()
    team_id = next(
        t["id"]
        for t in _admin(server, "GET", "/admin/teams")["data"]
        if t["name"] == f"Crew {suffix}"
    )
    _join(server, team_id, member_email, "member")
    page.reload()
    page.get_by_label("Team", exact=True).select_option(label=f"Crew {suffix} (1)")
    page.get_by_label("Role of Mia Member").select_option("admin")
    page.get_by_label("Role of Mia Member").wait_for()

    def role() -> str:
        members = _admin(server, "GET", f"/admin/teams/{team_id}")["members"]
        return str(next(m["role"] for m in members if m["email"] == member_email))

    eventually(lambda: role() == "admin")
    page.get_by_label("Email", exact=True).fill(f"new-{suffix}@example.com")
    page.get_by_role("button", name="Invite").click()
    page.get_by_text(f"Invited new-{suffix}@example.com as member").wait_for()
    page.get_by_label("Budget (USD)", exact=True).fill("40")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved.").wait_for()
    assert _admin(server, "GET", f"/admin/teams/{team_id}")["budget_usd"] == 40

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Users").click()
    row = page.get_by_role("row").filter(has_text=member_email)
    row.get_by_role("button", name="Disable").click()
    page.get_by_role("dialog").get_by_role("button", name="Disable").click()
    row.get_by_role("button", name="Enable").wait_for()
    users = _admin(server, "GET", "/admin/users", params={"limit": 1000})["data"]
    assert next(u for u in users if u["email"] == member_email)["disabled"] is True


# What each page shows once its data is in.
LOADED = {
    "overview": ("heading", {"name": "By model group"}),
    "usage": ("img", {"name": re.compile(r"^Requests by day")}),
    "audit": ("table", {"name": "Audit log"}),
    "keys": ("table", {"name": re.compile(r"^API keys")}),
    "teams": ("heading", {"name": "Members"}),
    "users": ("table", {"name": "Users"}),
    "cache": ("button", {"name": "Invalidate"}),
    "models": ("button", {"name": "Add model"}),
    "deployments": ("table", {"name": "Deployments"}),
}


@pytest.mark.parametrize(
    ("width", "dark"), [(1280, False), (1280, True), (375, False)], ids=["light", "dark", "375px"]
)
def test_console_pages_are_accessible_and_fit(
    new_page: NewPage, server: Server, width: int, dark: bool
) -> None:
    """axe-core finds nothing serious on any console page or the key dialog, in light and
    dark; at 375 px nothing needs sideways scrolling."""
    page = new_page(width=width, dark=dark)
    email = _as_global_admin(page, server)
    team = _team(server, f"Axe {unique_email().split('@')[0]}")
    _join(server, team, email, "owner")
    _admin(server, "POST", "/admin/keys", json={"team_id": team, "name": "axe key", "rpm": 60})
    if width < 720:  # the header stays one line: the way in is in the menu's drawer
        page.get_by_role("button", name="Menu").click()
        page.get_by_role("navigation", name="Conversations").get_by_role(
            "link", name="Console"
        ).click()
        page.get_by_role("heading", level=1, name="Overview").wait_for()
        top = page.get_by_role("banner").bounding_box()
        assert top is not None
        assert top["height"] < 60  # one line
    found: dict[str, list[str]] = {}
    for section in SECTIONS:
        page.goto(f"/manage/{section}")
        page.get_by_role("heading", level=1, name=section.capitalize()).wait_for()
        role, options = LOADED[section]
        page.get_by_role(role, **options).first.wait_for()
        found[section] = _violations(page)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{section} scrolls sideways by {overflow} px at {width} px"
    page.goto("/manage/keys")
    page.get_by_role("button", name="Create key").click()
    page.get_by_role("dialog", name="Create key").wait_for()
    found["create key"] = _violations(page)
    assert {name: v for name, v in found.items() if v} == {}


def test_keys_are_made_and_revoked_from_the_keyboard(new_page: NewPage, server: Server) -> None:
    """Enter opens the dialog with focus inside it, Enter in a field submits, Escape
    closes; the confirmation's button is reached by Tab."""
    page = new_page()
    _as_global_admin(page, server)
    page.goto("/manage/keys")
    page.get_by_role("button", name="Create key").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Create key")
    dialog.wait_for()
    assert page.evaluate("document.activeElement.closest('dialog') !== null")
    dialog.get_by_label("Name").focus()
    page.keyboard.type("typed key")
    page.keyboard.press("Enter")
    page.get_by_role("dialog", name="Key created").wait_for()
    page.keyboard.press("Escape")
    page.get_by_role("dialog").wait_for(state="detached")
    row = _key_row(page, "typed key")
    row.get_by_role("button", name="Revoke").focus()
    page.keyboard.press("Enter")
    confirm = page.get_by_role("dialog", name="Revoke typed key", exact=False)
    confirm.wait_for()
    page.keyboard.press("Tab")  # from Cancel (focused first) to Revoke
    assert page.evaluate("document.activeElement.textContent") == "Revoke"
    page.keyboard.press("Enter")
    row.get_by_text("Revoked").wait_for()


def test_an_admin_resets_a_locked_out_users_mfa(new_page: NewPage, server: Server) -> None:
    page = new_page()
    _as_global_admin(page, server)
    email = unique_email()
    registered = httpx.post(
        f"{server.url}/auth/register",
        json={"email": email, "password": PASSWORD, "name": "Locked Out"},
    )
    assert registered.status_code == 201, registered.text
    bearer = {"authorization": f"Bearer {_token(server, email)}"}
    secret = httpx.post(f"{server.url}/auth/mfa/enroll", headers=bearer).json()["secret"]
    code = {"code": pyotp.TOTP(secret).now()}
    assert httpx.post(f"{server.url}/auth/mfa/verify", headers=bearer, json=code).is_success
    page.goto("/manage/users")
    row = page.get_by_role("row").filter(has_text=email)
    row.get_by_text("On", exact=True).wait_for()
    row.get_by_role("button", name="Reset MFA").click()
    page.get_by_role("dialog").get_by_role("button", name="Reset MFA").click()
    row.get_by_text("Off", exact=True).wait_for()
    assert row.get_by_role("button", name="Reset MFA").count() == 0
    # the password alone signs them in now
    login = httpx.post(f"{server.url}/auth/login", json={"email": email, "password": PASSWORD})
    assert "access_token" in login.json(), login.text
