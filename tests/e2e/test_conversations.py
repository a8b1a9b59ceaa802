"""Conversations over ``/api/conversations`` on SQLite and PostgreSQL: the event log and its
read models, cursor pagination, branches, 404 for anyone else's conversation, 409 for a
write that lost a race, and rebuilt read models equal to the live ones."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select, text

from parley.api import conversations as conversations_api
from parley.app import create_app
from parley.chat.conversations import Conversations
from parley.chat.purge import purge
from parley.config import Settings
from parley.store.db import Database
from parley.store.tables import conversations, events, messages
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, fake_models, serve_in_thread
from tests.backends import sqlite_url
from tests.e2e.test_access import Client, backend, start
from tests.e2e.test_account_deletion import leftovers
from tests.e2e.test_auth import Account
from tests.polling import eventually

__all__ = ["backend", "start"]  # fixtures shared with the access suite
FORGED = "0" * 32


@pytest.fixture
def client(start: Callable[..., Client]) -> Client:
    return start(allow_registration=True)


def accounts(client: Client) -> tuple[Account, Account]:
    return Account(client, "ada@example.com"), Account(client, "bob@example.com", "Bob")


def test_create_list_rename_archive_and_delete(client: Client) -> None:
    ada, _ = accounts(client)
    created = ada.call("POST", "/api/conversations", json={"title": "Plans", "model": "openai"})
    assert created.status_code == 201, created.text
    conversation = created.json()
    assert (conversation["title"], conversation["version"]) == ("Plans", 1)
    untitled = ada.call("POST", "/api/conversations", json={}).json()
    assert untitled["title"] == "New conversation"

    renamed = ada.call(
        "PATCH", f"/api/conversations/{conversation['id']}", json={"title": "Trip plans"}
    )
    assert renamed.json()["title"] == "Trip plans"
    listed = ada.get("/api/conversations").json()["data"]
    assert [c["id"] for c in listed] == [conversation["id"], untitled["id"]]  # by activity

    ada.call("PATCH", f"/api/conversations/{untitled['id']}", json={"archived": True})
    assert [c["id"] for c in ada.get("/api/conversations").json()["data"]] == [conversation["id"]]
    archived = ada.get("/api/conversations?archived=true").json()["data"]
    assert [c["id"] for c in archived] == [untitled["id"]]

    ada.call("PATCH", f"/api/conversations/{conversation['id']}", json={"tags": ["travel"]})
    tagged = ada.get("/api/conversations?tag=travel").json()["data"]
    assert [c["tags"] for c in tagged] == [["travel"]]
    too_long = ada.call(
        "PATCH", f"/api/conversations/{conversation['id']}", json={"tags": ["ok", "x" * 41]}
    )
    assert too_long.status_code == 400
    assert too_long.json()["error"]["param"] == "tags.1"
    blank = ada.call("PATCH", f"/api/conversations/{conversation['id']}", json={"tags": ["  "]})
    assert blank.status_code == 400
    assert ada.get("/api/conversations?tag=travel").json()["data"][0]["tags"] == ["travel"]

    assert ada.call("DELETE", f"/api/conversations/{conversation['id']}").status_code == 204
    assert ada.get(f"/api/conversations/{conversation['id']}").status_code == 404
    assert ada.get("/api/conversations").json()["data"] == []


def test_cursor_pagination_visits_every_conversation_once(client: Client) -> None:
    ada, _ = accounts(client)
    made = {ada.call("POST", "/api/conversations", json={}).json()["id"] for _ in range(7)}
    seen: list[str] = []
    cursor = None
    while True:
        query = "/api/conversations?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = ada.get(query).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made)
    assert len(seen) == len(set(seen))
    bad = ada.get("/api/conversations?cursor=not-a-cursor")
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "cursor"


ROUTE_BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("GET", "/export"): None,
    ("GET", ""): None,
    ("PATCH", ""): {"title": "mine now"},
    ("DELETE", ""): None,
    ("POST", "/branch"): {"leaf_id": "{message_id}"},
    ("POST", "/messages"): {"content": "hijack"},
    ("GET", "/messages/{message_id}/stream"): None,
    ("POST", "/messages/{message_id}/stop"): None,
    ("POST", "/messages/{message_id}/edit"): {"content": "hijack"},
    ("POST", "/messages/{message_id}/regenerate"): {},
    ("POST", "/fork"): {"message_id": "{message_id}"},
    ("POST", "/shares"): {},
    ("GET", "/shares"): None,
    ("DELETE", "/shares/{share_id}"): None,
}
"""Every route under ``/api/conversations/{conversation_id}``, with a body that would be
valid for the owner: a new route fails the test below until it is listed here."""


def test_every_route_answers_404_for_another_users_or_a_forged_conversation(
    client: Client,
) -> None:
    ada, bob = accounts(client)
    mine = ada.call("POST", "/api/conversations", json={"title": "secret", "model": "openai"})
    cid = mine.json()["id"]
    done = events_of(
        ada.call("POST", f"/api/conversations/{cid}/messages", json={"content": "secret"}).text
    )[-1]
    share_id = ada.call("POST", f"/api/conversations/{cid}/shares", json={}).json()["id"]
    ids = {"message_id": done["message_id"], "share_id": share_id}
    prefix = "/api/conversations/{conversation_id}"
    routes = [
        (method, route.path.removeprefix(prefix))
        for route in conversations_api.router.routes
        if isinstance(route, APIRoute) and route.path.startswith(prefix)
        for method in route.methods
    ]
    assert sorted(routes) == sorted(ROUTE_BODIES), "list each conversation route's body"
    for (method, suffix), body in ROUTE_BODIES.items():
        filled = json.loads(json.dumps(body).replace("{message_id}", ids["message_id"]))
        for who, target in ((bob, cid), (ada, FORGED)):
            path = f"/api/conversations/{target}{suffix}".format(**ids)
            response = who.call(method, path, json=filled)
            assert response.status_code == 404, (method, path, response.text)
            assert "secret" not in response.text
    assert ada.get(f"/api/conversations/{cid}").json()["title"] == "secret"
    assert ada.get(f"/api/conversations/{cid}").json()["message_count"] == 2
    assert len(ada.get(f"/api/conversations/{cid}/shares").json()["data"]) == 1
    assert bob.get("/api/conversations").json()["data"] == []
    assert client.http.get("/api/conversations").status_code == 401


def test_a_write_with_a_stale_version_gets_409_and_changes_nothing(
    client: Client,
) -> None:
    ada, _ = accounts(client)
    conversation = ada.call("POST", "/api/conversations", json={}).json()
    path = f"/api/conversations/{conversation['id']}"
    first = ada.call("PATCH", path, json={"title": "one", "expected_version": 1})
    assert first.status_code == 200
    stale = ada.call("PATCH", path, json={"title": "two", "expected_version": 1})
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "conversation_changed"
    assert ada.get(path).json()["title"] == "one"


def test_concurrent_writers_one_wins_one_gets_409_and_the_log_has_no_gap(
    client: Client,
) -> None:
    ada, _ = accounts(client)
    conversation = ada.call("POST", "/api/conversations", json={}).json()
    path = f"/api/conversations/{conversation['id']}"

    def write(title: str) -> int:
        body = {"title": title, "expected_version": 1}
        return ada.call("PATCH", path, json=body).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(write, [f"title {i}" for i in range(8)]))
    assert sorted(codes) == [200] + [409] * 7
    final = ada.get(path).json()
    assert final["version"] == 2


async def _log_and_models(url: str) -> tuple[list[Any], ...]:
    db = Database(url)
    try:
        async with db.read() as conn:
            log = [tuple(r) for r in await conn.execute(select(events).order_by(events.c.id))]
            convs = [tuple(r) for r in await conn.execute(select(conversations).order_by("id"))]
            msgs = [tuple(r) for r in await conn.execute(select(messages).order_by("id"))]
            query = "SELECT owner_id, conversation_id, message_id, kind, body FROM message_search"
            found = sorted(tuple(str(v) for v in r) for r in await conn.execute(text(query)))
        return log, convs, msgs, found
    finally:
        await db.close()


def test_rebuilt_read_models_equal_the_live_ones(backend: dict[str, Any], tmp_path: Any) -> None:
    url = Settings(
        database_url=backend.get("database_url") or f"sqlite:///{tmp_path}/rebuild.db"
    ).database_url

    async def scenario() -> tuple[Any, Any]:
        from parley.store import migrate  # noqa: PLC0415

        db = Database(url)
        await migrate.upgrade(db)
        async with db.write() as conn:
            from parley.store.tables import users  # noqa: PLC0415

            await conn.execute(
                users.insert().values(
                    id="u" * 32,
                    email="u@example.com",
                    name="U",
                    password_hash="x",
                    is_admin=False,
                    disabled=False,
                    mfa_enabled=False,
                    created_ms=0,
                )
            )
        chat = Conversations(db)
        owner = "u" * 32
        a = await chat.create(owner, title="a")
        b = await chat.create(owner, title="b")
        q = await chat.add_message(
            owner, a["id"], role="user", content=[{"type": "text", "text": "hi"}]
        )
        r1 = await chat.add_message(
            owner, a["id"], role="assistant", content=[{"type": "text", "text": "one"}]
        )
        await chat.add_message(  # a regenerated answer: a sibling branch under the question
            owner,
            a["id"],
            role="assistant",
            content=[{"type": "text", "text": "two"}],
            parent_id=q["id"],
        )
        await chat.select_branch(owner, a["id"], r1["id"])
        await chat.update(owner, b["id"], {"pinned": True, "tags": ["x"]})
        await chat.rename(owner, b["id"], "b2")
        await chat.delete(owner, b["id"])
        page, _ = await chat.branch(owner, a["id"])
        assert [m["content"][0]["text"] for m in page] == ["hi", "one"]
        await db.close()
        live = await _log_and_models(url)
        db = Database(url)
        replayed = await Conversations(db).rebuild_projections()
        await db.close()
        assert replayed == len(live[0])
        assert len(live[3]) == 4  # a's title and three messages (b was deleted)
        return live, await _log_and_models(url)

    live, rebuilt = asyncio.run(scenario())
    assert rebuilt == live


# --- sending messages: answers generated through the gateway ------------------------------

SLOW = "+tokens-30+chunk-delay-0.05"


def events_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def answer_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["content"] for e in events if e["type"] == "delta")


def new_conversation(account: Account) -> str:
    created = account.call("POST", "/api/conversations", json={"model": "openai"})
    return str(created.json()["id"])


def test_a_message_streams_its_answer_and_both_are_saved_on_the_branch(
    start: Callable[..., Client], fake: FakeUpstream
) -> None:
    client = start(allow_registration=True)
    ada, _ = accounts(client)
    cid = new_conversation(ada)
    sent = ada.call("POST", f"/api/conversations/{cid}/messages", json={"content": "hello there"})
    assert sent.status_code == 200, sent.text
    assert sent.headers["content-type"].startswith("text/event-stream")
    events = events_of(sent.text)
    assert events[0]["type"] == "start"
    done = events[-1]
    assert done["type"] == "done"
    assert done["status"] == "complete"
    assert answer_text(events)
    conversation = ada.get(f"/api/conversations/{cid}").json()
    assert [m["role"] for m in conversation["messages"]] == ["user", "assistant"]
    assert conversation["messages"][1]["id"] == done["message_id"]
    assert conversation["messages"][1]["content"][0]["text"] == answer_text(events)
    assert conversation["current_leaf_id"] == done["message_id"]

    ada.call("POST", f"/api/conversations/{cid}/messages", json={"content": "and then?"})
    history = fake.calls[-1].body["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    assert history[0]["content"] == "hello there"

    def billed() -> bool:
        rows = client.admin("GET", "/admin/usage", params={"group_by": "user"}).json()["data"]
        return any(r["bucket"] == ada.id and r["requests"] == 2 for r in rows)

    eventually(billed)


def leave_early(client: Client, account: Account, cid: str, *, until: str) -> str:
    """Send a message, read its answer up to the first ``until`` event, then disconnect;
    returns the answer's message id."""
    headers = {"authorization": f"Bearer {account.tokens['access_token']}"}
    path = f"/api/conversations/{cid}/messages"
    message_id = ""
    with client.http.stream("POST", path, json={"content": "go"}, headers=headers) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                message_id = event.get("message_id", message_id)
                if event["type"] == until:
                    break
    return message_id


