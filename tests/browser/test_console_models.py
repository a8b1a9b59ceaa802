"""The console's Models page, in Chromium against a real ``parley serve``: a global admin
adds a model group pointing at the fake upstream, with a secret typed into the form, and
chats with it at once (no restart; the secret never shown again); the model file's groups
are read-only; the API's validation errors appear beside the field they name; a stored
group is edited, a deployment disabled, a revision rolled back, the group deleted and
restored; a
team's admin sees no Models page, and the API refuses them too."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from parley.config.vault import new_key
from parley.testing.fake_upstream import FakeUpstream
from tests.browser.conftest import Server, _model, register, serving
from tests.browser.test_accessibility import _violations
from tests.browser.test_console import (
    ADMIN_KEY,
    _admin,
    _as_global_admin,
    _join,
    _team,
    _token,
)
from tests.polling import eventually

NewPage = Callable[..., Any]


@pytest.fixture(scope="module")
def server(
    browser_fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server of its own: one group from the model file (``chat-file``), an admin key,
    and a secrets key, so a secret typed in the console can be stored (encrypted)."""
    models = _model("chat-file", "openai", "gpt-4o-mini", f"{browser_fake.url}/v1")
    env = {"PARLEY_ADMIN_KEY": ADMIN_KEY, "PARLEY_SECRETS_KEY": new_key()}
    with serving(tmp_path_factory.mktemp("models-server"), browser_fake, models, env) as running:
        yield running


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _group_section(page: Any, name: str) -> Any:
    return page.get_by_role("region", name=name, exact=True)


def _stored(server: Server, name: str, **extra: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "deployments": [
            {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "api_base": f"{server.fake.url}/v1",
                "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
            }
        ],
        **extra,
    }
    return dict(_admin(server, "POST", "/admin/models", json=body))


