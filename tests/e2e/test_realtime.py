"""``/api/ws`` and answers that cross instances: every session of a user sees that user's
events and answer deltas (and nobody else's), on whichever instance it is connected; a
client that leaves instance A mid-answer reattaches on instance B and gets all of it; a
stop asked of B stops the answer running on A."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.e2e.test_access import Client, backend, start
from tests.e2e.test_auth import Account
from tests.e2e.test_conversations import (
    SLOW,
    accounts,
    answer_text,
    events_of,
    leave_early,
    new_conversation,
)

__all__ = ["backend", "start"]  # fixtures shared with the access suite


def ws_url(client: Client) -> str:
    return client.url.replace("http://", "ws://") + "/api/ws"


class Live:
    """One WebSocket session, authenticated by header or by first message."""

    def __init__(self, client: Client, account: Account, *, by_message: bool = False) -> None:
        token = account.tokens["access_token"]
        headers = {} if by_message else {"authorization": f"Bearer {token}"}
        self._opened = connect(ws_url(client), additional_headers=headers)
        self.ws: ClientConnection = self._opened.__enter__()
        if by_message:
            self.ws.send(json.dumps({"type": "auth", "token": token}))
        ready = self.next()
        assert ready["type"] == "ready", ready
        assert ready["user_id"] == account.id

    def next(self, timeout: float = 10) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.ws.recv(timeout=timeout))
        return message

    def until(
        self, done: Callable[[dict[str, Any]], bool], limit: int = 500
    ) -> list[dict[str, Any]]:
        """Messages up to and including the first for which ``done`` holds."""
        seen = []
        for _ in range(limit):
            seen.append(self.next())
            if done(seen[-1]):
                return seen
        raise AssertionError(f"never saw the end in {limit} messages: {seen[-3:]}")

    def close(self) -> None:
        self._opened.__exit__(None, None, None)


def answer_done(message: dict[str, Any]) -> bool:
    return message["type"] == "generation" and message["frame"]["type"] == "done"


def saved_answer(message: dict[str, Any]) -> bool:
    event = message.get("event", {})
    return event.get("type") == "message.added" and event["payload"]["role"] == "assistant"


def deltas(messages: list[dict[str, Any]]) -> str:
    return "".join(
        m["frame"]["content"]
        for m in messages
        if m["type"] == "generation" and m["frame"]["type"] == "delta"
    )


@pytest.fixture
def client(start: Callable[..., Client]) -> Client:
    return start(allow_registration=True)


def test_a_websocket_needs_a_valid_access_token(client: Client) -> None:
    ada, _ = accounts(client)
    for headers, first in (
        ({}, json.dumps({"type": "hello"})),
        ({"authorization": "Bearer not-a-token"}, None),
        ({}, json.dumps({"type": "auth", "token": ada.tokens["refresh_token"]})),
    ):
        with connect(ws_url(client), additional_headers=headers) as ws:
            if first is not None:
                ws.send(first)
            refused = json.loads(ws.recv(timeout=10))
            assert refused["error"]["type"] == "authentication_error", refused
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4401
    live = Live(client, ada, by_message=True)  # the browser's way in
    live.ws.send(json.dumps({"type": "ping"}))
    assert live.next() == {"type": "pong"}
    live.close()


def test_every_session_of_a_user_gets_their_events_and_deltas_and_no_one_elses(
    client: Client,
) -> None:
    ada, bob = accounts(client)
    phone, laptop, bobs = Live(client, ada), Live(client, ada), Live(client, bob)
    cid = new_conversation(ada)
    sent = ada.call("POST", f"/api/conversations/{cid}/messages", json={"content": "hi there"})
    answer = answer_text(events_of(sent.text))
    saved = ada.get(f"/api/conversations/{cid}").json()["messages"]
    for session in (phone, laptop):
        got = session.until(saved_answer)
        events = [m["event"] for m in got if m["type"] == "event"]
        assert [e["type"] for e in events] == [
            "conversation.created",
            "message.added",
            "message.added",
        ]
        assert [e["version"] for e in events] == [1, 2, 3]
        assert {e["conversation_id"] for e in events} == {cid}
        assert events[2]["payload"]["id"] == saved[-1]["id"]
        assert deltas(got) == answer != ""
        frames = [m["frame"]["type"] for m in got if m["type"] == "generation"]
        assert frames[0] == "start"
        assert frames[-1] == "done"
    ada.call("PATCH", f"/api/conversations/{cid}", json={"title": "Renamed"})
    renamed = phone.until(lambda m: m.get("event", {}).get("type") == "conversation.renamed")
    assert renamed[-1]["event"]["payload"]["title"] == "Renamed"
    assert ada.call("DELETE", f"/api/conversations/{cid}").status_code == 204
    deleted = laptop.until(lambda m: m.get("event", {}).get("type") == "conversation.deleted")
    assert deleted[-1]["event"]["conversation_id"] == cid
    bobs.ws.send(json.dumps({"type": "ping"}))
    assert bobs.next() == {"type": "pong"}  # nothing of Ada's came before it
    for session in (phone, laptop, bobs):
        session.close()


@pytest.fixture
def two(start: Callable[..., Client], backend: dict[str, Any]) -> tuple[Client, Client]:
    if not backend:
        pytest.skip("two instances share PostgreSQL, Redis and NATS; the embedded tier is one")
    return start(directive=SLOW, allow_registration=True), start(directive=SLOW)


def test_a_session_on_b_gets_the_deltas_of_an_answer_generated_on_a(
    two: tuple[Client, Client],
) -> None:
    a, b = two
    ada, _ = accounts(a)
    on_b = Live(b, ada)
    cid = new_conversation(ada)
    sent = ada.call("POST", f"/api/conversations/{cid}/messages", json={"content": "go"})
    answer = answer_text(events_of(sent.text))
    got = on_b.until(saved_answer)
    assert len(answer.split()) == 30
    assert deltas(got) == answer
    assert next(m for m in got if answer_done(m))["frame"]["status"] == "complete"
    on_b.close()


def test_leaving_a_mid_answer_and_reattaching_on_b_gets_the_whole_answer(
    two: tuple[Client, Client],
) -> None:
    a, b = two
    ada, _ = accounts(a)
    ada_on_b = Account.__new__(Account)
    ada_on_b.__dict__.update(ada.__dict__, client=b)
    cid = new_conversation(ada)
    message_id = leave_early(a, ada, cid, until="delta")  # gone from A after one delta
    followed = events_of(
        ada_on_b.get(f"/api/conversations/{cid}/messages/{message_id}/stream").text
    )
    assert followed[0]["type"] == "start"  # from the start, on the other instance
    assert len([e for e in followed if e["type"] == "delta"]) > 1  # live, not the saved copy
    assert followed[0]["message_id"] == message_id
    assert followed[-1]["type"] == "done"
    assert followed[-1]["status"] == "complete"
    assert len(answer_text(followed).split()) == 30
    saved = ada_on_b.get(f"/api/conversations/{cid}").json()["messages"][-1]
    assert (saved["id"], saved["status"]) == (message_id, "complete")
    assert saved["content"][0]["text"] == answer_text(followed)


def test_stop_asked_of_b_stops_the_answer_running_on_a(two: tuple[Client, Client]) -> None:
    a, b = two
    ada, bob = accounts(a)
    ada_on_b = Account.__new__(Account)
    ada_on_b.__dict__.update(ada.__dict__, client=b)
    cid = new_conversation(ada)
    message_id = leave_early(a, ada, cid, until="delta")
    bob_on_b = Account.__new__(Account)
    bob_on_b.__dict__.update(bob.__dict__, client=b)
    path = f"/api/conversations/{cid}/messages/{message_id}"
    for method, route in (("GET", f"{path}/stream"), ("POST", f"{path}/stop")):
        assert bob_on_b.call(method, route).status_code == 404  # not Bob's, on B either
    stopped = ada_on_b.call("POST", f"{path}/stop")
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert body["id"] == message_id
    assert body["status"] == "stopped"
    assert 0 < len(body["content"][0]["text"].split()) < 30


def test_a_socket_that_asks_for_quiet_gets_no_more_deltas_of_that_answer(
    start: Callable[..., Client],
) -> None:
    """The tab that reads an answer's own stream asks its socket for quiet: the deltas stop
    there (its done frame still comes), while the user's other sessions get all of them."""
    client = start(directive=SLOW, allow_registration=True)
    ada, _ = accounts(client)
    asking, other = Live(client, ada), Live(client, ada)
    cid = new_conversation(ada)
    sent: dict[str, str] = {}
    thread = threading.Thread(
        target=lambda: sent.update(
            text=ada.call("POST", f"/api/conversations/{cid}/messages", json={"content": "go"}).text
        )
    )
    thread.start()
    started = asking.until(lambda m: m["type"] == "generation" and m["frame"]["type"] == "start")
    asking.ws.send(json.dumps({"type": "quiet", "message_id": started[-1]["message_id"]}))
    asking.ws.send(json.dumps({"type": "ping"}))
    before_quiet = asking.until(lambda m: m["type"] == "pong")  # quiet is in force from here
    after = asking.until(answer_done)
    thread.join(timeout=30)
    answer = answer_text(events_of(sent["text"]))
    assert len(answer.split()) == 30
    assert deltas(after) == ""
    assert len(deltas(before_quiet).split()) < 30  # the quiet came mid-answer
    assert deltas(other.until(answer_done)) == answer
    asking.close()
    other.close()
