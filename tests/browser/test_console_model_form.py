"""The Models page's form beyond the basics, in Chromium against a real ``parley serve``:
each provider's own fields (Azure's API version, Bedrock's region and AWS credentials,
from a variable or a secret that is never shown again), and the collapsed "Advanced"
sections (a deployment's timeouts, headers and weights; a group's budget, cost cap and
default timeouts), stored exactly as typed, shown again on an edit and kept by it, with
the API's validation errors beside their fields. The fake upstream verifies SigV4 and
Azure's api-version, so a passing connection test proves what the form stored works."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from parley.config.vault import new_key
from parley.testing.aws import FAKE_AWS_ACCESS_KEY_ID, FAKE_AWS_SECRET_ACCESS_KEY
from parley.testing.fake_upstream import FakeUpstream
from tests.browser.conftest import Server, _model, serving
from tests.browser.test_accessibility import _violations
from tests.browser.test_console import ADMIN_KEY, _admin, _as_global_admin
from tests.browser.test_console_models import NewPage, _group_section, _name

BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


@pytest.fixture(scope="module")
def server(
    browser_fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server of its own with a secrets key, and the fake's AWS credentials in its
    environment (for ``os.environ/`` references typed in the form)."""
    models = _model("chat-file", "openai", "gpt-4o-mini", f"{browser_fake.url}/v1")
    env = {
        "PARLEY_ADMIN_KEY": ADMIN_KEY,
        "PARLEY_SECRETS_KEY": new_key(),
        "PARLEY_TEST_AWS_KEY_ID": FAKE_AWS_ACCESS_KEY_ID,
        "PARLEY_TEST_AWS_SECRET": FAKE_AWS_SECRET_ACCESS_KEY,
    }
    with serving(tmp_path_factory.mktemp("model-form"), browser_fake, models, env) as running:
        yield running


def _add(page: Any, server: Server, name: str) -> Any:
    """The "Add model" dialog with its group name typed."""
    _as_global_admin(page, server)
    page.goto("/manage/models")
    page.get_by_role("button", name="Add model").click()
    dialog = page.get_by_role("dialog", name="Add model")
    dialog.get_by_label("Group name").fill(name)
    return dialog


def _deployment(dialog: Any, number: int = 1) -> Any:
    return dialog.get_by_role("group", name=f"Deployment {number}", exact=True)


def _advanced(scope: Any) -> Any:
    """The scope's own collapsed "Advanced" section, opened (the group's is the first)."""
    section = scope.locator("details.advanced").first
    if section.get_attribute("open") is None:
        section.locator("summary").click()
    return section


def _document(server: Server, name: str) -> dict[str, Any]:
    return dict(_admin(server, "GET", f"/admin/models/{name}")["document"])


def _save(dialog: Any) -> None:
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="detached")


def _error_beside(page: Any, field: Any) -> str:
    """The API's words under ``field``, as it is read with it (its last description)."""
    assert field.get_attribute("aria-invalid") == "true"
    error_id = field.get_attribute("aria-describedby").split()[-1]
    return str(page.locator(f"[id='{error_id}']").inner_text())


