"""The admin API the console stands on: the team list, team-scoped keys (a team admin sees
and touches only their team's, with no count or name of another team leaking), spend per
key, and the admin's MFA reset for a locked-out user. Embedded and shared backends alike."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.conftest import ParleyFactory
from tests.e2e.test_access import ADMIN, Client, backend, error, start
from tests.e2e.test_auth import PASSWORD, Account
from tests.polling import eventually

__all__ = ["backend", "start"]  # fixtures shared with the access suite


@pytest.fixture
def teams(start: Callable[..., Client]) -> dict[str, Any]:
    """Two teams, A and B, each with an admin, a member and a key; A has a third member."""
    client = start(allow_registration=True)
    found: dict[str, Any] = {"client": client}
    for name in ("A", "B"):
        admin = Account(client, f"admin-{name.lower()}@example.com", f"Admin {name}")
        member = Account(client, f"member-{name.lower()}@example.com", f"Member {name}")
        team = client.admin("POST", "/admin/teams", json={"name": name, "owner_id": admin.id})
        assert team.status_code == 201, team.text
        team_id = team.json()["id"]
        put = client.admin(
            "PUT", f"/admin/teams/{team_id}/members/{member.id}", json={"role": "member"}
        )
        assert put.status_code == 200, put.text
        key = client.new_key(team_id=team_id, name=f"key of {name}")
        found[name] = {"id": team_id, "admin": admin, "member": member, "key": key}
    extra = Account(client, "extra-a@example.com", "Extra A")
    client.admin(
        "PUT", f"/admin/teams/{found['A']['id']}/members/{extra.id}", json={"role": "viewer"}
    )
    return found


def test_the_team_list_is_every_team_for_an_admin_and_only_their_own_for_a_team_admin(
    teams: dict[str, Any],
) -> None:
    client: Client = teams["client"]
    everything = client.admin("GET", "/admin/teams").json()["data"]
    assert [(t["name"], t["member_count"]) for t in everything] == [("A", 3), ("B", 2)]
    own = teams["B"]["admin"].call("GET", "/admin/teams")
    assert own.status_code == 200, own.text
    assert [(t["id"], t["name"], t["member_count"]) for t in own.json()["data"]] == [
        (teams["B"]["id"], "B", 2)
    ]
    assert teams["A"]["id"] not in own.text
    refused = teams["B"]["member"].call("GET", "/admin/teams")
    assert refused.status_code == 403
    assert error(refused)["type"] == "permission_error"


def test_a_team_view_names_its_members(teams: dict[str, Any]) -> None:
    view = teams["A"]["admin"].call("GET", f"/admin/teams/{teams['A']['id']}").json()
    assert [(m["email"], m["name"], m["role"]) for m in view["members"]] == [
        ("admin-a@example.com", "Admin A", "owner"),
        ("extra-a@example.com", "Extra A", "viewer"),
        ("member-a@example.com", "Member A", "member"),
    ]


def test_a_team_admin_reaches_only_their_teams_keys(teams: dict[str, Any]) -> None:
    client: Client = teams["client"]
    admin_b: Account = teams["B"]["admin"]
    key_a = teams["A"]["key"]
    own = admin_b.call("GET", "/admin/keys", params={"team_id": teams["B"]["id"]})
    assert own.status_code == 200, own.text
    assert [k["id"] for k in own.json()["data"]] == [teams["B"]["key"]["id"]]
    # Every way at another team's keys is refused, and says nothing about them.
    for method, path, params in (
        ("GET", "/admin/keys", None),
        ("GET", "/admin/keys", {"team_id": teams["A"]["id"]}),
        ("GET", f"/admin/keys/{key_a['id']}", None),
        ("DELETE", f"/admin/keys/{key_a['id']}", None),
        ("POST", f"/admin/keys/{key_a['id']}/rotate", None),
        ("POST", f"/admin/keys/{key_a['id']}/reset-budget", None),
        ("GET", f"/admin/teams/{teams['A']['id']}", None),
    ):
        kwargs: dict[str, Any] = {"params": params} if params else {}
        if method == "POST":
            kwargs["json"] = {}
        refused = admin_b.call(method, path, **kwargs)
        assert refused.status_code in (403, 404), (method, path, refused.text)
        assert "key of A" not in refused.text
        assert key_a["prefix"] not in refused.text
    # nothing was done to A's key: it still answers
    assert client.chat(key_a["key"]).status_code == 200
    # a member of a team administers nothing
    member: Account = teams["B"]["member"]
    listed = member.call("GET", "/admin/keys", params={"team_id": teams["B"]["id"]})
    assert listed.status_code == 403


def test_keys_list_their_spend_this_period(start: Callable[..., Client]) -> None:
    client = start(directive="+tokens-7")  # 7 words at $0.001 each
    key = client.new_key(name="spender", budget_usd=5, budget_period="daily")
    unspent = client.new_key(name="idle")
    assert client.chat(key["key"], max_tokens=7).status_code == 200

    def spent() -> dict[str, float]:
        rows = client.admin("GET", "/admin/keys").json()["data"]
        return {r["name"]: r["spent_usd"] for r in rows}

    eventually(lambda: spent()["spender"] > 0)
    assert spent() == {"spender": pytest.approx(0.007), "idle": 0.0}
    rows = {r["name"]: r for r in client.admin("GET", "/admin/keys").json()["data"]}
    assert rows["spender"]["spend_period"].startswith("d")
    assert rows["idle"]["spend_period"].startswith("m")  # no budget: calendar months
    assert unspent["key"] not in str(rows)


def test_an_admin_resets_a_locked_out_users_mfa(start: Callable[..., Client]) -> None:
    client = start(allow_registration=True)
    ada = Account(client, "ada@example.com")
    enrol = ada.call("POST", "/auth/mfa/enroll").json()
    verified = ada.call(
        "POST", "/auth/mfa/verify", json={"code": pyotp.TOTP(enrol["secret"]).now()}
    )
    assert verified.status_code == 200, verified.text
    challenge = client.http.post("/auth/login", json={"email": ada.email, "password": PASSWORD})
    assert challenge.json()["mfa_required"] is True
    # nobody but a global admin may reset it
    team = client.admin("POST", "/admin/teams", json={"name": "T", "owner_id": ada.id}).json()
    other = Account(client, "other@example.com")
    client.admin("PUT", f"/admin/teams/{team['id']}/members/{other.id}", json={"role": "admin"})
    refused = other.call("POST", f"/admin/users/{ada.id}/mfa-reset")
    assert refused.status_code == 403
    missing = client.admin("POST", "/admin/users/no-such-user/mfa-reset")
    assert missing.status_code == 404
    reset = client.admin("POST", f"/admin/users/{ada.id}/mfa-reset")
    assert reset.status_code == 200, reset.text
    assert reset.json() == {"id": ada.id, "mfa_enabled": False, "was_enabled": True}
    # the sessions from before are over; the password alone signs in now
    assert ada.get("/api/me").status_code == 401
    again = client.http.post("/auth/login", json={"email": ada.email, "password": PASSWORD})
    assert again.status_code == 200, again.text
    assert "access_token" in again.json()
    me = ada.get("/api/me", token=again.json()["access_token"]).json()
    assert me["mfa_enabled"] is False
    assert enrol["secret"] not in reset.text


def test_the_mfa_reset_is_audited(parley: ParleyFactory, tmp_path: Path) -> None:
    client = Client(parley(admin_key=ADMIN, allow_registration=True))
    try:
        ada = Account(client, "ada@example.com")
        assert client.admin("POST", f"/admin/users/{ada.id}/mfa-reset").status_code == 200
    finally:
        client.http.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "parley.db")) as conn:
        rows = conn.execute(
            "SELECT actor, action, target, detail FROM audit_log WHERE action = 'user.mfa_reset'"
        ).fetchall()
    assert rows == [("admin-key", "user.mfa_reset", ada.id, '{"was_enabled": false}')]
