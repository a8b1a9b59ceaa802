"""Stored ``/v1/responses``: ``store`` keeps a response for GET, DELETE, ``input_items``
and ``previous_response_id``, which continues a conversation on any provider; responses
are owner-scoped (another key gets the same 404 as a missing id); two instances sharing
PostgreSQL see the same store; expired rows are unreadable at once and purged."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from parley.store.db import Database
from parley.store.migrate import upgrade
from parley.store.responses import ResponseArchive
from parley.testing.fake_upstream import FakeUpstream
from tests.backends import postgres_database
from tests.conftest import ParleyFactory
from tests.e2e.test_access import ADMIN, Client
from tests.e2e.test_responses import WEATHER


def _sdk(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


@pytest.fixture
def client(parley: ParleyFactory) -> Iterator[openai.OpenAI]:
    with _sdk(parley()) as sdk:
        yield sdk


def test_store_is_the_default_and_get_returns_the_response(client: openai.OpenAI) -> None:
    """Without ``store`` a response is kept (OpenAI's default, documented): GET answers
    the same object, input_items lists the input with ids."""
    created = client.responses.create(model="anthropic", input="remember me")
    assert created.store is True
    fetched = client.responses.retrieve(created.id)
    assert fetched.model_dump() == created.model_dump()
    items = client.responses.input_items.list(created.id)
    assert len(items.data) == 1
    item: Any = items.data[0]
    assert item.type == "message"
    assert item.role == "user"
    assert item.id
    assert json.dumps(item.model_dump()).count("remember me") == 1


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    created = client.responses.create(model="anthropic", input="forget me", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


@pytest.mark.parametrize(
    ("first", "then"), [("openai", "anthropic"), ("anthropic", "gemini"), ("gemini", "openai")]
)
def test_previous_response_id_continues_on_any_provider(
    client: openai.OpenAI, fake: FakeUpstream, first: str, then: str
) -> None:
    """The second turn, on another family, is sent the first turn's question and answer
    before its own input."""
    one = client.responses.create(model=first, input="My name is Ada.")
    two = client.responses.create(model=then, input="What is my name?", previous_response_id=one.id)
    assert two.previous_response_id == one.id
    assert two.output_text == "You said: What is my name?"
    sent = json.dumps(fake.calls[-1].body)
    assert "My name is Ada." in sent
    assert "You said: My name is Ada." in sent
    assert sent.index("My name is Ada.") < sent.index("What is my name?")
    if then == "openai":
        body = fake.calls[-1].body
        assert "previous_response_id" not in body
        assert body["store"] is False
    items = client.responses.input_items.list(two.id, order="asc")
    texts = [json.dumps(i.model_dump()) for i in items.data]
    assert len(texts) == 3  # question, answer, new question
    assert "My name is Ada." in texts[0]
    assert "What is my name?" in texts[2]


@pytest.mark.parametrize("family", ["openai", "anthropic"])
def test_tool_loop_over_previous_response_id(client: openai.OpenAI, family: str) -> None:
    """The Agents SDK pattern: answer a function_call with only its output and the
    previous response's id."""
    first = client.responses.create(model=family, input="Weather in Oslo?", tools=[WEATHER])
    call: Any = next(item for item in first.output if item.type == "function_call")
    second = client.responses.create(
        model=family,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "snow"}],
        tools=[WEATHER],
    )
    assert second.output_text == "The tool returned: snow"


def test_streamed_response_is_stored_when_it_completes(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="anthropic", input="stream and keep", stream=True))
    final: Any = events[-1]
    assert final.type == "response.completed"
    fetched = client.responses.retrieve(final.response.id)
    assert fetched.output_text == "You said: stream and keep"
    assert fetched.status == "completed"


def test_delete_then_everything_is_404(client: openai.OpenAI) -> None:
    created = client.responses.create(model="anthropic", input="short lived")
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list(created.id)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="anthropic", input="x", previous_response_id=created.id)
    error: Any = caught.value.body
    assert error["param"] == "previous_response_id"


def test_input_items_pages(client: openai.OpenAI) -> None:
    created = client.responses.create(
        model="anthropic",
        input=[{"role": "user", "content": f"m{i}"} for i in range(5)],
    )
    page = client.responses.input_items.list(created.id, limit=2, order="asc")
    assert page.has_more is True
    assert [json.dumps(i.model_dump()).count("m0") for i in page.data] == [1, 0]
    rest = client.responses.input_items.list(created.id, limit=10, order="asc", after=page.last_id)
    assert len(rest.data) == 3
    assert rest.has_more is False
    newest = client.responses.input_items.list(created.id, limit=1)
    assert "m4" in json.dumps(newest.data[0].model_dump())