def test_an_admin_adds_bedrock_and_azure_groups_with_their_own_fields(
    new_page: NewPage, server: Server
) -> None:
    page = new_page()
    bedrock = _name("bedrock")
    dialog = _add(page, server, bedrock)
    deployment = _deployment(dialog)
    provider = deployment.get_by_label("Provider")
    provider.select_option("azure")
    deployment.get_by_label("API version").fill("2024-06-01")
    assert deployment.get_by_label("AWS region").count() == 0
    provider.select_option("bedrock")  # Azure's field goes, and what it held is not sent
    assert deployment.get_by_label("API version").count() == 0
    assert deployment.get_by_label("API key from").input_value() == "none"
    assert deployment.get_by_label("Session token from").input_value() == "none"
    deployment.get_by_label("Model", exact=True).fill(BEDROCK_MODEL)
    deployment.get_by_label("API base").fill(server.fake.url)
    deployment.get_by_label("AWS region").fill("us-east-1")
    deployment.get_by_label("Access key ID variable").fill("PARLEY_TEST_AWS_KEY_ID")
    deployment.get_by_label("Secret access key variable").fill("PARLEY_TEST_AWS_SECRET")
    deployment.get_by_role("button", name="Test connection").click()
    deployment.get_by_text("Connected: answered in").wait_for()  # signed with those keys
    _save(dialog)
    assert _document(server, bedrock) == {
        "name": bedrock,
        "strategy": "ordered",
        "deployments": [
            {
                "provider": "bedrock",
                "model": BEDROCK_MODEL,
                "api_base": server.fake.url,
                "aws_region": "us-east-1",
                "aws_access_key_id": "os.environ/PARLEY_TEST_AWS_KEY_ID",
                "aws_secret_access_key": "os.environ/PARLEY_TEST_AWS_SECRET",
            }
        ],
    }

    azure = _name("azure")
    page.get_by_role("button", name="Add model").click()
    dialog = page.get_by_role("dialog", name="Add model")
    dialog.get_by_label("Group name").fill(azure)
    deployment = _deployment(dialog)
    deployment.get_by_label("Provider").select_option("bedrock")
    deployment.get_by_label("AWS region").fill("eu-west-1")  # hidden below: not sent
    deployment.get_by_label("Provider").select_option("azure")
    assert deployment.get_by_label("AWS region").count() == 0
    assert deployment.get_by_label("Azure AD token from").input_value() == "none"
    deployment.get_by_label("Model", exact=True).fill("gpt-4o-mini")
    deployment.get_by_label("API base").fill(server.fake.url)
    deployment.get_by_label("API version").fill("2024-06-01")
    deployment.get_by_label("Variable name").fill("PARLEY_TEST_FAKE_KEY")
    _save(dialog)
    assert _document(server, azure)["deployments"] == [
        {
            "provider": "azure",
            "model": "gpt-4o-mini",
            "api_base": server.fake.url,
            "api_version": "2024-06-01",
            "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
        }
    ]
    row = _group_section(page, azure).get_by_role("row").filter(has_text=f"{azure}/azure/")
    row.get_by_role("button", name="Test connection").click()
    row.get_by_text("Connected: answered in").wait_for()
    assert any("api-version=2024-06-01" in c.path for c in server.fake.calls)

    # a stored deployment moved to another provider loses the fields of the one it left
    _group_section(page, azure).get_by_role("button", name="Edit").click()
    edit = page.get_by_role("dialog", name=f"Edit {azure}")
    deployment = _deployment(edit)
    assert deployment.get_by_label("API version").input_value() == "2024-06-01"
    deployment.get_by_label("Provider").select_option("openai_compatible")
    assert deployment.get_by_label("API version").count() == 0
    _save(edit)
    _group_section(page, azure).get_by_text("stored · revision 2").wait_for()
    assert _document(server, azure)["deployments"] == [
        {
            "provider": "openai_compatible",
            "model": "gpt-4o-mini",
            "api_base": server.fake.url,
            "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
        }
    ]


