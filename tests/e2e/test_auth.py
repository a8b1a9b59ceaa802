"""Accounts, sessions, lockout, MFA and admin roles through HTTP, on the embedded and the
shared (PostgreSQL + Redis) backends."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pyotp
import pytest

from tests.e2e.test_access import Client, backend, error, start

__all__ = ["backend", "start"]  # fixtures shared with the access suite

PASSWORD = "correct horse battery staple 42"


class Account:
    def __init__(self, client: Client, email: str, name: str = "Ada Lovelace") -> None:
        self.client = client
        self.email = email
        created = client.http.post(
            "/auth/register", json={"email": email, "password": PASSWORD, "name": name}
        )
        assert created.status_code == 201, created.text
        self.id: str = created.json()["id"]
        self.tokens = self.login()

    def login(self, password: str = PASSWORD) -> dict[str, Any]:
        response = self.client.http.post(
            "/auth/login", json={"email": self.email, "password": password}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def get(self, path: str, token: str | None = None) -> httpx.Response:
        bearer = token or self.tokens["access_token"]
        return self.client.http.get(path, headers={"authorization": f"Bearer {bearer}"})

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.tokens['access_token']}"}
        return self.client.http.request(method, path, headers=headers, **kwargs)


@pytest.fixture
def client(start: Callable[..., Client]) -> Client:
    return start(allow_registration=True)


def test_the_first_account_of_an_embedded_install_is_its_admin(
    start: Callable[..., Client], backend: dict[str, Any]
) -> None:
    """On the embedded tier with no admin key, whoever registers first administers the
    install (the register page says so); nobody after them, and never on the shared tiers,
    whose admins come from the admin key. Two registering at once make exactly one admin."""
    client = start(allow_registration=True, admin_key=None)
    embedded = not backend
    before = client.http.get("/auth/setup").json()
    assert before == {
        "registration_open": True,
        "first_account_is_admin": embedded,
        "sso_only": False,
        "sso_providers": [],
    }
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        accounts = list(pool.map(lambda n: Account(client, f"first{n}@example.com"), (1, 2)))
    admins = [a.get("/api/me").json()["is_admin"] for a in accounts]
    assert sorted(admins) == ([False, True] if embedded else [False, False])
    later = Account(client, "later@example.com")
    assert later.get("/api/me").json()["is_admin"] is False
    assert client.http.get("/auth/setup").json()["first_account_is_admin"] is False


def test_register_login_me_and_jwks(client: Client) -> None:
    ada = Account(client, "Ada@Example.com")
    assert ada.tokens["token_type"] == "bearer"
    assert ada.tokens["expires_in"] == 300
    assert ada.tokens["refresh_token"].startswith("prt_")
    me = ada.get("/api/me").json()
    assert me["email"] == "ada@example.com"
    assert me["amr"] == ["pwd"]
    header = json.loads(base64.urlsafe_b64decode(ada.tokens["access_token"].split(".")[0] + "=="))
    claims = json.loads(base64.urlsafe_b64decode(ada.tokens["access_token"].split(".")[1] + "=="))
    assert header["alg"] == "ES256"
    assert {"jti", "sid", "auth_time", "amr", "exp"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 300
    jwks = client.http.get("/.well-known/jwks.json").json()
    assert header["kid"] in [k["kid"] for k in jwks["keys"]]
    assert all("d" not in k for k in jwks["keys"])  # public halves only
    assert ada.get("/api/me", token="not-a-jwt").status_code == 401


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-pw-1", "at least 12"),
        ("ada.lovelace-is-great", "email or name"),
        ("QWERTY123456", "most common"),
    ],
)
def test_password_policy(client: Client, password: str, reason: str) -> None:
    response = client.http.post(
        "/auth/register",
        json={"email": "ada.lovelace@example.com", "password": password, "name": "Ada"},
    )
    assert response.status_code == 400
    assert error(response)["param"] == "password"
    assert reason in error(response)["message"]


def test_duplicate_email_is_409(client: Client) -> None:
    Account(client, "grace@example.com")
    again = client.http.post(
        "/auth/register",
        json={"email": "GRACE@example.com", "password": PASSWORD, "name": "Grace"},
    )
    assert again.status_code == 409


def test_refresh_rotates_and_reuse_revokes_the_family(client: Client) -> None:
    ada = Account(client, "ada@example.com")
    first = ada.tokens["refresh_token"]
    rotated = client.http.post("/auth/refresh", json={"refresh_token": first}).json()
    assert rotated["refresh_token"] != first
    assert ada.get("/api/me", token=rotated["access_token"]).status_code == 200
    replay = client.http.post("/auth/refresh", json={"refresh_token": first})
    assert replay.status_code == 401
    assert error(replay)["code"] == "token_reused"
    # the whole family is gone: the newest refresh token and the live access token too
    assert (
        client.http.post(
            "/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
        ).status_code
        == 401
    )
    assert ada.get("/api/me", token=rotated["access_token"]).status_code == 401


def test_logout_and_logout_everywhere_revoke_at_once(client: Client) -> None:
    ada = Account(client, "ada@example.com")
    second = ada.login()
    assert len(ada.get("/auth/sessions").json()["data"]) == 2
    assert ada.call("POST", "/auth/logout").status_code == 200
    assert ada.get("/api/me").status_code == 401
    assert ada.get("/api/me", token=second["access_token"]).status_code == 200
    third = ada.login()
    out = client.http.post(
        "/auth/logout-all", headers={"authorization": f"Bearer {third['access_token']}"}
    )
    assert out.json()["revoked_sessions"] == 2
    assert ada.get("/api/me", token=second["access_token"]).status_code == 401
    assert (
        client.http.post(
            "/auth/refresh", json={"refresh_token": second["refresh_token"]}
        ).status_code
        == 401
    )


def test_lockout_looks_the_same_for_unknown_accounts(client: Client) -> None:
    """Five failures lock an account out (60 s, doubling); an account that does not exist
    answers exactly the same way, so probing cannot tell them apart. Each account is tried
    from its own loopback address so the per-address lockout does not mix the two."""
    Account(client, "ada@example.com")
    answers = {}
    for email, source in (("ada@example.com", "127.0.0.2"), ("nobody@example.com", "127.0.0.3")):
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(base_url=client.url, transport=transport, timeout=20) as http:
            tries = [
                http.post("/auth/login", json={"email": email, "password": "wrong-password!"})
                for _ in range(6)
            ]
            answers[email] = [(r.status_code, r.json(), "retry-after" in r.headers) for r in tries]
    assert answers["ada@example.com"] == answers["nobody@example.com"]
    statuses = [status for status, _, _ in answers["ada@example.com"]]
    assert statuses == [401] * 5 + [429]
    assert answers["ada@example.com"][5][1]["error"]["code"] == "too_many_attempts"
    # the account is locked from every address, even with the right password
    locked = client.http.post(
        "/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["retry-after"]) <= 60


def test_lockout_per_client_address_spans_accounts(client: Client) -> None:
    Account(client, "ada@example.com")
    for i in range(5):
        wrong = {"email": f"user{i}@example.com", "password": "wrong-password!"}
        assert client.http.post("/auth/login", json=wrong).status_code == 401
    blocked = client.http.post(
        "/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert blocked.status_code == 429


def test_mfa_enrol_login_replay_and_recovery(client: Client) -> None:
    ada = Account(client, "ada@example.com")
    enrol = ada.call("POST", "/auth/mfa/enroll").json()
    assert enrol["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(enrol["secret"])
    wrong = ada.call("POST", "/auth/mfa/verify", json={"code": "000000"})
    assert wrong.status_code == 400
    verified = ada.call("POST", "/auth/mfa/verify", json={"code": totp.now()})
    assert verified.status_code == 200, verified.text
    codes = verified.json()["recovery_codes"]
    assert len(set(codes)) == 10
    challenge = client.http.post(
        "/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    ).json()
    assert challenge["mfa_required"] is True
    assert "access_token" not in challenge
    # the code used at enrolment cannot be replayed within its window
    replay = client.http.post(
        "/auth/login/mfa", json={"mfa_token": challenge["mfa_token"], "code": totp.now()}
    )
    assert replay.status_code == 401
    recovered = client.http.post(
        "/auth/login/mfa", json={"mfa_token": challenge["mfa_token"], "recovery_code": codes[0]}
    )
    assert recovered.status_code == 200
    me = ada.get("/api/me", token=recovered.json()["access_token"]).json()
    assert "otp" in me["amr"]
    again = client.http.post(
        "/auth/login/mfa", json={"mfa_token": challenge["mfa_token"], "recovery_code": codes[0]}
    )
    assert again.status_code == 401  # single use
    steps = client.admin("GET", "/admin/audit", params={"limit": 1000}).json()["data"]
    mfa = [e["action"] for e in steps if e["action"].startswith("auth.login_mfa")]
    # newest first: the replayed code failed, the recovery code worked, its reuse failed
    assert mfa == ["auth.login_mfa_failed", "auth.login_mfa", "auth.login_mfa_failed"]


def test_registration_can_be_closed(start: Callable[..., Client]) -> None:
    client = start(allow_registration=False)
    response = client.http.post(
        "/auth/register", json={"email": "a@example.com", "password": PASSWORD, "name": "A"}
    )
    assert response.status_code == 403
    assert error(response)["code"] == "registration_closed"


@pytest.fixture
def org(client: Client) -> dict[str, Any]:
    """Two teams; a plain member of team A; an admin of team B; a key in team A."""
    member = Account(client, "member@example.com", "Member")
    other_admin = Account(client, "other@example.com", "Other")
    team_a = client.admin("POST", "/admin/teams", json={"name": "A"}).json()
    team_b = client.admin("POST", "/admin/teams", json={"name": "B"}).json()
    for team, user, role in ((team_a, member, "member"), (team_b, other_admin, "admin")):
        put = client.admin(
            "PUT", f"/admin/teams/{team['id']}/members/{user.id}", json={"role": role}
        )
        assert put.status_code == 200, put.text
    key = client.new_key(team_id=team_a["id"])
    return {
        "member": member,
        "other_admin": other_admin,
        "team_a": team_a["id"],
        "key_id": key["id"],
        "user_id": member.id,
    }


def test_every_admin_route_refuses_members_and_other_teams_admins(
    client: Client, org: dict[str, Any]
) -> None:
    paths = client.http.get("/openapi.json").json()["paths"]
    routes = [
        (method.upper(), path)
        for path, ops in paths.items()
        if path.startswith("/admin")
        for method in ops
    ]
    assert len(routes) >= 12
    values = {
        "team_id": org["team_a"],
        "key_id": org["key_id"],
        "user_id": org["user_id"],
        "name": "openai",
        "index": "0",
        "anomaly_id": "0" * 32,
    }
    bodies = {
        "POST": {"team_id": org["team_a"], "name": "x"},
        "PATCH": {"mfa_required": True, "is_admin": True},
        "PUT": {"role": "owner"},
    }
    for who in ("member", "other_admin"):
        account: Account = org[who]
        for method, template in routes:
            path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
            query = {"team_id": org["team_a"]} if method == "GET" else None
            body = bodies.get(method)
            if path == "/admin/teams" or path.endswith("/rotate"):
                body = {"name": "x"} if path == "/admin/teams" else {"grace_seconds": 1}
            response = account.call(method, path, params=query, json=body)
            if (method, path) == ("GET", "/admin/teams") and who == "other_admin":
                # the one list a team admin reads: their own teams, none of team A
                assert response.status_code == 200, response.text
                assert org["team_a"] not in response.text
                continue
            assert response.status_code == 403, (who, method, path, response.text)
    # the team admin can manage its own team, and the global admin key still works
    other: Account = org["other_admin"]
    team_b = other.get("/api/me").json()["teams"][0]["id"]
    assert other.call("POST", "/admin/keys", json={"team_id": team_b}).status_code == 201
    assert client.admin("GET", f"/admin/teams/{org['team_a']}").status_code == 200


def test_team_admin_cannot_raise_its_own_budget(client: Client, org: dict[str, Any]) -> None:
    other: Account = org["other_admin"]
    team_b = other.get("/api/me").json()["teams"][0]["id"]
    raised = other.call("PATCH", f"/admin/teams/{team_b}", json={"budget_usd": 1000})
    assert raised.status_code == 403
    required = other.call("PATCH", f"/admin/teams/{team_b}", json={"mfa_required": True})
    assert required.status_code == 200
    assert required.json()["mfa_required"] is True
    # the team now requires MFA and this session did not use it: its admin rights lapse
    assert other.get(f"/admin/teams/{team_b}").status_code == 403
    fresh = other.login()
    assert fresh["mfa_enrollment_required"] is True


def test_password_change_revokes_other_sessions_and_can_be_repeated(client: Client) -> None:
    ada = Account(client, "ada@example.com")
    other = ada.login()
    new = "a completely different passphrase 77"
    changed = ada.call(
        "POST", "/auth/password", json={"current_password": PASSWORD, "new_password": new}
    )
    assert changed.status_code == 200, changed.text
    assert ada.get("/api/me", token=other["access_token"]).status_code == 401
    again = ada.call(
        "POST", "/auth/password", json={"current_password": new, "new_password": PASSWORD + "!"}
    )
    assert again.status_code == 200, again.text  # checked against the new hash, not a cached one
    wrong = ada.call(
        "POST", "/auth/password", json={"current_password": new, "new_password": new + "x"}
    )
    assert wrong.status_code == 401
    # this session survives its own password change: its refresh token still works
    refreshed = client.http.post(
        "/auth/refresh", json={"refresh_token": ada.tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