def _status_and_body(sdk: openai.OpenAI, response_id: str) -> tuple[int, Any]:
    try:
        sdk.responses.retrieve(response_id)
    except openai.NotFoundError as exc:
        body: Any = exc.body
        return exc.status_code, {**body, "message": body["message"].replace(response_id, "ID")}
    return 200, None


def test_another_key_gets_the_same_404_as_a_missing_id(parley: ParleyFactory) -> None:
    admin = Client(parley(admin_key=ADMIN))
    key_a, key_b = admin.new_key()["key"], admin.new_key()["key"]
    with _sdk(admin.url, key_a) as a, _sdk(admin.url, key_b) as b:
        mine = a.responses.create(model="anthropic", input="private")
        assert a.responses.retrieve(mine.id).id == mine.id
        assert _status_and_body(b, mine.id) == _status_and_body(b, "resp_" + "0" * 32)
        assert _status_and_body(b, mine.id)[0] == 404
        with pytest.raises(openai.NotFoundError):
            b.responses.delete(mine.id)
        with pytest.raises(openai.NotFoundError):
            b.responses.input_items.list(mine.id)
        with pytest.raises(openai.BadRequestError):
            b.responses.create(model="anthropic", input="x", previous_response_id=mine.id)
        assert a.responses.retrieve(mine.id).id == mine.id  # b's delete did nothing
    admin.http.close()


@pytest.fixture
def postgres() -> Iterator[str]:
    """Requested before ``parley``, so it is dropped after the servers using it stopped."""
    databases = postgres_database(migrated=True)
    yield next(databases)
    with pytest.raises(StopIteration):
        next(databases)


def test_two_instances_sharing_postgresql_share_stored_responses(
    postgres: str, parley: ParleyFactory
) -> None:
    one = Client(parley(database_url=postgres, admin_key=ADMIN))
    two = parley(database_url=postgres, admin_key=ADMIN)
    key = one.new_key()["key"]
    with _sdk(one.url, key) as first, _sdk(two, key) as second:
        created = first.responses.create(model="anthropic", input="across instances")
        assert second.responses.retrieve(created.id).output_text == created.output_text
        follow = second.responses.create(
            model="openai", input="and on", previous_response_id=created.id
        )
        assert first.responses.retrieve(follow.id).previous_response_id == created.id
        first.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            second.responses.retrieve(created.id)
    one.http.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_expired_responses_are_unreadable_and_purged(engine: str, tmp_path: Any) -> None:
    databases = postgres_database() if engine == "postgresql" else None
    url = next(databases) if databases else f"sqlite:///{tmp_path}/r.db"

    async def run() -> None:
        db = Database(
            url.replace("postgresql://", "postgresql+asyncpg://").replace(
                "sqlite:///", "sqlite+aiosqlite:///"
            )
        )
        await upgrade(db)
        archive = ResponseArchive(db, keep_seconds=3600)
        await archive.save("key:a", {"id": "resp_live", "output": []}, [])
        archive.keep_seconds = -1  # already expired when written
        await archive.save("key:a", {"id": "resp_old", "output": []}, [])
        assert await archive.get("key:a", "resp_old") is None
        assert await archive.get("key:a", "resp_live") is not None
        assert await archive.purge() == 1
        assert await archive.purge(int(time.time() * 1000) + 7200_000) == 1
        assert await archive.get("key:a", "resp_live") is None
        await db.close()

    try:
        asyncio.run(run())
    finally:
        if databases is not None:
            with pytest.raises(StopIteration):
                next(databases)


def test_store_default_can_be_turned_off(parley: ParleyFactory) -> None:
    """PARLEY_RESPONSES_STORE_DEFAULT=false: nothing is kept unless the request asks."""
    with _sdk(parley(responses_store_default=False)) as sdk:
        unasked = sdk.responses.create(model="anthropic", input="not kept")
        assert unasked.store is False
        with pytest.raises(openai.NotFoundError):
            sdk.responses.retrieve(unasked.id)
        asked = sdk.responses.create(model="anthropic", input="kept", store=True)
        assert sdk.responses.retrieve(asked.id).store is True