def test_advanced_settings_are_stored_shown_again_and_kept_by_an_edit(
    new_page: NewPage, server: Server
) -> None:
    page = new_page()
    name = _name("advanced")
    dialog = _add(page, server, name)
    deployment = _deployment(dialog)
    deployment.get_by_label("Model", exact=True).fill("gpt-4o-mini")
    deployment.get_by_label("API base").fill(f"{server.fake.url}/v1")
    deployment.get_by_label("Variable name").fill("PARLEY_TEST_FAKE_KEY")
    mine = _advanced(deployment)
    mine.get_by_label("Connect timeout (s)", exact=True).fill("3")
    mine.get_by_label("Total timeout (s)", exact=True).fill("42")
    mine.get_by_role("button", name="Add header").click()
    mine.get_by_label("Header 1 name").fill("X-Team")
    mine.get_by_label("Header 1 value").fill("blue")
    mine.get_by_role("button", name="Add header").click()
    mine.get_by_label("Header 2 name").fill("X-Gone")
    mine.get_by_label("Header 2 value").fill("soon")
    mine.get_by_role("button", name="Remove header 2").click()
    mine.get_by_label("Weight").fill("3")
    mine.get_by_label("Order").fill("2")
    group = _advanced(dialog)
    group.get_by_label("Budget (USD)", exact=True).fill("50")
    group.get_by_label("Soft budget (USD)").fill("40")
    group.get_by_label("Budget period").select_option("weekly")
    group.get_by_label("Cost cap per request (USD)").fill("0.25")
    defaults = group.get_by_role("group", name="Default timeouts")
    defaults.get_by_label("Total timeout (s)", exact=True).fill("120")
    _save(dialog)

    document = _document(server, name)
    assert document["deployments"][0] == {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "api_base": f"{server.fake.url}/v1",
        "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
        "timeout": {"connect": 3, "total": 42},
        "extra_headers": {"X-Team": "blue"},
        "weight": 3,
        "order": 2,
    }
    assert document["budget"] == {"usd": 50, "soft_usd": 40, "period": "weekly"}
    assert document["max_cost_usd"] == 0.25
    assert document["timeout"] == {"total": 120}
    section = _group_section(page, name)
    row = section.get_by_role("row").filter(has_text=f"{name}/openai/gpt-4o-mini")
    row.get_by_role("button", name="Test connection").click()
    row.get_by_text("Connected: answered in").wait_for()
    sent = [c.headers for c in server.fake.calls if c.path.endswith("/chat/completions")]
    lowered = [{k.lower(): v for k, v in h.items()} for h in sent]
    assert any(h.get("x-team") == "blue" for h in lowered)  # the header reaches the upstream

    # fields the form does not show, set through the API, survive the form's edits
    document["deployments"][0]["tags"] = {"tier": "gold"}
    document["budget"]["timezone"] = "Europe/Paris"
    _admin(server, "PUT", f"/admin/models/{name}", json=document)
    page.reload()
    section.get_by_text("stored · revision 2").wait_for()
    section.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("dialog", name=f"Edit {name}")
    mine = _advanced(_deployment(edit))
    assert mine.get_by_label("Connect timeout (s)", exact=True).input_value() == "3"
    assert mine.get_by_label("First byte timeout (s)", exact=True).input_value() == ""
    assert mine.get_by_label("Total timeout (s)", exact=True).input_value() == "42"
    assert mine.get_by_label("Header 1 name").input_value() == "X-Team"
    assert mine.get_by_label("Header 1 value").input_value() == "blue"
    assert mine.get_by_label("Header 2 name").count() == 0
    assert mine.get_by_label("Weight").input_value() == "3"
    group = _advanced(edit)
    assert group.get_by_label("Budget (USD)", exact=True).input_value() == "50"
    assert group.get_by_label("Budget period").input_value() == "weekly"
    assert group.get_by_label("Cost cap per request (USD)").input_value() == "0.25"
    defaults = group.get_by_role("group", name="Default timeouts")
    assert defaults.get_by_label("Total timeout (s)", exact=True).input_value() == "120"
    edit.get_by_label("Strategy").select_option("weighted")
    group.get_by_label("Soft budget (USD)").fill("")  # cleared: removed
    mine.get_by_label("Order").fill("")
    _save(edit)
    section.get_by_text("stored · revision 3").wait_for()

    after = _document(server, name)
    assert after["strategy"] == "weighted"
    assert after["deployments"][0] == {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "api_base": f"{server.fake.url}/v1",
        "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
        "timeout": {"connect": 3, "total": 42},
        "extra_headers": {"X-Team": "blue"},
        "weight": 3,
        "tags": {"tier": "gold"},
    }
    assert after["budget"] == {"usd": 50, "period": "weekly", "timezone": "Europe/Paris"}
    assert after["max_cost_usd"] == 0.25
    assert after["timeout"] == {"total": 120}


def test_a_bad_value_in_an_advanced_field_is_shown_beside_it(
    new_page: NewPage, server: Server
) -> None:
    page = new_page()
    name = _name("bad-advanced")
    dialog = _add(page, server, name)
    deployment = _deployment(dialog)
    deployment.get_by_label("Provider").select_option("bedrock")
    deployment.get_by_label("Model", exact=True).fill(BEDROCK_MODEL)
    region = deployment.get_by_label("AWS region")
    region.fill("Mars-North")
    deployment.get_by_label("Access key ID variable").fill("PARLEY_TEST_AWS_KEY_ID")
    deployment.get_by_label("Secret access key variable").fill("PARLEY_TEST_AWS_SECRET")
    mine = _advanced(deployment)
    total = mine.get_by_label("Total timeout (s)", exact=True)
    total.fill("0")
    mine.locator("summary").click()  # closed again: a problem inside opens it
    group = _advanced(dialog)
    usd = group.get_by_label("Budget (USD)", exact=True)
    usd.fill("-1")
    group.locator("summary").click()
    dialog.get_by_role("button", name="Save").click()
    dialog.get_by_role("alert").get_by_text("Not saved").wait_for()

    assert _error_beside(page, region).startswith("must be an AWS region such as us-east-1")
    assert _error_beside(page, total) == "Input should be greater than 0"
    assert _error_beside(page, usd) == "Input should be greater than or equal to 0"
    assert mine.get_attribute("open") is not None
    assert group.get_attribute("open") is not None
    assert total.is_visible()
    assert usd.is_visible()
    # the first field named takes the focus: the group's budget comes before deployments
    assert page.evaluate("document.activeElement.id") == usd.get_attribute("id")
    assert dialog.get_by_label("Model", exact=True).get_attribute("aria-invalid") is None

    region.fill("us-east-1")
    total.fill("30")
    usd.fill("10")
    _save(dialog)
    document = _document(server, name)
    assert document["deployments"][0]["timeout"] == {"total": 30}
    assert document["budget"] == {"usd": 10}


