"""Password reset by email through HTTP, with a real SMTP server (aiosmtpd) receiving the
mail: the link is read from the delivered message and followed, on the embedded and the
shared (PostgreSQL + Redis) backends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from sqlalchemy import select

from parley.config import Settings
from parley.store.db import Database
from parley.store.tables import audit_log
from tests.conftest import ParleyFactory
from tests.e2e.test_access import ADMIN, Client, backend, error, start
from tests.e2e.test_auth import PASSWORD, Account
from tests.e2e.test_cli import parley
from tests.polling import eventually
from tests.smtp import Inbox, html_of, link_in, mail_settings, smtp_server, text_of

__all__ = ["backend", "start"]

NEW_PASSWORD = "a brand new passphrase 7731"


@pytest.fixture
def parley_server(parley: ParleyFactory) -> ParleyFactory:
    """The servers fixture, under a name that leaves ``parley`` to the CLI helper."""
    return parley


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def mailing(start: Callable[..., Client], inbox: tuple[Inbox, int]) -> Callable[..., Client]:
    def run(**settings: Any) -> Client:
        settings.setdefault("email_verification", "off")  # only reset mail in these tests
        return start(allow_registration=True, **mail_settings(inbox[1], **settings))

    return run


def ask_reset(client: Client, email: str) -> Any:
    return client.http.post("/auth/password-reset", json={"email": email})


def test_reset_link_by_mail_sets_the_password_and_ends_every_session(
    mailing: Callable[..., Client], inbox: tuple[Inbox, int]
) -> None:
    """The mailed link (plain text and HTML, escaped) sets a new password under the policy,
    works once, and every session of the account ends with it."""
    client = mailing()
    ada = Account(client, "ada@example.com", name="Ada <b>Lovelace</b>")
    other_session = ada.login()
    asked = ask_reset(client, "ADA@example.com")
    assert asked.status_code == 202
    [message] = inbox[0].wait(1)
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Reset your Parley password"
    base, token = link_in(message)
    assert base == "http://parley.test/reset-password"
    assert token.startswith("prs_")
    assert f"#token={token}" in html_of(message)
    assert "Ada &lt;b&gt;Lovelace&lt;/b&gt;" in html_of(message)  # a name is text, not markup
    assert "30 minutes" in text_of(message)

    weak = client.http.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "short"}
    )
    assert weak.status_code == 400
    assert error(weak)["code"] == "weak_password"  # and the link still works:
    done = client.http.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 200, done.text

    for tokens in (ada.tokens, other_session):
        assert ada.get("/api/me", token=tokens["access_token"]).status_code == 401
        again = client.http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert again.status_code == 401
    old = client.http.post("/auth/login", json={"email": ada.email, "password": PASSWORD})
    assert old.status_code == 401
    assert ada.login(NEW_PASSWORD)["access_token"]

    reused = client.http.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": PASSWORD + "x"}
    )
    assert reused.status_code == 400
    assert error(reused)["code"] == "invalid_token"
    forged = client.http.post(
        "/auth/password-reset/confirm",
        json={"token": "prs_" + "A" * 43, "new_password": NEW_PASSWORD},
    )
    assert error(forged)["code"] == "invalid_token"


def test_unknown_accounts_get_the_same_answer_and_no_mail(
    mailing: Callable[..., Client], inbox: tuple[Inbox, int]
) -> None:
    client = mailing()
    Account(client, "grace@example.com")
    unknown = ask_reset(client, "nobody@example.com")
    known = ask_reset(client, "grace@example.com")
    assert (unknown.status_code, unknown.json()) == (known.status_code, known.json())
    assert unknown.headers.keys() - {"date", "x-request-id"} == (
        known.headers.keys() - {"date", "x-request-id"}
    )
    inbox[0].wait(1)
    time.sleep(0.5)  # the unknown address's row was handled before the known one's
    assert [m["To"] for m in inbox[0].messages] == ["grace@example.com"]
    assert ask_reset(client, "not an address").status_code == 400  # malformed, for anyone


def test_an_expired_link_is_refused(
    mailing: Callable[..., Client], inbox: tuple[Inbox, int]
) -> None:
    client = mailing(password_reset_minutes=1 / 60)  # one second
    Account(client, "lin@example.com")
    ask_reset(client, "lin@example.com")
    _, token = link_in(inbox[0].wait(1)[0])
    time.sleep(1.2)
    late = client.http.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert late.status_code == 400
    assert error(late)["code"] == "invalid_token"


def test_the_outbox_retries_while_the_server_is_down_then_delivers_once(
    start: Callable[..., Client],
) -> None:
    """The request returns at once while the SMTP server is down; the sender retries with
    backoff, and once the server is up the message arrives exactly once."""
    with smtp_server() as (_, port):
        pass  # a port that was free: nothing listens on it now
    settings = mail_settings(
        port, mail_retry_base_seconds=0.1, mail_retry_max_seconds=0.3, email_verification="off"
    )
    client = start(allow_registration=True, **settings)
    Account(client, "kay@example.com")
    with structlog.testing.capture_logs() as logs:
        # Accepted although no mail server listens: the request only queues the mail.
        assert ask_reset(client, "kay@example.com").status_code == 202
        eventually(lambda: sum(e["event"] == "mail not sent" for e in logs) >= 2)
        with smtp_server(port) as (inbox, _):
            [message] = inbox.wait(1)
            assert message["To"] == "kay@example.com"
            time.sleep(1.0)  # several retry periods: nothing is sent twice
            assert len(inbox.messages) == 1
    failures = [e for e in logs if e["event"] == "mail not sent"]
    assert all("kay@example.com" not in str(e) for e in failures)  # no address in the log


def test_admin_route_makes_a_link_or_sets_a_password(
    mailing: Callable[..., Client],
    inbox: tuple[Inbox, int],
    backend: dict[str, Any],
    tmp_path: Path,
) -> None:
    client = mailing()
    bob = Account(client, "bob@example.com")
    made = client.admin("POST", f"/admin/users/{bob.id}/password-reset")
    assert made.status_code == 200, made.text
    url = made.json()["reset_url"]
    assert url.startswith("http://parley.test/reset-password#token=prs_")
    token = url.split("#token=", 1)[1]
    done = client.http.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 200
    assert bob.get("/api/me").status_code == 401  # sessions ended
    bob.tokens = bob.login(NEW_PASSWORD)
    weak = client.admin("POST", f"/admin/users/{bob.id}/password-reset", json={"password": "x"})
    assert weak.status_code == 400
    assert error(weak)["code"] == "weak_password"
    forced = client.admin(
        "POST", f"/admin/users/{bob.id}/password-reset", json={"password": PASSWORD}
    )
    assert forced.json() == {"id": bob.id, "password_set": True}
    assert bob.get("/api/me").status_code == 401
    bob.login(PASSWORD)
    actions = audit_actions(database_url(backend, tmp_path), bob.id)
    assert ("admin-key", "user.password_reset_link") in actions
    assert ("admin-key", "user.password_reset_set") in actions
    assert inbox[0].messages == []  # neither route sends mail


def database_url(backend: dict[str, Any], tmp_path: Path) -> str:
    return str(backend.get("database_url") or f"sqlite:///{tmp_path}/parley.db")


def audit_actions(url: str, target: str) -> list[tuple[str, str]]:
    async def read() -> list[tuple[str, str]]:
        db = Database(Settings(database_url=url).database_url)
        try:
            async with db.read() as conn:
                rows = await conn.execute(
                    select(audit_log.c.actor, audit_log.c.action)
                    .where(audit_log.c.target == target)
                    .order_by(audit_log.c.id)
                )
                return [(r.actor, r.action) for r in rows]
        finally:
            await db.close()

    return asyncio.run(read())


def test_cli_prints_a_one_time_link_or_sets_the_password_audited(
    shared: dict[str, str], parley_server: ParleyFactory
) -> None:
    """``parley users reset-password``: for a deployment without SMTP. Both ways are
    audited as the CLI and end the account's sessions, on the running instance at once
    (the shared state; on the embedded tier it learns at the next refresh). Run on the
    shared tier only: the CLI starts a whole process per call."""
    client = Client(parley_server(admin_key=ADMIN, allow_registration=True, **shared))
    try:
        cli_resets(client, shared)
    finally:
        client.http.close()


def cli_resets(client: Client, shared: dict[str, str]) -> None:
    eve = Account(client, "eve@example.com")
    assert eve.get("/api/me").json()["email_verification"] == "off"  # no SMTP: no links
    url = shared["database_url"]
    env = {f"PARLEY_{k.upper()}": str(v) for k, v in shared.items()}
    printed = parley(
        "users", "reset-password", "Eve@Example.com", "--base-url", "http://h", env=env
    )
    assert printed.returncode == 0, printed.stderr
    link = printed.stdout.split()[0]
    assert link.startswith("http://h/reset-password#token=prs_")
    done = client.http.post(
        "/auth/password-reset/confirm",
        json={"token": link.split("#token=")[1], "new_password": NEW_PASSWORD},
    )
    assert done.status_code == 200, done.text
    assert eve.get("/api/me").status_code == 401
    eve.tokens = eve.login(NEW_PASSWORD)

    env["PARLEY_NEW_USER_PASSWORD"] = PASSWORD
    set_now = parley("users", "reset-password", "eve@example.com", "--set-password", env=env)
    assert set_now.returncode == 0, set_now.stderr
    gone = client.http.post("/auth/refresh", json={"refresh_token": eve.tokens["refresh_token"]})
    assert gone.status_code == 401
    assert eve.get("/api/me").status_code == 401
    eve.login(PASSWORD)
    actions = audit_actions(url, eve.id)
    assert ("cli", "user.password_reset_link") in actions
    assert ("cli", "user.password_reset_set") in actions