def test_an_answer_survives_the_client_leaving_and_can_be_followed_again(
    start: Callable[..., Client],
) -> None:
    client = start(directive=SLOW, allow_registration=True)
    ada, _ = accounts(client)
    cid = new_conversation(ada)
    message_id = leave_early(client, ada, cid, until="start")  # left after one event
    followed = events_of(ada.get(f"/api/conversations/{cid}/messages/{message_id}/stream").text)
    assert followed[0]["type"] == "start"  # from the start, although it joined late
    assert followed[-1]["status"] == "complete"
    assert len(answer_text(followed).split()) == 30
    saved = ada.get(f"/api/conversations/{cid}").json()["messages"][-1]
    assert saved["id"] == message_id
    assert saved["status"] == "complete"
    assert saved["content"][0]["text"] == answer_text(followed)
    again = events_of(ada.get(f"/api/conversations/{cid}/messages/{message_id}/stream").text)
    assert answer_text(again) == answer_text(followed)  # after the end: the saved message


def test_stop_saves_what_was_generated_so_far(start: Callable[..., Client]) -> None:
    client = start(directive=SLOW, allow_registration=True)
    ada, _ = accounts(client)
    cid = new_conversation(ada)
    message_id = leave_early(client, ada, cid, until="delta")
    stopped = ada.call("POST", f"/api/conversations/{cid}/messages/{message_id}/stop")
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert body["status"] == "stopped"
    words = len(body["content"][0]["text"].split())
    assert 0 < words < 30