def test_an_aws_secret_is_never_shown_again_and_kept_by_an_edit(
    new_page: NewPage, server: Server
) -> None:
    page = new_page()
    name = _name("aws-secret")
    secret = FAKE_AWS_SECRET_ACCESS_KEY
    dialog = _add(page, server, name)
    deployment = _deployment(dialog)
    deployment.get_by_label("Provider").select_option("bedrock")
    deployment.get_by_label("Model", exact=True).fill(BEDROCK_MODEL)
    deployment.get_by_label("API base").fill(server.fake.url)
    deployment.get_by_label("AWS region").fill("us-east-1")
    deployment.get_by_label("Access key ID variable").fill("PARLEY_TEST_AWS_KEY_ID")
    deployment.get_by_label("Secret access key from").select_option("secret")
    box = deployment.get_by_label("Secret access key", exact=True)
    assert box.get_attribute("type") == "password"
    box.fill(secret)
    _save(dialog)

    hint = f"…{secret[-4:]}"
    section = _group_section(page, name)
    section.get_by_text("stored · revision 1").wait_for()
    dep = _document(server, name)["deployments"][0]
    assert dep["aws_secret_access_key"] == hint
    assert dep["aws_access_key_id"] == "os.environ/PARLEY_TEST_AWS_KEY_ID"
    listed = httpx.get(
        f"{server.url}/admin/models", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert secret not in listed.text
    assert secret not in page.content()

    section.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("dialog", name=f"Edit {name}")
    deployment = _deployment(edit)
    assert deployment.get_by_label("Secret access key from").input_value() == "secret"
    box = deployment.get_by_label("Secret access key", exact=True)
    assert box.input_value() == ""
    assert box.get_attribute("placeholder") == f"stored: {hint}"
    assert secret not in page.content()
    edit.get_by_label("Retries").fill("1")
    _save(edit)
    section.get_by_text("stored · revision 2").wait_for()
    dep = _document(server, name)["deployments"][0]
    assert dep["aws_secret_access_key"] == hint
    # the stored secret, not its hint: the fake checks the signature made with it
    row = section.get_by_role("row").filter(has_text=f"{name}/bedrock/")
    row.get_by_role("button", name="Test connection").click()
    row.get_by_text("Connected: answered in").wait_for()
    assert secret not in page.content()
    assert secret not in server.log.read_text()


@pytest.mark.parametrize(("width", "dark"), [(1280, True), (375, False)], ids=["dark", "375px"])
def test_the_advanced_sections_are_accessible_and_fit(
    new_page: NewPage, server: Server, width: int, dark: bool
) -> None:
    """axe-core finds nothing serious in the form with a Bedrock deployment, both
    "Advanced" sections open, a header row and an error shown; nothing scrolls sideways."""
    page = new_page(width=width, dark=dark)
    dialog = _add(page, server, _name("axe-advanced"))
    deployment = _deployment(dialog)
    deployment.get_by_label("Provider").select_option("bedrock")
    mine = _advanced(deployment)
    mine.get_by_role("button", name="Add header").click()
    mine.get_by_label("Total timeout (s)", exact=True).fill("0")
    _advanced(dialog)
    dialog.get_by_role("button", name="Save").click()
    dialog.get_by_role("alert").wait_for()
    assert _violations(page) == []
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the dialog scrolls sideways by {overflow} px at {width} px"
    wide = dialog.evaluate("d => d.scrollWidth - d.clientWidth")
    assert wide <= 0, f"the dialog's content is {wide} px wider than it at {width} px"
