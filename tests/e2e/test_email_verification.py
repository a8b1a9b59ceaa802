"""Email verification on registration and on an address change, with the links read from
mail delivered to a real SMTP server (aiosmtpd): ``required`` closes chat until the
address is confirmed, ``optional`` only tells, ``off`` sends nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.test_access import Client, backend, error, start
from tests.e2e.test_auth import PASSWORD, Account
from tests.smtp import Inbox, link_in, mail_settings, smtp_server, text_of

__all__ = ["backend", "start"]


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def mailing(start: Callable[..., Client], inbox: tuple[Inbox, int]) -> Callable[..., Client]:
    def run(**settings: Any) -> Client:
        return start(allow_registration=True, **mail_settings(inbox[1], **settings))

    return run


def new_chat(account: Account) -> Any:
    return account.call("POST", "/api/conversations", json={"title": "hello"})


def verify(client: Client, token: str) -> Any:
    return client.http.post("/auth/verify-email", json={"token": token})


def test_required_verification_closes_chat_until_the_link_is_followed(
    mailing: Callable[..., Client], inbox: tuple[Inbox, int]
) -> None:
    client = mailing(email_verification="required")
    ada = Account(client, "ada@example.com")
    [message] = inbox[0].wait(1)
    assert message["Subject"] == "Confirm your email address for Parley"
    assert "ada@example.com" in text_of(message)
    base, token = link_in(message)
    assert base == "http://parley.test/verify-email"
    me = ada.get("/api/me").json()
    assert (me["email_verified"], me["email_verification"]) == (False, "required")
    refused = new_chat(ada)
    assert refused.status_code == 403
    assert error(refused)["code"] == "email_unverified"
    assert "verify your email address" in error(refused)["message"]

    assert verify(client, token).status_code == 200
    assert ada.get("/api/me").json()["email_verified"] is True
    assert new_chat(ada).status_code == 201
    again = verify(client, token)
    assert again.status_code == 400
    assert error(again)["code"] == "invalid_token"


def test_optional_verification_lets_chat_through_and_resends_on_request(
    mailing: Callable[..., Client], inbox: tuple[Inbox, int]
) -> None:
    client = mailing()  # the default: optional
    bea = Account(client, "bea@example.com")
    inbox[0].wait(1)
    assert new_chat(bea).status_code == 201
    resent = bea.call("POST", "/auth/verify-email/resend")
    assert resent.status_code == 202
    assert resent.json() == {"sent": True, "email_verified": False}
    first, second = inbox[0].wait(2)
    assert verify(client, link_in(second)[1]).status_code == 200
    # one link spent, the older one with it
    assert error(verify(client, link_in(first)[1]))["code"] == "invalid_token"
    assert bea.call("POST", "/auth/verify-email/resend").json()["email_verified"] is True


def test_an_address_change_waits_for_the_link_sent_to_the_new_address(
    mailing: Callable[..., Client], inbox: tuple[Inbox, int]
) -> None:
    client = mailing()
    cy = Account(client, "cy@example.com")
    inbox[0].wait(1)
    wrong = cy.call("POST", "/auth/email", json={"email": "cy@new.example", "password": "nope"})
    assert wrong.status_code == 401
    asked = cy.call("POST", "/auth/email", json={"email": "Cy@New.example", "password": PASSWORD})
    assert asked.status_code == 202
    assert asked.json() == {"verification_sent": True}
    inbox[0].wait(2)
    [message] = inbox[0].to("cy@new.example")
    assert cy.get("/api/me").json()["email"] == "cy@example.com"  # not yet
    assert verify(client, link_in(message)[1]).status_code == 200
    me = cy.get("/api/me").json()
    assert (me["email"], me["email_verified"]) == ("cy@new.example", True)
    moved = client.http.post("/auth/login", json={"email": "cy@new.example", "password": PASSWORD})
    assert moved.status_code == 200


def test_off_sends_nothing_and_changes_an_address_at_once(
    mailing: Callable[..., Client], inbox: tuple[Inbox, int]
) -> None:
    client = mailing(email_verification="off")
    dee = Account(client, "dee@example.com")
    assert new_chat(dee).status_code == 201
    changed = dee.call("POST", "/auth/email", json={"email": "dee@b.example", "password": PASSWORD})
    assert changed.status_code == 200
    assert dee.get("/api/me").json()["email"] == "dee@b.example"
    time.sleep(0.3)  # several sender polls
    assert inbox[0].messages == []
