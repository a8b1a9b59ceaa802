"""Imports at their documented limits (1,000 conversations, 100,000 messages, a 16 MB
body) on SQLite and PostgreSQL: other users' writes and logins and the health check keep
answering while one runs, a user runs one import at a time (on any instance), an instance
a bounded number, the limit counts messages, and a failed import leaves nothing."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from parley.chat.imports import MESSAGES_LIMIT
from parley.config import Settings
from parley.store.db import Database
from parley.store.tables import conversations, messages
from parley.testing.servers import LoopThread
from tests.e2e.test_access import Client, backend, start
from tests.e2e.test_auth import PASSWORD, Account
from tests.e2e.test_conversations import events_of
from tests.polling import eventually

__all__ = ["backend", "start"]  # fixtures shared with the access suite
LONGEST = 50_050
"""The first conversation's chain: it spans many write batches."""


def _node(cid: int, n: int, last: int) -> dict[str, Any]:
    """Node ``n`` of conversation ``cid``'s chain, as small as ChatGPT's format allows."""
    return {
        "id": f"{cid}-{n}",
        "message": {
            "author": {"role": "user" if n % 2 == 0 else "assistant"},
            "content": {"content_type": "text", "parts": [f"m{n}"]},
        },
        "parent": f"{cid}-{n - 1}" if n else None,
        "children": [f"{cid}-{n + 1}"] if n < last else [],
    }


def chatgpt_export(conversations: int, total: int) -> bytes:
    """A ``conversations.json`` of ``conversations`` chains holding ``total`` messages: the
    first ``LONGEST`` long, the rest sharing what is left."""
    rest = (total - LONGEST) // (conversations - 1)
    sizes = [total - rest * (conversations - 1)] + [rest] * (conversations - 1)
    data = [
        {
            "title": f"chat {cid}",
            "current_node": f"{cid}-{size - 1}",
            "mapping": {f"{cid}-{n}": _node(cid, n, size - 1) for n in range(size)},
        }
        for cid, size in enumerate(sizes)
    ]
    return json.dumps(data, separators=(",", ":")).encode()


@pytest.fixture(scope="module")
def maximal() -> bytes:
    body = chatgpt_export(1_000, MESSAGES_LIMIT)
    assert len(body) <= Settings().max_request_bytes  # what the server accepts
    return body


class Store:
    """Reads the test's database directly, to see how far an import is."""

    def __init__(self, loop: LoopThread, url: str) -> None:
        self._loop = loop
        self._db = Database(Settings(database_url=url).database_url)

    def count(self, query: Any) -> int:
        async def run() -> int:
            async with self._db.read() as conn:
                return int(await conn.scalar(query) or 0)

        return self._loop.run(run())

    def hidden(self, owner_id: str) -> int:
        """Conversations of an import still being written."""
        c = conversations.c
        return self.count(
            select(func.count()).where(c.owner_id == owner_id, c.deleted_ms.is_not(None))
        )

    def close(self) -> None:
        self._loop.run(self._db.engine.dispose())


@pytest.fixture
def store(
    backend: dict[str, Any], loop_thread: LoopThread, tmp_path: Any
) -> Iterator[Callable[[], Store]]:
    made: list[Store] = []

    def open_() -> Store:
        made.append(Store(loop_thread, backend.get("database_url") or _sqlite(tmp_path)))
        return made[-1]

    yield open_
    for s in made:
        s.close()


def _sqlite(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path}/parley.db"  # the parley fixture's default


def post_import(client: Client, account: Account, body: bytes) -> httpx.Response:
    """On a client of its own (the import outlasts the shared one's timeout)."""
    headers = {
        "authorization": f"Bearer {account.tokens['access_token']}",
        "content-type": "application/json",
    }
    with httpx.Client(base_url=client.url, timeout=300) as http:
        return http.post("/api/conversations/import", content=body, headers=headers)


SMALL = json.dumps(
    [{"title": "small", "current_node": "0-0", "mapping": {"0-0": _node(0, 0, 0)}}]
).encode()


