"""The console's read API through real HTTP on the embedded and shared backends: usage
(JSON and CSV), the overview and the audit log, walked as every role (nothing of another
team shows, not even in a total), and two instances writing usage into one rollup."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.test_access import Client, backend, error, start
from tests.e2e.test_auth import PASSWORD, Account
from tests.polling import eventually

__all__ = ["backend", "start"]  # fixtures shared with the access suite

READS = (
    "/admin/usage",
    "/admin/usage.csv",
    "/admin/overview",
    "/admin/cache/hit-rates",
    "/admin/audit",
)


def _totals(client: Client, **params: Any) -> dict[str, Any]:
    answer = client.admin("GET", "/admin/usage", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.fixture
def world(start: Callable[..., Client]) -> dict[str, Any]:
    """Two teams with traffic: A (an owner, a member) sends 3 requests, B (an admin) 2, a
    key of no team 1. Every request costs $0.01."""
    client = start(directive="+tokens-10", allow_registration=True)
    owner = Account(client, "owner-a@example.com", "Owner A")
    member = Account(client, "member-a@example.com", "Member A")
    admin_b = Account(client, "admin-b@example.com", "Admin B")
    boss = Account(client, "boss@example.com", "Boss")
    assert client.admin("PATCH", f"/admin/users/{boss.id}", json={"is_admin": True}).is_success
    team_a = client.admin("POST", "/admin/teams", json={"name": "A", "owner_id": owner.id})
    team_b = client.admin("POST", "/admin/teams", json={"name": "B", "owner_id": boss.id})
    a, b = team_a.json()["id"], team_b.json()["id"]
    for team, user, role in ((a, member, "member"), (b, admin_b, "admin")):
        put = client.admin("PUT", f"/admin/teams/{team}/members/{user.id}", json={"role": role})
        assert put.status_code == 200, put.text
    keys = {
        "a": client.new_key(name="a", team_id=a),
        "b": client.new_key(name="b", team_id=b),
        "none": client.new_key(name="none"),
    }
    for name, count in (("a", 3), ("b", 2), ("none", 1)):
        for _ in range(count):
            assert client.chat(keys[name]["key"], max_tokens=10).status_code == 200
    eventually(lambda: _totals(client)["totals"]["requests"] == 6)
    return {
        "client": client,
        "a": a,
        "b": b,
        "keys": keys,
        "owner": owner,
        "member": member,
        "admin_b": admin_b,
        "boss": boss,
    }


def test_each_role_sees_exactly_its_share_of_usage(world: dict[str, Any]) -> None:
    client: Client = world["client"]
    a, b, keys = world["a"], world["b"], world["keys"]
    everyone = _totals(client, group_by="team")
    assert {r["bucket"]: r["requests"] for r in everyone["data"]} == {a: 3, b: 2, None: 1}
    assert everyone["totals"]["cost_usd"] == pytest.approx(0.06)
    as_boss = world["boss"].call("GET", "/admin/usage", params={"group_by": "team"}).json()
    assert as_boss["data"] == everyone["data"]

    owner: Account = world["owner"]
    mine = owner.call("GET", "/admin/usage", params={"group_by": "team"}).json()
    assert mine["team_id"] == a  # their one team, without asking
    assert [(r["bucket"], r["requests"]) for r in mine["data"]] == [(a, 3)]
    assert mine["totals"]["requests"] == 3
    assert mine["totals"]["cost_usd"] == pytest.approx(0.03)
    by_key = owner.call("GET", "/admin/usage", params={"group_by": "key"}).json()
    assert [r["bucket"] for r in by_key["data"]] == [keys["a"]["id"]]
    # Another team's key as a filter: the team filter still applies, so nothing at all.
    probe = owner.call("GET", "/admin/usage", params={"key_id": keys["b"]["id"]}).json()
    assert probe["data"] == []
    assert probe["totals"]["requests"] == 0
    for path in READS:
        refused = owner.call("GET", path, params={"team_id": b})
        assert refused.status_code == 403, (path, refused.text)
        assert error(refused)["type"] == "permission_error"
    overview = owner.call("GET", "/admin/overview", params={"window": "hour"}).json()
    assert sum(g["requests"] for g in overview["groups"]) == 3
    assert sum(p["requests"] for p in overview["series"]) == 3
    assert overview["breakers"] is None  # deployments are for global admins
    assert overview["totals"]["requests"] == 3
    rates = owner.call("GET", "/admin/cache/hit-rates", params={"window": "hour"}).json()
    assert (rates["team_id"], rates["data"], rates["totals"]["lookups"]) == (a, [], 0)

    admin_b: Account = world["admin_b"]
    theirs = admin_b.call("GET", "/admin/usage", params={"team_id": b}).json()
    assert theirs["totals"]["requests"] == 2
    assert admin_b.call("GET", "/admin/usage", params={"team_id": a}).status_code == 403

    member: Account = world["member"]
    for path in READS:
        assert member.call("GET", path).status_code == 403, path
        assert member.call("GET", path, params={"team_id": a}).status_code == 403, path
        assert client.http.get(path).status_code == 401, path
        as_key = client.http.get(path, headers={"authorization": f"Bearer {keys['a']['key']}"})
        assert as_key.status_code == 403, path

    full = client.admin("GET", "/admin/overview", params={"window": "week"}).json()
    assert full["breakers"] == []
    (group,) = full["groups"]
    assert (group["requests"], group["errors"]) == (6, 0)
    assert group["latency_ms"]["p50"] is not None
    assert group["cost_usd"] == pytest.approx(0.06)
    assert client.admin("GET", "/admin/overview", params={"window": "year"}).status_code == 400


def test_usage_exports_as_csv(world: dict[str, Any]) -> None:
    client: Client = world["client"]
    answer = client.admin("GET", "/admin/usage.csv", params={"group_by": "key"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == (
        'attachment; filename="parley-usage-by-key.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    json_rows = _totals(client, group_by="key")["data"]
    assert [(r["bucket"], int(r["requests"])) for r in rows] == [
        (j["bucket"], j["requests"]) for j in json_rows
    ]
    assert sum(float(r["cost_usd"]) for r in rows) == pytest.approx(0.06)
    same = client.admin("GET", "/admin/usage", params={"group_by": "key", "format": "csv"})
    assert same.text == answer.text
    by_day = client.admin("GET", "/admin/usage.csv", params={"group_by": "day"}).text
    header, first = by_day.splitlines()[:2]
    assert header.startswith("bucket_start,requests,")
    assert first.split(",")[0].endswith("T00:00:00Z")
    owner_csv = world["owner"].call("GET", "/admin/usage.csv", params={"group_by": "team"})
    assert [r["bucket"] for r in csv.DictReader(io.StringIO(owner_csv.text))] == [world["a"]]
    bad = client.admin("GET", "/admin/usage", params={"format": "xml"})
    assert bad.status_code == 400
    assert error(bad)["param"] == "format"


def test_the_audit_log_filters_pages_and_cannot_be_changed(world: dict[str, Any]) -> None:
    client: Client = world["client"]
    a, b = world["a"], world["b"]
    failed = client.http.post(
        "/auth/login", json={"email": "owner-a@example.com", "password": PASSWORD + "x"}
    )
    assert failed.status_code == 401
    logged = client.admin("GET", "/admin/audit", params={"action": "auth.login_failed"}).json()
    assert [(e["actor"], e["ip"]) for e in logged["data"]] == [("anonymous", "127.0.0.1")]
    assert PASSWORD not in str(logged)

    everything = client.admin("GET", "/admin/audit", params={"limit": 1000}).json()["data"]
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True)  # newest first
    walked: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor is not None:
            params["cursor"] = cursor
        page = client.admin("GET", "/admin/audit", params=params).json()
        walked += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == ids
    keys = client.admin("GET", "/admin/audit", params={"action": "key.*"}).json()["data"]
    assert {e["action"] for e in keys} == {"key.create"}
    assert len(keys) == 3
    by_target = client.admin("GET", "/admin/audit", params={"target": a}).json()["data"]
    assert [e["action"] for e in by_target] == ["team.create"]
    assert client.admin("GET", "/admin/audit", params={"cursor": "x"}).status_code == 400

    owner: Account = world["owner"]
    seen = owner.call("GET", "/admin/audit", params={"limit": 1000}).json()["data"]
    assert seen, "a team's owner sees entries about the team"
    about = {e["target"] for e in seen}
    assert a in about
    assert world["keys"]["a"]["id"] in about
    assert not any(b in (e["target"] or "") for e in seen)
    assert world["keys"]["b"]["id"] not in about
    assert "auth.login_failed" not in {e["action"] for e in seen}  # global admins only

    for method in ("POST", "PUT", "PATCH", "DELETE"):
        changed = client.admin(method, "/admin/audit")
        assert changed.status_code == 405, method
    after = client.admin("GET", "/admin/audit", params={"limit": 1000}).json()["data"]
    assert [e["id"] for e in after] == ids


def test_two_instances_writing_usage_see_one_rollup(start: Callable[..., Client]) -> None:
    first = start(directive="+tokens-10")
    second = start(directive="+tokens-10")
    key = first.new_key(name="shared")
    for i in range(10):
        target = first if i % 2 else second
        assert target.chat(key["key"], max_tokens=10).status_code == 200
    eventually(lambda: _totals(first)["totals"]["requests"] == 10)
    for client in (first, second):
        report = _totals(client, group_by="key")
        assert [(r["bucket"], r["requests"]) for r in report["data"]] == [(key["id"], 10)]
        assert report["totals"]["cost_usd"] == pytest.approx(0.10)
        hours = _totals(client, group_by="hour")["data"]
        assert sum(h["requests"] for h in hours) == 10