def test_an_admin_creates_a_model_group_in_the_console_and_chats_with_it_at_once(
    new_page: NewPage, server: Server
) -> None:
    name = _name("console-made")
    secret = f"sk-console-{uuid.uuid4().hex}"
    page = new_page()
    _as_global_admin(page, server)
    page.get_by_role("link", name="Console").click()
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Models").click()
    page.get_by_role("heading", level=1, name="Models").wait_for()
    page.get_by_role("button", name="Add model").click()
    dialog = page.get_by_role("dialog", name="Add model")
    dialog.get_by_label("Group name").fill(name)
    dialog.get_by_label("Provider").select_option("openai")
    dialog.get_by_label("Model", exact=True).fill("gpt-4o-mini")
    dialog.get_by_label("API base").fill(f"{server.fake.url}/v1")
    dialog.get_by_label("API key from").select_option("secret")
    dialog.get_by_label("API key", exact=True).fill(secret)
    dialog.get_by_label("Input price (USD / 1M tokens)").fill("0.5")
    dialog.get_by_role("button", name="Test connection").click()
    dialog.get_by_text("Connected: answered in").wait_for()  # probed before it is saved
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="detached")

    group = _group_section(page, name)
    group.get_by_text("stored · revision 1").wait_for()
    row = group.get_by_role("row").filter(has_text=f"{name}/openai/gpt-4o-mini")
    row.get_by_text("in $0.5").wait_for()
    row.get_by_role("button", name="Test connection").click()
    row.get_by_text("Connected: answered in").wait_for()
    assert secret not in page.content()  # never shown again...
    group.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("dialog", name=f"Edit {name}")
    key_box = edit.get_by_label("API key", exact=True)
    assert key_box.input_value() == ""
    assert key_box.get_attribute("placeholder") == f"stored: …{secret[-4:]}"  # ...but its tail
    edit.get_by_role("button", name="Cancel").click()
    listed = httpx.get(
        f"{server.url}/admin/models", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert secret not in listed.text

    # the chat, without a reload or a restart: the picker has the group, and it answers
    page.get_by_role("navigation", name="Console").get_by_role(
        "link", name="Back to the chat"
    ).click()
    picker = page.get_by_role("combobox", name="Model")
    picker.select_option(name)
    box = page.get_by_role("textbox", name="Message")
    box.fill("hello, new group")
    box.press("Enter")
    answer = page.get_by_role("article", name="Assistant").last
    answer.get_by_text("You said: hello, new group", exact=False).wait_for()
    page.locator("article[aria-busy='true']").wait_for(state="detached")
    calls = [c for c in server.fake.calls if c.headers.get("Authorization") == f"Bearer {secret}"]
    chats = [c for c in calls if c.family == "openai" and c.path.endswith("/chat/completions")]
    assert chats, "the answer came from somewhere else than the new group's deployment"
    assert chats[-1].body["stream"] is True  # streamed to the page
    assert "hello, new group" in str(chats[-1].body["messages"])
    assert secret not in server.log.read_text()  # nor logged


def test_a_file_group_is_read_only(new_page: NewPage, server: Server) -> None:
    page = new_page()
    _as_global_admin(page, server)
    page.goto("/manage/models")
    group = _group_section(page, "chat-file")
    group.get_by_text("from parley.yaml").wait_for()
    group.get_by_text("Change it in parley.yaml").wait_for()
    for button in ("Edit", "Delete", "Revisions", "Disable", "Disable group"):
        assert group.get_by_role("button", name=button, exact=True).count() == 0, button
    # its health and its connection test are there all the same
    row = group.get_by_role("row").filter(has_text="chat-file/openai/gpt-4o-mini")
    row.get_by_text("Closed").wait_for()
    row.get_by_role("button", name="Test connection").click()
    row.get_by_text("Connected: answered in").wait_for()


def test_an_invalid_form_shows_the_api_error_beside_its_field(
    new_page: NewPage, server: Server
) -> None:
    name = _name("invalid")
    page = new_page()
    _as_global_admin(page, server)
    page.goto("/manage/models")
    page.get_by_role("button", name="Add model").click()
    dialog = page.get_by_role("dialog", name="Add model")
    dialog.get_by_label("Group name").fill(name)
    dialog.get_by_label("Model", exact=True).fill("gpt-4o-mini")
    dialog.get_by_label("API base").fill("not a url")
    dialog.get_by_label("Variable name").fill("PARLEY_TEST_FAKE_KEY")
    dialog.get_by_role("button", name="Save").click()
    api_base = dialog.get_by_label("API base")
    dialog.get_by_role("alert").get_by_text("Not saved").wait_for()
    assert api_base.get_attribute("aria-invalid") == "true"
    # the API's words, under that field and read with it
    error_id = api_base.get_attribute("aria-describedby").split()[-1]
    said = page.locator(f"[id='{error_id}']").inner_text()
    assert said == "must be an http(s) URL, got 'not a url'"
    assert page.evaluate("document.activeElement.id") == api_base.get_attribute("id")
    assert dialog.get_by_label("Group name").get_attribute("aria-invalid") is None

    # fixed, it saves; a name with a space is refused beside the name
    api_base.fill(f"{server.fake.url}/v1")
    dialog.get_by_label("Group name").fill("has a space")
    dialog.get_by_role("button", name="Save").click()
    named = dialog.get_by_label("Group name")
    eventually(lambda: named.get_attribute("aria-invalid") == "true")
    assert api_base.get_attribute("aria-invalid") is None
    stored = [g["name"] for g in _admin(server, "GET", "/admin/models")["data"]]
    assert name not in stored
    assert "has a space" not in stored


def test_an_admin_edits_disables_rolls_back_and_deletes_a_group(
    new_page: NewPage, server: Server
) -> None:
    name = _name("managed")
    _stored(server, name)
    page = new_page()
    _as_global_admin(page, server)
    page.goto("/manage/models")
    group = _group_section(page, name)
    group.get_by_text("stored · revision 1").wait_for()

    group.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("dialog", name=f"Edit {name}")
    assert edit.get_by_label("Variable name").input_value() == "PARLEY_TEST_FAKE_KEY"
    edit.get_by_label("Strategy").select_option("latency")
    edit.get_by_label("Requests per minute").fill("90")
    edit.get_by_role("checkbox", name="chat-file").check()
    edit.get_by_role("button", name="Save").click()
    group.get_by_text("stored · revision 2").wait_for()
    for shown in ("latency", "90 rpm", "chat-file"):
        group.get_by_text(shown, exact=True).wait_for()
    document = _admin(server, "GET", f"/admin/models/{name}")["document"]
    assert document["strategy"] == "latency"
    assert document["fallbacks"] == ["chat-file"]
    assert document["limits"] == {"rpm": 90}
    assert document["deployments"][0]["api_key"] == "os.environ/PARLEY_TEST_FAKE_KEY"

    row = group.get_by_role("row").filter(has_text=f"{name}/openai/gpt-4o-mini")
    row.get_by_role("button", name="Disable").click()
    row.get_by_text("Disabled").wait_for()
    assert _admin(server, "GET", f"/admin/models/{name}")["deployments"][0]["enabled"] is False
    row.get_by_role("button", name="Enable").click()
    row.get_by_text("Enabled").wait_for()
    group.get_by_role("button", name="Disable group").click()
    group.get_by_text("disabled", exact=True).wait_for()
    assert _admin(server, "GET", f"/admin/models/{name}")["enabled"] is False
    group.get_by_role("button", name="Enable group").click()
    group.get_by_role("button", name="Disable group").wait_for()

    group.get_by_role("button", name="Revisions").click()
    revisions = page.get_by_role("dialog", name=f"Revisions of {name}")
    revisions.get_by_role("row").filter(has_text="6 (current)").wait_for()
    first = revisions.get_by_role("row").filter(has_text="created")
    first.get_by_text("the admin key").wait_for()  # who: _stored used the admin key
    edited = revisions.get_by_role("row").filter(has_text="edited")
    edited.get_by_text("you").wait_for()
    first.get_by_role("button", name="Roll back").click()
    revisions.get_by_role("row").filter(has_text="7 (current)").wait_for()
    revisions.get_by_role("button", name="Close").click()
    group.get_by_text("stored · revision 7").wait_for()
    group.get_by_text("ordered", exact=True).wait_for()
    assert "fallbacks" not in _admin(server, "GET", f"/admin/models/{name}")["document"]

    group.get_by_role("button", name="Delete").click()
    confirm = page.get_by_role("dialog", name=f"Delete {name}")
    confirm.get_by_role("button", name="Delete").click()
    group.wait_for(state="detached")
    gone = httpx.get(
        f"{server.url}/admin/models/{name}", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert gone.status_code == 404

    # listed under Deleted groups, and Restore brings back revision 7 as revision 9
    deleted = page.get_by_role("region", name="Deleted groups")
    row = deleted.get_by_role("row").filter(has_text=name)
    row.get_by_text("you").wait_for()
    row.get_by_role("button", name=f"Restore {name}").click()
    row.wait_for(state="detached")
    restored = _group_section(page, name)
    restored.get_by_text("stored · revision 9").wait_for()
    restored.get_by_text("ordered", exact=True).wait_for()
    assert _admin(server, "GET", f"/admin/models/{name}")["revision"] == 9
    listed = _admin(server, "GET", "/admin/models?deleted=true")["data"]
    assert name not in [d["name"] for d in listed]


def test_a_team_admin_has_no_models_page(new_page: NewPage, server: Server) -> None:
    team = _team(server, _name("Team"))
    page = new_page()
    email = register(page, name="Team Admin")
    _join(server, team, email, "admin")
    page.reload()
    page.get_by_role("link", name="Console").click()
    page.get_by_role("heading", level=1, name="Overview").wait_for()
    nav = page.get_by_role("navigation", name="Console")
    assert nav.get_by_role("link", name="Models").count() == 0
    page.goto("/manage/models")
    page.get_by_role("heading", level=1, name="Not allowed").wait_for()
    page.get_by_text("Only a global admin may use Models.").wait_for()
    bearer = {"authorization": f"Bearer {_token(server, email)}"}
    for method, path in (
        ("GET", "/admin/models"),
        ("GET", "/admin/models/chat-file"),
        ("POST", "/admin/models"),
        ("POST", "/admin/models/chat-file/deployments/0/test"),
    ):
        refused = httpx.request(method, f"{server.url}{path}", headers=bearer, json={})
        assert refused.status_code == 403, (method, path, refused.text)
        assert "gpt-4o-mini" not in refused.text


@pytest.mark.parametrize(("width", "dark"), [(1280, True), (375, False)], ids=["dark", "375px"])
def test_the_models_dialogs_are_accessible_and_fit(
    new_page: NewPage, server: Server, width: int, dark: bool
) -> None:
    """axe-core finds nothing serious in the form (with an error shown), the revisions
    dialog, or the page with a stored group; at 375 px nothing scrolls sideways."""
    name = _name("axe")
    _stored(server, name, strategy="weighted", cache={"enabled": True, "ttl": 60})
    page = new_page(width=width, dark=dark)
    _as_global_admin(page, server)
    page.goto("/manage/models")
    group = _group_section(page, name)
    group.get_by_text("weighted", exact=True).wait_for()
    found = {"page": _violations(page)}
    group.get_by_role("button", name="Revisions").click()
    page.get_by_role("dialog", name=f"Revisions of {name}").get_by_role("row").nth(1).wait_for()
    found["revisions"] = _violations(page)
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Add model").click()
    dialog = page.get_by_role("dialog", name="Add model")
    dialog.get_by_label("API base").fill("ftp://nowhere")
    dialog.get_by_role("button", name="Save").click()
    dialog.get_by_role("alert").wait_for()
    found["add model"] = _violations(page)
    assert {k: v for k, v in found.items() if v} == {}
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the Models page scrolls sideways by {overflow} px at {width} px"
