"""Passkeys through HTTP, answered by a software authenticator that builds real WebAuthn
responses (``parley.testing.webauthn``): registration, passwordless and second-factor
sign-in, management, and each check py_webauthn makes refusing a bent response. On the
embedded and the shared (PostgreSQL + Redis) backends: the challenges live in the
shared state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from parley.testing.webauthn import SoftAuthenticator
from tests.e2e.test_access import Client, backend, error, start
from tests.e2e.test_auth import Account

__all__ = ["backend", "start"]

EMBEDDED_ONLY = pytest.mark.parametrize("backend", ["embedded"], indirect=True)
"""For tests with nothing shared-state specific: the ceremonies' shared-state paths run
on both backends in the tests above them."""


@pytest.fixture
def client(start: Callable[..., Client]) -> Client:
    return start(allow_registration=True)


def _add_passkey(ada: Account, key: SoftAuthenticator, name: str = "Laptop") -> dict[str, Any]:
    options = ada.call("POST", "/auth/passkeys/register/options")
    assert options.status_code == 200, options.text
    made = ada.call(
        "POST",
        "/auth/passkeys/register",
        json={"credential": key.create(options.json()), "name": name},
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def _login_options(client: Client) -> dict[str, Any]:
    response = client.http.post("/auth/passkeys/login/options")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_register_sign_in_rename_and_remove(client: Client) -> None:
    ada = Account(client, "ada@example.com")
    key = SoftAuthenticator(client.url)
    options = ada.call("POST", "/auth/passkeys/register/options").json()
    assert options["rp"]["id"] == "127.0.0.1"  # the loopback default
    assert options["authenticatorSelection"]["residentKey"] == "required"
    laptop = _add_passkey(ada, key, "Laptop")
    phone = _add_passkey(ada, SoftAuthenticator(client.url), "Phone")
    second = ada.call("POST", "/auth/passkeys/register/options").json()
    assert len(second["excludeCredentials"]) == 2  # the same authenticator is not enrolled twice

    options = _login_options(client)
    assert options["allowCredentials"] == []  # discoverable: no email asked first
    assert options["userVerification"] == "required"
    signed_in = client.http.post("/auth/passkeys/login", json={"credential": key.get(options)})
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    assert tokens["refresh_token"].startswith("prt_")
    me = ada.get("/api/me", token=tokens["access_token"]).json()
    assert me["id"] == ada.id
    assert me["amr"] == ["hwk", "user"]
    refreshed = client.http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200  # an ordinary session: it refreshes like any other

    listed = ada.call("GET", "/auth/passkeys").json()["data"]
    assert [p["name"] for p in listed] == ["Laptop", "Phone"]
    assert listed[0]["last_used_ms"] is not None
    assert listed[1]["last_used_ms"] is None
    renamed = ada.call("PATCH", f"/auth/passkeys/{phone['id']}", json={"name": "Old phone"})
    assert renamed.json()["name"] == "Old phone"

    removed = ada.call("DELETE", f"/auth/passkeys/{laptop['id']}")
    assert removed.status_code == 200
    refused = client.http.post(
        "/auth/passkeys/login", json={"credential": key.get(_login_options(client))}
    )
    assert refused.status_code == 401
    assert error(refused)["code"] == "passkey_rejected"

    grace = Account(client, "grace@example.com")
    assert grace.call("DELETE", f"/auth/passkeys/{phone['id']}").status_code == 404
    assert grace.call("GET", "/auth/passkeys").json()["data"] == []


def test_a_passkey_is_a_second_factor_after_the_password(client: Client) -> None:
    ada = Account(client, "ada@example.com")
    key = SoftAuthenticator(client.url)
    _add_passkey(ada, key)
    first = client.http.post(
        "/auth/login", json={"email": ada.email, "password": "correct horse battery staple 42"}
    ).json()
    assert first["mfa_required"] is True
    assert first["mfa_methods"] == ["passkey"]
    assert "access_token" not in first
    options = client.http.post("/auth/passkeys/mfa/options", json={"mfa_token": first["mfa_token"]})
    assert options.status_code == 200, options.text
    assert len(options.json()["allowCredentials"]) == 1
    done = client.http.post(
        "/auth/passkeys/login",
        json={"credential": key.get(options.json()), "mfa_token": first["mfa_token"]},
    )
    assert done.status_code == 200, done.text
    assert ada.get("/api/me", token=done.json()["access_token"]).json()["amr"] == [
        "pwd",
        "hwk",
        "user",
    ]
    # A passkey login's challenge is no second-factor challenge: purposes do not mix.
    other = key.get(_login_options(client))
    mixed = client.http.post(
        "/auth/passkeys/login", json={"credential": other, "mfa_token": first["mfa_token"]}
    )
    assert mixed.status_code == 401
    assert error(mixed)["code"] == "passkey_challenge"


def test_wrong_origin_replay_and_sign_count_regression_are_refused(client: Client) -> None:
    ada = Account(client, "ada@example.com")
    key = SoftAuthenticator(client.url)
    _add_passkey(ada, key)

    options = _login_options(client)
    phished = key.get(options, origin="https://parley.example.net")
    wrong = client.http.post("/auth/passkeys/login", json={"credential": phished})
    assert wrong.status_code == 401
    assert error(wrong)["code"] == "passkey_rejected"
    assert "origin" in error(wrong)["message"].lower()
    # The refused answer spent its challenge: the right origin cannot reuse it.
    retry = client.http.post("/auth/passkeys/login", json={"credential": key.get(options)})
    assert error(retry)["code"] == "passkey_challenge"

    good = key.get(_login_options(client))
    assert client.http.post("/auth/passkeys/login", json={"credential": good}).status_code == 200
    replay = client.http.post("/auth/passkeys/login", json={"credential": good})
    assert replay.status_code == 401
    assert error(replay)["code"] == "passkey_challenge"

    cloned = key.get(_login_options(client), sign_count=1)  # the counter stood at 2
    stale = client.http.post("/auth/passkeys/login", json={"credential": cloned})
    assert stale.status_code == 401
    assert error(stale)["code"] == "passkey_sign_count"

    forged = key.get(_login_options(client), sign_count=20)
    forged["response"]["signature"] = key.get(_login_options(client))["response"]["signature"]
    bad_sig = client.http.post("/auth/passkeys/login", json={"credential": forged})
    assert bad_sig.status_code == 401
    assert error(bad_sig)["code"] == "passkey_rejected"

    made_elsewhere = ada.call("POST", "/auth/passkeys/register/options").json()
    foreign = key.create(made_elsewhere, origin="https://parley.example.net")
    refused = ada.call("POST", "/auth/passkeys/register", json={"credential": foreign})
    assert refused.status_code == 400
    assert error(refused)["code"] == "passkey_rejected"


@EMBEDDED_ONLY
def test_a_synced_passkey_that_never_counts_still_signs_in(client: Client) -> None:
    ada = Account(client, "ada@example.com")
    key = SoftAuthenticator(client.url, counts=False)
    _add_passkey(ada, key)
    for _ in range(2):
        response = client.http.post(
            "/auth/passkeys/login", json={"credential": key.get(_login_options(client))}
        )
        assert response.status_code == 200, response.text


@EMBEDDED_ONLY
def test_rp_id_and_origin_come_from_configuration(start: Callable[..., Client]) -> None:
    loose = start(allow_registration=True)
    elsewhere = loose.http.post(
        "/auth/passkeys/login/options", headers={"host": "chat.example.com"}
    )
    assert elsewhere.status_code == 403  # a Host header is no relying party
    assert error(elsewhere)["code"] == "passkeys_not_configured"

    client = start(
        allow_registration=True,
        webauthn_rp_id="chat.example.com",
        webauthn_origins=["https://chat.example.com"],
    )
    ada = Account(client, "ada@example.com")
    site = SoftAuthenticator("https://chat.example.com")
    options = ada.call("POST", "/auth/passkeys/register/options").json()
    assert options["rp"] == {"id": "chat.example.com", "name": "Parley"}
    _add_passkey(ada, site)
    assert (
        client.http.post(
            "/auth/passkeys/login", json={"credential": site.get(_login_options(client))}
        ).status_code
        == 200
    )
    # The same key signing for another RP id fails the RP-id hash check.
    for credential in site.credentials.values():
        credential.rp_id = "evil.example.com"
    login = _login_options(client)
    bent = site.get({**login, "rpId": "evil.example.com"})
    refused = client.http.post("/auth/passkeys/login", json={"credential": bent})
    assert refused.status_code == 401
    assert "rp id" in error(refused)["message"].lower()


@EMBEDDED_ONLY
def test_a_passkey_session_keeps_a_team_admin_s_rights_where_mfa_is_required(
    client: Client,
) -> None:
    ada = Account(client, "ada@example.com")
    team = client.admin("POST", "/admin/teams", json={"name": "Engines"}).json()
    member = client.admin(
        "PUT", f"/admin/teams/{team['id']}/members/{ada.id}", json={"role": "admin"}
    )
    assert member.status_code == 200, member.text
    assert client.admin("PATCH", f"/admin/teams/{team['id']}", json={"mfa_required": True})
    assert ada.get(f"/admin/teams/{team['id']}").status_code == 403  # a password session
    key = SoftAuthenticator(client.url)
    _add_passkey(ada, key)
    signed_in = client.http.post(
        "/auth/passkeys/login", json={"credential": key.get(_login_options(client))}
    ).json()
    assert ada.get(f"/admin/teams/{team['id']}", token=signed_in["access_token"]).status_code == 200
