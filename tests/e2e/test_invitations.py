"""A team admin cannot conscript people: adding someone to a team takes an invitation that
user accepts, keys billed to a user may be minted by a team admin only for themselves or
for members who joined that way, a key cannot promise more than its team has, and none of
the refusals tells a team admin whether a user id exists. Global admins keep their powers.
Embedded and shared backends alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.test_access import Client, backend, error, start
from tests.e2e.test_auth import Account

__all__ = ["backend", "start"]  # fixtures shared with the access suite

NO_SUCH_USER = "0" * 32


@pytest.fixture
def org(start: Callable[..., Client]) -> dict[str, Any]:
    """Team T with an admin; an outsider with an account; a member added by the global
    admin (so without an invitation)."""
    client = start(allow_registration=True)
    admin = Account(client, "admin@example.com", "Admin")
    outsider = Account(client, "outsider@example.com", "Outsider")
    drafted = Account(client, "drafted@example.com", "Drafted")
    team = client.admin("POST", "/admin/teams", json={"name": "T"}).json()["id"]
    for user, role in ((admin, "admin"), (drafted, "member")):
        put = client.admin("PUT", f"/admin/teams/{team}/members/{user.id}", json={"role": role})
        assert put.status_code == 200, put.text
    return {
        "client": client,
        "team": team,
        "admin": admin,
        "outsider": outsider,
        "drafted": drafted,
    }


def members(org: dict[str, Any]) -> dict[str, dict[str, Any]]:
    client: Client = org["client"]
    team = client.admin("GET", f"/admin/teams/{org['team']}").json()
    return {m["user_id"]: m for m in team["members"]}


def keys_of(org: dict[str, Any]) -> list[dict[str, Any]]:
    client: Client = org["client"]
    listed: list[dict[str, Any]] = client.admin(
        "GET", "/admin/keys", params={"team_id": org["team"]}
    ).json()["data"]
    return listed


def test_a_team_admin_cannot_add_an_outsider_nor_learn_which_ids_exist(
    org: dict[str, Any],
) -> None:
    admin: Account = org["admin"]
    outsider: Account = org["outsider"]
    answers = [
        admin.call("PUT", f"/admin/teams/{org['team']}/members/{user_id}", json={"role": "member"})
        for user_id in (outsider.id, NO_SUCH_USER)
    ]
    assert [a.status_code for a in answers] == [403, 403], [a.text for a in answers]
    assert answers[0].json() == answers[1].json()
    assert "invit" in error(answers[0])["message"]
    assert outsider.id not in members(org)
    assert outsider.get("/api/me").json()["teams"] == []


def test_a_team_admin_mints_keys_only_for_itself_or_invited_members(
    org: dict[str, Any],
) -> None:
    admin: Account = org["admin"]
    team = org["team"]
    refused = [
        admin.call("POST", "/admin/keys", json={"team_id": team, "user_id": user_id})
        for user_id in (org["outsider"].id, NO_SUCH_USER, org["drafted"].id)
    ]
    assert [r.status_code for r in refused] == [403, 403, 403], [r.text for r in refused]
    assert refused[0].json() == refused[1].json() == refused[2].json()
    assert error(refused[0])["param"] == "user_id"
    assert keys_of(org) == []  # nothing was written
    own = admin.call("POST", "/admin/keys", json={"team_id": team, "user_id": admin.id})
    assert own.status_code == 201, own.text
    # a global admin keeps today's powers
    client: Client = org["client"]
    assert client.new_key(team_id=team, user_id=org["drafted"].id)["user_id"] == org["drafted"].id


def test_an_invitation_the_user_accepts_makes_them_a_member_keys_may_bill(
    org: dict[str, Any],
) -> None:
    client: Client = org["client"]
    admin: Account = org["admin"]
    outsider: Account = org["outsider"]
    team = org["team"]
    invited = admin.call(
        "POST", f"/admin/teams/{team}/invitations", json={"email": "Outsider@Example.com"}
    )
    assert invited.status_code == 201, invited.text
    invitation = invited.json()
    assert (invitation["email"], invitation["role"]) == ("outsider@example.com", "member")
    # an address without an account is invited the same way: nothing tells them apart
    nobody = admin.call(
        "POST", f"/admin/teams/{team}/invitations", json={"email": "nobody@example.com"}
    )
    assert nobody.status_code == 201
    assert set(nobody.json()) == set(invitation)
    # an invitation does not make a member; only its user can accept it
    assert outsider.id not in members(org)
    assert (
        admin.call(
            "POST", "/admin/keys", json={"team_id": team, "user_id": outsider.id}
        ).status_code
        == 403
    )
    other = org["drafted"]
    assert other.call("POST", f"/api/invitations/{invitation['id']}/accept").status_code == 404
    assert admin.call("POST", f"/api/invitations/{invitation['id']}/accept").status_code == 404
    pending = outsider.get("/api/invitations").json()["data"]
    assert [(p["id"], p["team_name"], p["role"]) for p in pending] == [
        (invitation["id"], "T", "member")
    ]
    accepted = outsider.call("POST", f"/api/invitations/{invitation['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["team_id"] == team
    assert members(org)[outsider.id] == {
        "user_id": outsider.id,
        "role": "member",
        "by_invitation": True,
        "email": outsider.email,
        "name": "Outsider",
    }
    assert outsider.get("/api/invitations").json()["data"] == []
    again = outsider.call("POST", f"/api/invitations/{invitation['id']}/accept")
    assert again.status_code == 404  # used
    key = admin.call("POST", "/admin/keys", json={"team_id": team, "user_id": outsider.id})
    assert key.status_code == 201, key.text
    assert client.chat(key.json()["key"]).status_code == 200
    # and now, being a member, their role is the team admin's to change (not to owner)
    path = f"/admin/teams/{team}/members/{outsider.id}"
    assert admin.call("PUT", path, json={"role": "viewer"}).status_code == 200
    assert members(org)[outsider.id]["by_invitation"] is True  # a role change keeps it
    assert admin.call("PUT", path, json={"role": "owner"}).status_code == 403


def test_only_owners_invite_owners_and_invitations_are_validated(org: dict[str, Any]) -> None:
    admin: Account = org["admin"]
    path = f"/admin/teams/{org['team']}/invitations"
    owner = admin.call("POST", path, json={"email": "x@example.com", "role": "owner"})
    assert owner.status_code == 403
    for body, param in (
        ({"email": "not-an-address"}, "email"),
        ({"email": "x@example.com", "role": "king"}, "role"),
        ({"email": "x@example.com", "colour": "red"}, "colour"),
    ):
        bad = admin.call("POST", path, json=body)
        assert bad.status_code == 400, (body, bad.text)
        assert error(bad)["param"] == param
    outsider: Account = org["outsider"]
    assert outsider.call("POST", path, json={"email": "x@example.com"}).status_code == 403


def test_a_team_admin_cannot_give_a_key_more_than_the_team_has(org: dict[str, Any]) -> None:
    client: Client = org["client"]
    admin: Account = org["admin"]
    team = org["team"]
    limits = {"rpm": 100, "tpm": 10_000, "max_parallel": 4, "budget_usd": 10}
    assert client.admin("PATCH", f"/admin/teams/{team}", json=limits).status_code == 200
    for field, value in (
        ("rpm", 101),
        ("tpm", 20_000),
        ("max_parallel", 5),
        ("budget_usd", 10.5),
        ("priority", 1),
        ("priority", 2),
    ):
        refused = admin.call("POST", "/admin/keys", json={"team_id": team, field: value})
        assert refused.status_code == 403, (field, refused.text)
        assert error(refused)["param"] == field
    assert keys_of(org) == []
    within = {"rpm": 100, "tpm": 5000, "max_parallel": 4, "budget_usd": 10, "priority": 4}
    made = admin.call("POST", "/admin/keys", json={"team_id": team, **within})
    assert made.status_code == 201, made.text
    # where the team sets nothing (soft budget) there is no ceiling; a global admin has none
    soft = admin.call("POST", "/admin/keys", json={"team_id": team, "soft_budget_usd": 99})
    assert soft.status_code == 201, soft.text
    assert client.new_key(team_id=team, rpm=10_000, priority=1)["priority"] == 1
