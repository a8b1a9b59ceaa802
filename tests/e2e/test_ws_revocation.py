"""An open ``/api/ws`` ends (close code 4401) the moment its login session is revoked:
logout, logout everywhere, a password change, revoking the session from the list, an
admin disabling the user, or the user deleting the account; on whichever instance the
socket is, not only the one that revoked it. Sockets of the user's other, live sessions
stay open."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.test_access import Client, backend, start
from tests.e2e.test_auth import PASSWORD, Account
from tests.e2e.test_realtime import Live

__all__ = ["backend", "start"]  # fixtures shared with the access suite


def closed_with(live: Live) -> int | None:
    """The close code the server sent; fails if the socket stays open and quiet for 10 s."""
    for _ in range(100):  # anything still queued for it first
        try:
            live.next(timeout=10)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
    raise AssertionError("the socket is still open after 100 messages")


def still_open(live: Live) -> bool:
    live.ws.send(json.dumps({"type": "ping"}))
    return live.next() == {"type": "pong"}


def as_session(account: Account, tokens: dict[str, Any], client: Client | None = None) -> Account:
    """The same user as ``account`` through another login session (and maybe instance)."""
    other = Account.__new__(Account)
    other.__dict__.update(account.__dict__, tokens=tokens)
    if client is not None:
        other.client = client
    return other


def _logout(ada: Account) -> None:
    assert ada.call("POST", "/auth/logout").status_code == 200


def _logout_all(ada: Account) -> None:
    assert ada.call("POST", "/auth/logout-all").status_code == 200


def _password(ada: Account) -> None:
    # the session that changes the password survives it; the others are revoked
    other = as_session(ada, ada.login())
    body = {"current_password": PASSWORD, "new_password": "another long passphrase 99"}
    assert other.call("POST", "/auth/password", json=body).status_code == 200


def _revoke_from_list(ada: Account) -> None:
    other = as_session(ada, ada.login())
    path = f"/auth/sessions/{ada.get('/api/me').json()['session_id']}"
    assert other.call("DELETE", path).status_code == 200


def _disable(ada: Account) -> None:
    answer = ada.client.admin("PATCH", f"/admin/users/{ada.id}", json={"disabled": True})
    assert answer.status_code == 200, answer.text


def _delete_account(ada: Account) -> None:
    body = {"confirm": ada.email, "password": PASSWORD}
    answer = ada.call("POST", "/api/account/delete", json=body)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    "revoke",
    [_logout, _logout_all, _password, _revoke_from_list, _disable, _delete_account],
    ids=lambda f: f.__name__,
)
def test_a_revoked_session_closes_its_websocket(
    start: Callable[..., Client], revoke: Callable[[Account], None]
) -> None:
    client = start(allow_registration=True)
    ada = Account(client, "ada@example.com")
    bob = Account(client, "bob@example.com", "Bob")
    live, bobs = Live(client, ada), Live(client, bob)
    assert still_open(live)
    revoke(ada)
    assert closed_with(live) == 4401
    assert still_open(bobs)  # nobody else's socket
    bobs.close()


def test_logout_closes_only_that_sessions_websocket(start: Callable[..., Client]) -> None:
    client = start(allow_registration=True)
    ada = Account(client, "ada@example.com")
    laptop = as_session(ada, ada.login())
    on_phone, on_laptop = Live(client, ada), Live(client, laptop)
    _logout(ada)
    assert closed_with(on_phone) == 4401
    assert still_open(on_laptop)
    on_laptop.close()


def test_a_token_refreshed_on_the_socket_is_revoked_with_its_new_session(
    start: Callable[..., Client],
) -> None:
    """A socket that re-authenticated with another session's token follows that one."""
    client = start(allow_registration=True)
    ada = Account(client, "ada@example.com")
    live = Live(client, ada)
    laptop = as_session(ada, ada.login())
    live.ws.send(json.dumps({"type": "auth", "token": laptop.tokens["access_token"]}))
    assert live.next()["type"] == "ready"
    _logout(laptop)
    assert closed_with(live) == 4401


def test_logout_on_instance_a_closes_the_websocket_on_instance_b(
    start: Callable[..., Client], backend: dict[str, Any]
) -> None:
    if not backend:
        pytest.skip("two instances share PostgreSQL, Redis and NATS; the embedded tier is one")
    a, b = start(allow_registration=True), start()
    ada = Account(a, "ada@example.com")
    on_b = Live(b, ada)
    assert still_open(on_b)
    _logout(ada)
    assert closed_with(on_b) == 4401
