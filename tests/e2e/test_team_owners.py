"""A team's owners: only an owner or a global admin may demote or remove one, and a team
that has an owner keeps at least one. Embedded and shared backends alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.test_access import Client, backend, error, start
from tests.e2e.test_auth import Account

__all__ = ["backend", "start"]  # fixtures shared with the access suite


@pytest.fixture
def team(start: Callable[..., Client]) -> dict[str, Any]:
    """A team with an owner, an admin and a member, all put there by the global admin."""
    client = start(allow_registration=True)
    owner = Account(client, "owner@example.com", "Owner")
    admin = Account(client, "admin@example.com", "Admin")
    member = Account(client, "member@example.com", "Member")
    created = client.admin("POST", "/admin/teams", json={"name": "T", "owner_id": owner.id})
    assert created.status_code == 201, created.text
    team_id = created.json()["id"]
    for user, role in ((admin, "admin"), (member, "member")):
        put = client.admin("PUT", f"/admin/teams/{team_id}/members/{user.id}", json={"role": role})
        assert put.status_code == 200, put.text
    return {"client": client, "id": team_id, "owner": owner, "admin": admin, "member": member}


def roles(team: dict[str, Any]) -> dict[str, str]:
    client: Client = team["client"]
    members = client.admin("GET", f"/admin/teams/{team['id']}").json()["members"]
    return {m["user_id"]: m["role"] for m in members}


def test_a_team_admin_cannot_remove_or_demote_the_owner(team: dict[str, Any]) -> None:
    admin: Account = team["admin"]
    owner: Account = team["owner"]
    path = f"/admin/teams/{team['id']}/members/{owner.id}"
    before = roles(team)
    removed = admin.call("DELETE", path)
    assert removed.status_code == 403, removed.text
    assert error(removed)["type"] == "permission_error"
    for role in ("viewer", "member", "admin"):
        demoted = admin.call("PUT", path, json={"role": role})
        assert demoted.status_code == 403, (role, demoted.text)
    assert roles(team) == before  # nothing was written
    # the admin still manages the members who are not owners
    member: Account = team["member"]
    changed = admin.call(
        "PUT", f"/admin/teams/{team['id']}/members/{member.id}", json={"role": "viewer"}
    )
    assert changed.status_code == 200, changed.text
    assert roles(team)[member.id] == "viewer"


def test_a_team_keeps_at_least_one_owner(team: dict[str, Any]) -> None:
    client: Client = team["client"]
    owner: Account = team["owner"]
    admin: Account = team["admin"]
    own_path = f"/admin/teams/{team['id']}/members/{owner.id}"
    # neither the last owner nor a global admin can leave the team without an owner
    for call in (
        lambda: owner.call("PUT", own_path, json={"role": "admin"}),
        lambda: owner.call("DELETE", own_path),
        lambda: client.admin("PUT", own_path, json={"role": "member"}),
        lambda: client.admin("DELETE", own_path),
    ):
        refused = call()
        assert refused.status_code == 409, refused.text
        assert error(refused)["code"] == "last_owner"
    assert roles(team)[owner.id] == "owner"
    # with a second owner, an owner may step down, and an owner may remove another owner
    promoted = owner.call(
        "PUT", f"/admin/teams/{team['id']}/members/{admin.id}", json={"role": "owner"}
    )
    assert promoted.status_code == 200, promoted.text
    assert owner.call("PUT", own_path, json={"role": "member"}).status_code == 200
    assert roles(team)[owner.id] == "member"
    again = admin.call("PUT", own_path, json={"role": "owner"})
    assert again.status_code == 200, again.text
    assert admin.call("DELETE", own_path).status_code == 200
    assert owner.id not in roles(team)
    assert roles(team)[admin.id] == "owner"