def test_message_routes_answer_404_for_anyone_else(start: Callable[..., Client]) -> None:
    client = start(allow_registration=True)
    ada, bob = accounts(client)
    cid = new_conversation(ada)
    done = events_of(
        ada.call("POST", f"/api/conversations/{cid}/messages", json={"content": "mine"}).text
    )[-1]
    mid = done["message_id"]
    for method, path, body in (
        ("POST", f"/api/conversations/{cid}/messages", {"content": "hijack"}),
        ("GET", f"/api/conversations/{cid}/messages/{mid}/stream", None),
        ("POST", f"/api/conversations/{cid}/messages/{mid}/stop", None),
        ("GET", f"/api/conversations/{FORGED}/messages/{mid}/stream", None),
    ):
        response = bob.call(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert "mine" not in response.text
    assert ada.get(f"/api/conversations/{cid}").json()["message_count"] == 2


def send(account: Account, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Post to a route that answers with an SSE answer; returns its ``done`` event."""
    response = account.call("POST", path, json=body or {})
    assert response.status_code == 200, response.text
    done = events_of(response.text)[-1]
    assert done["status"] == "complete", response.text
    return done


def texts(account: Account, cid: str, query: str = "") -> list[str]:
    messages = account.get(f"/api/conversations/{cid}{query}").json()["messages"]
    return [m["content"][0]["text"] for m in messages]


def test_regenerate_edit_select_and_fork_make_and_move_between_branches(
    start: Callable[..., Client], fake: FakeUpstream
) -> None:
    client = start(allow_registration=True)
    ada, _ = accounts(client)
    cid = new_conversation(ada)
    base = f"/api/conversations/{cid}"
    first = send(ada, f"{base}/messages", {"content": "question one"})
    a1, q1 = first["message_id"], first["user_message_id"]

    again = send(ada, f"{base}/messages/{a1}/regenerate")
    assert again["user_message_id"] == q1  # no new question: a sibling answer
    assert fake.calls[-1].body["messages"] == [{"role": "user", "content": "question one"}]
    assert ada.get(base).json()["current_leaf_id"] == again["message_id"]
    ada.call("POST", f"{base}/branch", json={"leaf_id": a1})
    assert ada.get(base).json()["messages"][-1]["id"] == a1

    edited = send(ada, f"{base}/messages/{q1}/edit", {"content": "question one, better"})
    assert edited["user_message_id"] != q1
    assert texts(ada, cid)[0] == "question one, better"  # a new root branch is current
    assert fake.calls[-1].body["messages"] == [{"role": "user", "content": "question one, better"}]

    forked = ada.call("POST", f"{base}/fork", json={"message_id": a1})
    assert forked.status_code == 201, forked.text
    fork = forked.json()
    copies = ada.get(f"/api/conversations/{fork['id']}").json()["messages"]
    assert [m["role"] for m in copies] == ["user", "assistant"]
    assert copies[0]["content"][0]["text"] == "question one"
    assert {m["id"] for m in copies}.isdisjoint({q1, a1})
    assert ada.get(base).json()["message_count"] == 5  # the original is untouched

    assert ada.call("POST", f"{base}/messages/{q1}/regenerate").status_code == 400
    assert ada.call("POST", f"{base}/messages/{a1}/edit", json={"content": "x"}).status_code == 400


def test_versions_are_listed_and_a_version_shows_its_newest_branch(
    start: Callable[..., Client],
) -> None:
    """Each message on a page names its versions (siblings, oldest first); choosing a version
    by ``message_id`` shows the branch last worked on under it, not the version alone."""
    client = start(allow_registration=True)
    ada, _ = accounts(client)
    cid = new_conversation(ada)
    base = f"/api/conversations/{cid}"
    first = send(ada, f"{base}/messages", {"content": "question one"})
    q1, a1 = first["user_message_id"], first["message_id"]
    second = send(ada, f"{base}/messages", {"content": "question two"})
    a2 = second["message_id"]
    edited = send(ada, f"{base}/messages/{q1}/edit", {"content": "question one, better"})
    q1b = edited["user_message_id"]

    page = ada.get(base).json()["messages"]
    assert [m["id"] for m in page] == [q1b, edited["message_id"]]
    assert page[0]["version_ids"] == [q1, q1b]  # both versions of the first question
    assert page[1]["version_ids"] == [edited["message_id"]]

    chosen = ada.call("POST", f"{base}/branch", json={"message_id": q1})
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["current_leaf_id"] == a2  # the whole older branch, to its end
    assert [m["id"] for m in ada.get(base).json()["messages"]][-2:] == [
        second["user_message_id"],
        a2,
    ]
    assert a1 in [m["id"] for m in ada.get(base).json()["messages"]]

    both = ada.call("POST", f"{base}/branch", json={"message_id": q1, "leaf_id": a1})
    assert both.status_code == 400
    unknown = ada.call("POST", f"{base}/branch", json={"message_id": "msg_nope"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["param"] == "message_id"


def test_a_branch_is_read_a_page_at_a_time(start: Callable[..., Client]) -> None:
    client = start(allow_registration=True)
    ada, _ = accounts(client)
    cid = new_conversation(ada)
    for n in range(3):
        send(ada, f"/api/conversations/{cid}/messages", {"content": f"q{n}"})
    newest = ada.get(f"/api/conversations/{cid}?limit=4").json()
    assert [m["role"] for m in newest["messages"]] == ["user", "assistant"] * 2
    assert newest["messages"][0]["content"][0]["text"] == "q1"
    older = ada.get(f"/api/conversations/{cid}?limit=4&before={newest['next_before']}").json()
    assert older["messages"][0]["content"][0]["text"] == "q0"
    assert len(older["messages"]) == 2
    assert older["next_before"] is None
    missing = ada.get(f"/api/conversations/{cid}?before={FORGED}")
    assert missing.status_code == 404


def test_export_is_lossless_and_reimports_with_every_branch(start: Callable[..., Client]) -> None:
    client = start(allow_registration=True)
    ada, bob = accounts(client)
    cid = new_conversation(ada)
    base = f"/api/conversations/{cid}"
    first = send(ada, f"{base}/messages", {"content": "question one"})
    send(ada, f"{base}/messages/{first['message_id']}/regenerate")  # a second branch
    exported = ada.get(f"{base}/export")
    assert exported.status_code == 200
    assert "attachment" in exported.headers["content-disposition"]
    dump = exported.json()
    assert len(dump["messages"]) == 3  # both answers: every branch

    imported = ada.call("POST", "/api/conversations/import", json=dump)
    assert imported.status_code == 201, imported.text
    copy = imported.json()
    assert copy["id"] != cid
    assert copy["message_count"] == 3
    assert texts(ada, copy["id"]) == texts(ada, cid)  # the same current branch
    again = ada.get(f"/api/conversations/{copy['id']}/export").json()
    strip = [(m["role"], m["content"], m["status"]) for m in dump["messages"]]
    assert [(m["role"], m["content"], m["status"]) for m in again["messages"]] == strip

    page = ada.get(f"{base}/export?format=markdown")
    assert page.headers["content-type"].startswith("text/markdown")
    assert "question one" in page.text
    assert page.text.startswith("# ")

    broken = {**dump, "messages": [{**dump["messages"][1], "parent_id": "nowhere"}]}
    refused = ada.call("POST", "/api/conversations/import", json=broken)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "messages[0]"
    assert bob.get(f"{base}/export").status_code == 404
    assert ada.get(f"{base}/export?format=pdf").status_code == 400


def chatgpt_node(
    node_id: str,
    parent: str | None,
    children: list[str],
    role: str | None,
    parts: list[Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One node of ChatGPT's ``conversations.json`` mapping, as its export writes it."""
    message = None
    if role is not None:
        message = {
            "id": node_id,
            "author": {"role": role, "name": None, "metadata": {}},
            "create_time": 1700000000.0,
            "content": {
                "content_type": extra.pop("content_type", "text"),
                "parts": parts or [""],
            },
            "status": "finished_successfully",
            "metadata": extra.pop("metadata", {}),
            "recipient": extra.pop("recipient", "all"),
        }
    return {"id": node_id, "message": message, "parent": parent, "children": children}


CHATGPT_EXPORT = [
    {
        "title": "Trip to Lisbon",
        "create_time": 1700000000.0,
        "current_node": "a2",
        "default_model_slug": "gpt-4o",
        "mapping": {
            "root": chatgpt_node("root", None, ["sys"], None),
            "sys": chatgpt_node(
                "sys",
                "root",
                ["u1", "u1b"],
                "system",
                metadata={"is_visually_hidden_from_conversation": True},
            ),
            "u1": chatgpt_node("u1", "sys", ["a1"], "user", ["Plan three days in Lisbon"]),
            "a1": chatgpt_node(
                "a1", "u1", [], "assistant", ["Day one: Alfama"], metadata={"model_slug": "gpt-4o"}
            ),
            # the user edited the question: a second branch, the current one
            "u1b": chatgpt_node(
                "u1b",
                "sys",
                ["call"],
                "user",
                [
                    "Plan two days in Lisbon",
                    {
                        "content_type": "image_asset_pointer",
                        "asset_pointer": "file-service://file-abc",
                    },
                ],
                content_type="multimodal_text",
            ),
            "call": chatgpt_node(
                "call", "u1b", ["tool"], "assistant", ['{"q": "lisbon"}'], recipient="browser"
            ),
            "tool": chatgpt_node("tool", "call", ["a2"], "tool", ["search results"]),
            "a2": chatgpt_node(
                "a2", "tool", [], "assistant", ["Day one: Belém"], metadata={"model_slug": "gpt-4o"}
            ),
        },
    },
    {
        "title": "Second",
        "current_node": "q",
        "mapping": {"q": chatgpt_node("q", None, [], "user", ["hello"])},
    },
]


def test_chatgpt_conversations_json_imports_with_its_branches(
    start: Callable[..., Client],
) -> None:
    client = start(allow_registration=True)
    ada, _ = accounts(client)
    imported = ada.call("POST", "/api/conversations/import", json=CHATGPT_EXPORT)
    assert imported.status_code == 201, imported.text
    made = imported.json()["data"]
    assert [c["title"] for c in made] == ["Trip to Lisbon", "Second"]
    trip = made[0]
    assert trip["message_count"] == 4  # the hidden system prompt and the tool traffic dropped
    branch = ada.get(f"/api/conversations/{trip['id']}").json()["messages"]
    assert [(m["role"], m["content"]) for m in branch] == [
        (
            "user",
            [
                {"type": "text", "text": "Plan two days in Lisbon"},
                {"type": "image", "url": "file-service://file-abc"},
            ],
        ),
        ("assistant", [{"type": "text", "text": "Day one: Belém"}]),
    ]
    assert branch[1]["model"] == "gpt-4o"
    assert branch[1]["parent_id"] == branch[0]["id"]  # past the tool call it hung from
    everything = ada.get(f"/api/conversations/{trip['id']}/export").json()["messages"]
    firsts = [m for m in everything if m["role"] == "user"]
    assert len(firsts) == 2
    assert {m["parent_id"] for m in firsts} == {None}  # siblings: the edit is a branch
    assert texts(ada, made[1]["id"]) == ["hello"]

    before = len(ada.get("/api/conversations").json()["data"])
    broken = [CHATGPT_EXPORT[1], {"title": "bad", "mapping": {"x": "not a node"}}]
    refused = ada.call("POST", "/api/conversations/import", json=broken)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "[1]"
    assert len(ada.get("/api/conversations").json()["data"]) == before  # all or nothing
    parley = ada.get(f"/api/conversations/{made[1]['id']}/export").json()
    parley["messages"][0]["content"] = [{"type": "video", "url": "x"}]
    refused = ada.call("POST", "/api/conversations/import", json=parley)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "messages[0].content[0].type"


def test_a_share_link_shows_a_snapshot_only_until_revoked(start: Callable[..., Client]) -> None:
    client = start(allow_registration=True)
    ada, bob = accounts(client)
    cid = new_conversation(ada)
    base = f"/api/conversations/{cid}"
    first = send(ada, f"{base}/messages", {"content": "shared question"})
    send(ada, f"{base}/messages/{first['message_id']}/regenerate")  # current: 2nd answer
    made = ada.call("POST", f"{base}/shares", json={"display_name": "A. L."})
    assert made.status_code == 201, made.text
    link = made.json()
    assert "token" in link
    current = texts(ada, cid)

    anonymous = client.http.get(link["path"])  # no credentials at all
    assert anonymous.status_code == 200
    shared = anonymous.json()
    assert shared["shared_by"] == "A. L."
    assert [m["content"][0]["text"] for m in shared["messages"]] == current
    assert "ada@example.com" not in anonymous.text
    assert ada.id not in anonymous.text
    assert cid not in anonymous.text
    assert first["message_id"] not in anonymous.text  # the other branch stays private

    send(ada, f"{base}/messages", {"content": "said after sharing"})
    assert "said after sharing" not in client.http.get(link["path"]).text  # a snapshot

    older = ada.call(
        "POST", f"{base}/shares", json={"message_id": first["message_id"], "expires_in_days": 1}
    ).json()
    chosen = client.http.get(older["path"]).json()["messages"]
    assert chosen[-1]["content"][0]["text"] == texts_of_message(ada, cid, first["message_id"])

    assert bob.call("POST", f"{base}/shares", json={}).status_code == 404
    assert bob.call("DELETE", f"{base}/shares/{link['id']}").status_code == 404
    assert [s["id"] for s in ada.get(f"{base}/shares").json()["data"]] == [link["id"], older["id"]]
    assert ada.call("DELETE", f"{base}/shares/{link['id']}").status_code == 204
    assert client.http.get(link["path"]).status_code == 404
    assert client.http.get("/api/shared/not-a-token").status_code == 404
    ada.call("DELETE", base)
    assert client.http.get(older["path"]).status_code == 404  # deleted conversation


def texts_of_message(account: Account, cid: str, message_id: str) -> str:
    events = events_of(account.get(f"/api/conversations/{cid}/messages/{message_id}/stream").text)
    return answer_text(events)


def test_the_first_exchange_titles_the_conversation_with_the_cheap_model(
    start: Callable[..., Client], fake: FakeUpstream
) -> None:
    client = start(allow_registration=True, chat_title_model="anthropic")
    ada, _ = accounts(client)
    cid = new_conversation(ada)
    send(ada, f"/api/conversations/{cid}/messages", {"content": "how do tides work?"})

    def titled() -> bool:
        return ada.get(f"/api/conversations/{cid}").json()["title"] != "New conversation"

    eventually(titled)
    title_call = fake.calls_to("anthropic")[-1].body
    assert "six words" in title_call["system"]
    assert "how do tides work?" in json.dumps(title_call["messages"])
    title = ada.get(f"/api/conversations/{cid}").json()["title"]
    assert 0 < len(title) <= 80
    send(ada, f"/api/conversations/{cid}/messages", {"content": "and the moon?"})
    assert len(fake.calls_to("anthropic")) == 1  # only the first exchange is titled


def test_without_a_title_model_the_title_stays(start: Callable[..., Client]) -> None:
    client = start(allow_registration=True)
    ada, _ = accounts(client)
    cid = new_conversation(ada)
    send(ada, f"/api/conversations/{cid}/messages", {"content": "hello"})
    assert ada.get(f"/api/conversations/{cid}").json()["title"] == "New conversation"


def test_search_finds_only_the_callers_messages_and_titles_ranked_with_snippets(
    start: Callable[..., Client],
) -> None:
    client = start(allow_registration=True)
    ada, bob = accounts(client)
    trip = ada.call("POST", "/api/conversations", json={"title": "Lisbon trip", "model": "openai"})
    tid = trip.json()["id"]
    send(ada, f"/api/conversations/{tid}/messages", {"content": "Which tram goes to Belém?"})
    other = new_conversation(ada)
    send(ada, f"/api/conversations/{other}/messages", {"content": "A recipe for pastéis de nata"})
    theirs = new_conversation(bob)
    send(bob, f"/api/conversations/{theirs}/messages", {"content": "Which tram is fastest?"})

    found = ada.get("/api/search?q=tram").json()["results"]
    assert {(r["conversation_id"], r["kind"]) for r in found} == {(tid, "message")}
    assert all("<mark>tram</mark>" in r["snippet"].lower() for r in found)
    question = ada.get(f"/api/conversations/{tid}").json()["messages"][0]["id"]
    assert question in {r["message_id"] for r in found}
    assert [r["score"] for r in found] == sorted((r["score"] for r in found), reverse=True)

    titles = ada.get("/api/search?q=lisbon").json()["results"]
    assert [(r["conversation_id"], r["kind"]) for r in titles] == [(tid, "title")]
    ada.call("PATCH", f"/api/conversations/{tid}", json={"title": "Porto trip"})
    assert ada.get("/api/search?q=lisbon").json()["results"] == []
    assert ada.get("/api/search?q=porto").json()["results"][0]["kind"] == "title"

    assert {
        r["conversation_id"] for r in ada.get("/api/search?q=tram belém").json()["results"]
    } == {tid}
    assert ada.get("/api/search?q=tram nata").json()["results"] == []  # every word must match
    assert ada.get('/api/search?q=tram" OR owner_id:*').status_code == 200  # syntax is inert
    assert bob.get("/api/search?q=nata").json()["results"] == []
    assert ada.get("/api/search?q=").status_code == 400

    ada.call("DELETE", f"/api/conversations/{tid}")
    assert ada.get("/api/search?q=tram").json()["results"] == []


def test_search_filters_by_conversation_kind_role_and_time(
    start: Callable[..., Client],
) -> None:
    client = start(allow_registration=True)
    ada, _ = accounts(client)
    first = ada.call("POST", "/api/conversations", json={"title": "Tram notes", "model": "openai"})
    fid = first.json()["id"]
    send(ada, f"/api/conversations/{fid}/messages", {"content": "the tram to Belém"})
    between = int(time.time() * 1000) + 1
    time.sleep(0.01)
    second = new_conversation(ada)
    send(ada, f"/api/conversations/{second}/messages", {"content": "the tram to Porto"})
    roles = {
        m["id"]: m["role"]
        for cid in (fid, second)
        for m in ada.get(f"/api/conversations/{cid}").json()["messages"]
    }

    def found(query: str) -> set[tuple[str, str | None, str]]:
        response = ada.get(f"/api/search?q=tram&limit=50{query}")
        assert response.status_code == 200, response.text
        return {
            (r["conversation_id"], r["message_id"], r["kind"]) for r in response.json()["results"]
        }

    everything = found("")
    assert {c for c, _, _ in everything} == {fid, second}
    assert {kind for _, _, kind in everything} == {"title", "message"}  # the answers echo
    assert {c for c, _, _ in found(f"&conversation_id={fid}")} == {fid}
    assert found("&kind=title") == {(fid, None, "title")}
    for role in ("user", "assistant"):
        hits = found(f"&role={role}")
        assert hits
        assert {roles[m] for _, m, _ in hits if m is not None} == {role}
        assert all(kind == "message" for _, _, kind in hits)
    assert {c for c, _, _ in found(f"&since={between}")} == {second}
    assert {(c, k) for c, _, k in found(f"&until={between}")} == {(fid, "message")}
    for bad, param in (
        ("&kind=title&role=user", "kind"),
        ("&role=bot", "role"),
        ("&since=yesterday", "since"),
        ("&mode=fuzzy", "mode"),
    ):
        refused = ada.get(f"/api/search?q=tram{bad}")
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == param


def event_count(url: str, stream_id: str) -> int:
    async def count() -> int:
        db = Database(url)
        try:
            async with db.read() as conn:
                rows = await conn.execute(
                    select(events.c.id).where(events.c.stream_id == stream_id)
                )
                return len(rows.all())
        finally:
            await db.close()

    return asyncio.run(count())


def test_deleted_conversations_are_purged_now_or_after_the_grace_period(
    start: Callable[..., Client], backend: dict[str, Any], tmp_path: Any
) -> None:
    client = start(allow_registration=True)
    url = Settings(
        database_url=backend.get("database_url") or f"sqlite:///{tmp_path}/parley.db"
    ).database_url
    ada, _ = accounts(client)
    now_gone, later_gone = new_conversation(ada), new_conversation(ada)
    for cid in (now_gone, later_gone):
        send(ada, f"/api/conversations/{cid}/messages", {"content": "zebra crossing"})
    token = ada.call("POST", f"/api/conversations/{now_gone}/shares", json={}).json()["token"]
    assert {r["conversation_id"] for r in ada.get("/api/search?q=zebra").json()["results"]} == {
        now_gone,
        later_gone,
    }

    assert ada.call("DELETE", f"/api/conversations/{now_gone}?purge=true").status_code == 204
    assert event_count(url, now_gone) == 0  # gone from the log too: no rebuild brings it back
    assert client.http.get(f"/api/shared/{token}").status_code == 404
    hits = ada.get("/api/search?q=zebra").json()["results"]
    assert {r["conversation_id"] for r in hits} == {later_gone}

    deleted_at = time.time()
    assert ada.call("DELETE", f"/api/conversations/{later_gone}").status_code == 204
    assert event_count(url, later_gone) == 4  # soft: still in the log

    async def sweep(before: float) -> int:
        db = Database(url)
        try:
            return await purge(db, int(before * 1000))
        finally:
            await db.close()

    assert asyncio.run(sweep(deleted_at - 60)) == 0  # within its grace period: kept
    assert event_count(url, later_gone) == 4
    assert asyncio.run(sweep(time.time() + 1)) == 1
    assert event_count(url, later_gone) == 0
    assert ada.get("/api/search?q=zebra").json()["results"] == []
    # nor in any table's bytes (SQLite's FTS5 segments keep a deleted row's words)
    assert asyncio.run(leftovers(url, ["zebra", now_gone, later_gone])) == {}
    assert ada.call("DELETE", f"/api/conversations/{later_gone}?purge=maybe").status_code == 400


def test_shutdown_lets_a_running_answer_finish_and_saves_it(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Any
) -> None:
    settings = Settings(
        database_url=sqlite_url(tmp_path, "drain.db"),
        allow_registration=True,
        drain_timeout_seconds=20,
    )
    models = fake_models(fake.url, directive=SLOW)
    with serve_in_thread(loop_thread, create_app(settings, models=models)) as url:
        client = Client(url)
        ada, _ = accounts(client)
        cid = new_conversation(ada)
        message_id = leave_early(client, ada, cid, until="delta")
        client.http.close()
    # the server has stopped, mid-answer; a new one on the same database reads what it saved
    with serve_in_thread(loop_thread, create_app(settings, models=models)) as url:
        ada.client = Client(url)
        ada.tokens = ada.login()
        saved = ada.get(f"/api/conversations/{cid}").json()["messages"][-1]
        ada.client.http.close()
    assert (saved["id"], saved["status"]) == (message_id, "complete")
    assert len(saved["content"][0]["text"].split()) == 30


def test_presets_are_saved_per_user_and_start_conversations(
    start: Callable[..., Client], fake: FakeUpstream
) -> None:
    client = start(allow_registration=True)
    ada, bob = accounts(client)
    made = ada.call(
        "POST",
        "/api/presets",
        json={
            "name": "Pirate",
            "model": "openai",
            "settings": {"system_prompt": "Talk like a pirate.", "temperature": 0.3},
        },
    )
    assert made.status_code == 201, made.text
    preset = made.json()
    assert preset["settings"] == {"system_prompt": "Talk like a pirate.", "temperature": 0.3}
    again = ada.call("POST", "/api/presets", json={"name": "Pirate"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "preset_exists"
    bad = ada.call("POST", "/api/presets", json={"name": "Hot", "settings": {"temperature": 9}})
    assert bad.status_code == 400
    assert "temperature" in bad.json()["error"]["param"]

    from_preset = ada.call(
        "POST",
        "/api/conversations",
        json={"preset_id": preset["id"], "settings": {"temperature": 0.9}},
    ).json()
    assert from_preset["model"] == "openai"
    assert from_preset["settings"] == {"system_prompt": "Talk like a pirate.", "temperature": 0.9}
    send(ada, f"/api/conversations/{from_preset['id']}/messages", {"content": "ahoy"})
    upstream = fake.calls[-1].body
    assert upstream["messages"][0] == {"role": "system", "content": "Talk like a pirate."}
    assert upstream["temperature"] == 0.9

    renamed = ada.call("PATCH", f"/api/presets/{preset['id']}", json={"name": "Buccaneer"})
    assert renamed.json()["name"] == "Buccaneer"
    assert [p["name"] for p in ada.get("/api/presets").json()["data"]] == ["Buccaneer"]
    assert (
        ada.get(f"/api/conversations/{from_preset['id']}").json()["settings"]["temperature"] == 0.9
    )

    for method, path in (
        ("GET", f"/api/presets/{preset['id']}"),
        ("PATCH", f"/api/presets/{preset['id']}"),
        ("DELETE", f"/api/presets/{preset['id']}"),
    ):
        response = bob.call(method, path, json={"name": "Mine"} if method == "PATCH" else None)
        assert response.status_code == 404, (method, response.text)
    assert bob.get("/api/presets").json()["data"] == []
    stolen = bob.call("POST", "/api/conversations", json={"preset_id": preset["id"]})
    assert stolen.status_code == 404
    assert ada.call("DELETE", f"/api/presets/{preset['id']}").status_code == 204
    assert ada.get(f"/api/presets/{preset['id']}").status_code == 404


def test_search_also_finds_by_meaning_when_semantic_search_is_on(
    start: Callable[..., Client],
) -> None:
    client = start(allow_registration=True, chat_semantic_search="local")
    ada, bob = accounts(client)
    cid = new_conversation(ada)
    send(ada, f"/api/conversations/{cid}/messages", {"content": "How do I bake sourdough bread?"})
    query = "/api/search?q=recipe+for+a+homemade+loaf"

    def found() -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = ada.get(query).json()["results"]
        return results

    eventually(lambda: bool(found()), attempts=600)  # the model loads, then indexes
    best = found()[0]
    assert best["conversation_id"] == cid
    assert best["matched"] == ["meaning"]
    assert "sourdough" in best["snippet"]
    assert ada.get(query + "&mode=text").json()["results"] == []
    assert bob.get(query).json()["results"] == []
    assert ada.get(query + "&mode=vibes").status_code == 400


def test_a_message_with_an_image_reaches_the_model_as_content_parts(
    start: Callable[..., Client], fake: FakeUpstream
) -> None:
    client = start(allow_registration=True)
    ada, _ = accounts(client)
    cid = new_conversation(ada)
    pixel = "data:image/png;base64,iVBORw0KGgo="
    parts = [{"type": "text", "text": "what is this?"}, {"type": "image", "url": pixel}]
    send(ada, f"/api/conversations/{cid}/messages", {"content": parts})
    upstream = fake.calls[-1].body["messages"][-1]
    assert upstream == {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": pixel}},
        ],
    }
    saved = ada.get(f"/api/conversations/{cid}").json()["messages"][0]
    assert saved["content"] == parts
    count = ada.get(f"/api/conversations/{cid}").json()["message_count"]
    for bad, param in (
        ([{"type": "tool_call", "id": "1", "name": "f", "arguments": "{}"}], "content[0].type"),
        ([{"type": "image", "url": "file:///etc/passwd"}], "content[0].url"),
        ([{"type": "text", "text": "  "}], "content"),
        ([{"type": "text"}], "content[0].text"),
    ):
        refused = ada.call("POST", f"/api/conversations/{cid}/messages", json={"content": bad})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == param
    assert ada.get(f"/api/conversations/{cid}").json()["message_count"] == count  # no write