def test_a_maximal_import_leaves_other_users_writes_logins_and_health_answering(
    backend: dict[str, Any],
    start: Callable[..., Client],
    store: Callable[[], Store],
    maximal: bytes,
) -> None:
    """While a 1,000-conversation, 100,000-message import is being written (seen in the
    database), another user logs in, sends a message and gets its answer, and the
    health check answers; the import's owner gets 429 for a second import, on any
    instance sharing the state, and another user 503 from an instance at its cap; the
    owner's search does not show the messages already written. Only then does the import
    finish, with everything."""
    a = start(allow_registration=True, chat_imports_per_instance=1)
    b = start(allow_registration=True, chat_imports_per_instance=1)  # same database
    ada, bob = Account(a, "ada@example.com"), Account(a, "bob@example.com")
    eve = Account(a, "eve@example.com")
    elsewhere = b if backend else a  # the embedded tier's state is per instance
    bob_chat = bob.call("POST", "/api/conversations", json={"model": "openai"}).json()["id"]
    db = store()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(post_import, a, ada, maximal)
        eventually(lambda: db.hidden(ada.id) > 0, attempts=600)  # batches being written

        login = a.http.post("/auth/login", json={"email": bob.email, "password": PASSWORD})
        sent = bob.call("POST", f"/api/conversations/{bob_chat}/messages", json={"content": "hi"})
        live = a.http.get("/health/live")
        again = post_import(elsewhere, ada, SMALL)
        busy = post_import(a, eve, SMALL)
        found = ada.get("/api/search?q=m5&mode=text")
        still_hidden = db.hidden(ada.id)
        finished_early = running.done()

        imported = running.result()
    assert login.status_code == 200, login.text
    assert sent.status_code == 200, sent.text
    assert events_of(sent.text)[-1]["status"] == "complete"
    assert live.status_code == 200
    assert again.status_code == 429, again.text
    assert again.json()["error"]["code"] == "import_in_progress"
    assert "retry-after" in again.headers
    assert busy.status_code == 503, busy.text
    assert busy.json()["error"]["code"] == "imports_busy"
    assert found.json()["results"] == []  # the batches' search rows, not shown yet
    assert (finished_early, still_hidden > 0) == (False, True)  # all of it ran mid-import

    assert imported.status_code == 201, imported.text[:500]
    made = imported.json()["data"]
    assert len(made) == 1_000
    assert sum(c["message_count"] for c in made) == MESSAGES_LIMIT
    assert made[0]["message_count"] == LONGEST
    assert db.hidden(ada.id) == 0
    assert db.count(select(func.count()).select_from(messages)) == MESSAGES_LIMIT + 2
    longest = ada.get(f"/api/conversations/{made[0]['id']}?limit=3").json()
    assert [m["content"][0]["text"] for m in longest["messages"]] == [
        f"m{n}" for n in range(LONGEST - 3, LONGEST)
    ]
    hits = ada.get(f"/api/search?q=m5&mode=text&conversation_id={made[0]['id']}").json()
    assert [h["message_id"] is not None for h in hits["results"]] == [True]
    listed = ada.get("/api/conversations?limit=200").json()["data"]
    assert len(listed) == 200
    assert post_import(a, ada, SMALL).status_code == 201  # the slot is free again


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_one_message_or_conversation_over_the_limits_is_a_400_and_writes_nothing(
    start: Callable[..., Client], store: Callable[[], Store]
) -> None:
    """100,000 messages is the limit, counted in messages (the maximal test imports
    exactly that many); one more, or a 1,001st conversation, is refused before anything
    is written, as is a body that is not JSON."""
    a = start(allow_registration=True)
    ada = Account(a, "ada@example.com")
    over = post_import(a, ada, chatgpt_export(1_000, MESSAGES_LIMIT + 1))
    assert over.status_code == 400, over.text
    assert over.json()["error"]["message"] == "at most 100,000 messages per import"
    wide = post_import(a, ada, chatgpt_export(1_001, 60_000))
    assert wide.status_code == 400, wide.text
    assert wide.json()["error"]["message"] == "at most 1,000 conversations per import"
    broken = post_import(a, ada, b'[{"mapping": ')
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_json"
    db = store()
    assert db.count(select(func.count()).select_from(conversations)) == 0
    assert ada.get("/api/conversations").json()["data"] == []


def parley_export(**fields: Any) -> bytes:
    """A one-message Parley export, with ``title``, ``model`` (the message's), ``text``
    or ``settings`` as given."""
    message = {
        "id": "m",
        "role": "assistant",
        "content": [{"type": "text", "text": fields.get("text", "hi")}],
        "model": fields.get("model"),
    }
    conversation = {"title": fields.get("title", "t"), "settings": fields.get("settings", {})}
    return json.dumps(
        {"format": "parley.conversation.v1", "conversation": conversation, "messages": [message]}
    ).encode()


def test_what_postgresql_cannot_store_is_a_400_naming_it_on_every_backend(
    start: Callable[..., Client], store: Callable[[], Store]
) -> None:
    """A NUL character in a text or title, a model name longer than its column, settings
    that are not an object: each was a 500 ``database error`` on PostgreSQL (in a batch,
    after others were written); now a 400 naming the field, and nothing is written."""
    a = start(allow_registration=True)
    ada = Account(a, "ada@example.com")
    cases = {
        "messages[0].content": parley_export(text="a\x00b"),
        "conversation.title": parley_export(title="t\x00"),
        "messages[0].model": parley_export(model="m" * 201),
        "conversation.settings": parley_export(settings=["x"]),
    }
    for param, body in cases.items():
        refused = post_import(a, ada, body)
        assert refused.status_code == 400, (param, refused.text)
        assert refused.json()["error"]["param"] == param
    assert store().count(select(func.count()).select_from(conversations)) == 0
    fine = post_import(a, ada, parley_export(model="m" * 200, text="a\tb"))
    assert fine.status_code == 201, fine.text
