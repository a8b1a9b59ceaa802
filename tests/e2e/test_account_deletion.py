"""Account export and deletion through HTTP, on SQLite and PostgreSQL (+ Redis).

One user is given data in every corner Parley has (sessions, a passkey, a personal key
and its usage, a stored ``/v1/responses`` answer, a conversation with its events, search
rows and outbox, a share link, a preset, a team membership by invitation, audit
entries), exports it, and deletes the account. Then every table in the database, as the
database itself lists them (not the metadata: FTS shadow tables count), is read whole
and searched for the user's id, email, name and words.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, literal_column, select, table, text

from parley.config import Settings
from parley.store.db import Database
from parley.testing.webauthn import SoftAuthenticator
from tests.e2e.test_access import Client, backend, error, start
from tests.e2e.test_auth import PASSWORD, Account
from tests.polling import eventually

__all__ = ["backend", "start"]

MARKER = "quokkazebra"  # words of the user's that nothing else in the suite says
NAME = "Zelda Quuxley"


@pytest.fixture
def client(start: Callable[..., Client]) -> Client:
    return start(allow_registration=True)


def _database_url(backend: dict[str, Any], tmp_path: Path) -> str:
    url = backend.get("database_url") or f"sqlite:///{tmp_path}/parley.db"
    return Settings(database_url=url).database_url  # with the async driver the app uses


async def leftovers(url: str, needles: list[str]) -> dict[str, list[str]]:
    """Every table the database holds, read whole: which needles each row still holds."""
    db = Database(url)
    found: dict[str, list[str]] = {}
    try:
        async with db.read() as conn:
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            assert {"users", "events", "passkeys", "message_search"} <= set(names)
            for name in names:
                rows = await conn.execute(select(literal_column("*")).select_from(table(name)))
                for row in rows:
                    cells = " ".join(
                        v.decode("utf-8", "ignore") if isinstance(v, bytes) else str(v) for v in row
                    ).lower()
                    hits = [n for n in needles if n.lower() in cells]
                    if hits:
                        found.setdefault(name, []).append(f"{hits}: {cells[:300]}")
    finally:
        await db.close()
    return found


def _populate(client: Client, ada: Account, key: SoftAuthenticator) -> tuple[str, str]:
    """Give ``ada`` data everywhere; returns her conversation's id and her API key."""
    options = ada.call("POST", "/auth/passkeys/register/options").json()
    made = ada.call(
        "POST", "/auth/passkeys/register", json={"credential": key.create(options), "name": MARKER}
    )
    assert made.status_code == 201, made.text
    team = client.admin("POST", "/admin/teams", json={"name": "Analytical Engines"}).json()
    invited = client.admin(
        "POST", f"/admin/teams/{team['id']}/invitations", json={"email": ada.email}
    ).json()
    assert ada.call("POST", f"/api/invitations/{invited['id']}/accept").status_code == 200
    personal = client.new_key(name=f"{MARKER} key", user_id=ada.id)
    asked = client.http.post(
        "/v1/chat/completions",
        json={"model": "openai", "messages": [{"role": "user", "content": MARKER}]},
        headers={"authorization": f"Bearer {personal['key']}"},
    )
    assert asked.status_code == 200, asked.text
    stored = client.http.post(
        "/v1/responses",
        json={"model": "openai", "input": f"remember {MARKER}", "store": True},
        headers={"authorization": f"Bearer {personal['key']}"},
    )
    assert stored.status_code == 200, stored.text
    cid = ada.call("POST", "/api/conversations", json={"model": "openai"}).json()["id"]
    ada.call("PATCH", f"/api/conversations/{cid}", json={"title": f"About {MARKER}"})
    sent = ada.call("POST", f"/api/conversations/{cid}/messages", json={"content": f"hi {MARKER}"})
    assert sent.status_code == 200, sent.text
    share = ada.call("POST", f"/api/conversations/{cid}/shares", json={"display_name": NAME})
    assert share.status_code in (200, 201), share.text
    preset = ada.call("POST", "/api/presets", json={"name": MARKER, "settings": {}})
    assert preset.status_code in (200, 201), preset.text
    return str(cid), str(personal["key"])


def test_export_then_delete_leaves_nothing_of_the_user_in_any_table(
    client: Client, backend: dict[str, Any], tmp_path: Path
) -> None:
    ada = Account(client, f"{MARKER}@example.com", NAME)
    key = SoftAuthenticator(client.url)
    cid, personal = _populate(client, ada, key)
    bob = Account(client, "bob@example.com", "Bob")
    bobs = bob.call("POST", "/api/conversations", json={"model": "openai"}).json()["id"]
    bob.call("POST", f"/api/conversations/{bobs}/messages", json={"content": "bob's words"})

    def billed() -> bool:
        rows = client.admin("GET", "/admin/usage", params={"group_by": "user"}).json()["data"]
        return any(r["bucket"] == ada.id and r["requests"] >= 3 for r in rows)

    eventually(billed)

    exported = ada.get("/api/account/export")
    assert exported.status_code == 200
    assert "attachment" in exported.headers["content-disposition"]
    data = exported.json()
    assert data["profile"]["email"] == ada.email
    assert [c["conversation"]["id"] for c in data["conversations"]] == [cid]
    texts = json.dumps(data["conversations"])
    assert f"hi {MARKER}" in texts
    assert [p["name"] for p in data["passkeys"]] == [MARKER]
    assert len(data["usage"]) >= 3
    assert data["teams"][0]["role"] == "member"
    assert [p["name"] for p in data["presets"]] == [MARKER]
    assert data["shares"][0]["conversation_id"] == cid
    assert "key_hash" not in json.dumps(data["api_keys"])

    wrong = ada.call(
        "POST", "/api/account/delete", json={"confirm": "bob@example.com", "password": PASSWORD}
    )
    assert wrong.status_code == 400
    assert error(wrong)["param"] == "confirm"
    bad = ada.call("POST", "/api/account/delete", json={"confirm": ada.email, "password": "nope"})
    assert bad.status_code == 401
    options = ada.call("POST", "/api/account/reauth/options").json()
    deleted = ada.call(
        "POST",
        "/api/account/delete",
        json={"confirm": ada.email, "credential": key.get(options)},
    )
    assert deleted.status_code == 200, deleted.text

    assert ada.get("/api/me").status_code == 401  # every session ended
    again = client.http.post("/auth/login", json={"email": ada.email, "password": PASSWORD})
    assert again.status_code == 401
    assert client.chat(personal).status_code == 401

    needles = [ada.id, ada.email, NAME, MARKER]
    found = asyncio.run(leftovers(_database_url(backend, tmp_path), needles))
    assert found == {}, json.dumps(found, indent=1)

    # Nobody else lost anything; the team's spend stays counted, with no one named.
    assert bob.get(f"/api/conversations/{bobs}").status_code == 200
    rows = client.admin("GET", "/admin/usage", params={"group_by": "user"}).json()["data"]
    assert sum(r["requests"] for r in rows) >= 4
    audit = asyncio.run(_audit_actions(_database_url(backend, tmp_path)))
    assert "user.deleted" in audit


async def _audit_actions(url: str) -> list[str]:
    db = Database(url)
    try:
        async with db.read() as conn:
            return list((await conn.execute(text("SELECT action FROM audit_log"))).scalars())
    finally:
        await db.close()
