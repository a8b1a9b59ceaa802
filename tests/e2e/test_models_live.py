"""A model change made through ``/admin/models`` on one instance reaches the others without
a restart: over NATS on the shared tier (PostgreSQL + Redis + NATS; the safety poll is set
far off, so only the bus can deliver it), and by the safety poll on the embedded tier
(instances there share nothing but their SQLite file). Requests already running finish on
the deployment they started on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import FakeUpstream
from tests.backends import NATS_URL, nats_namespace, postgres_database, redis_url
from tests.conftest import ParleyFactory
from tests.e2e.test_access import ADMIN, Client
from tests.polling import eventually

WITHIN_A_SECOND = {"attempts": 20, "pause": 0.05}


@pytest.fixture(params=["shared", "embedded"])
def tier(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "embedded":
        yield {"database_url": f"sqlite:///{tmp_path}/shared.db", "models_poll_seconds": 0.1}
        return
    gens = [postgres_database(), redis_url(), nats_namespace()]
    pg, rd, ns = (next(g) for g in gens)
    yield {
        "database_url": pg,
        "redis_url": rd,
        "nats_url": NATS_URL,
        "nats_namespace": ns,
        "models_poll_seconds": 3600,
    }
    for gen in reversed(gens):
        with pytest.raises(StopIteration):
            next(gen)


@pytest.fixture
def pair(tier: dict[str, Any], parley: ParleyFactory) -> Iterator[tuple[Client, Client]]:
    # the tier first: it is torn down last, after the servers using it have stopped
    a = Client(parley(admin_key=ADMIN, **tier))
    b = Client(parley(admin_key=ADMIN, **tier))
    yield a, b
    a.http.close()
    b.http.close()


def _dep(fake: FakeUpstream, name: str, order: int, model: str = "llama-3.1-8b") -> dict[str, Any]:
    return {
        "provider": "openai_compatible",
        "model": model,
        "api_base": f"{fake.url}/v1",
        "name": name,
        "order": order,
    }


def _chat(client: Client, key: str, model: str = "runtime") -> httpx.Response:
    return client.chat(key, model=model, max_tokens=5)


def test_a_group_added_on_one_instance_answers_on_the_other(
    pair: tuple[Client, Client], fake: FakeUpstream
) -> None:
    a, b = pair
    key = a.new_key()["key"]
    assert _chat(b, key).status_code == 404
    body = {"name": "runtime", "deployments": [_dep(fake, "only", 1)]}
    assert a.admin("POST", "/admin/models", json=body).status_code == 201
    eventually(lambda: _chat(b, key).status_code == 200, **WITHIN_A_SECOND)
    assert _chat(b, key).headers["x-parley-deployment"] == "only"


def test_a_deployment_disabled_on_one_instance_gets_no_traffic_from_the_other(
    pair: tuple[Client, Client], fake: FakeUpstream, second_fake: FakeUpstream
) -> None:
    a, b = pair
    key = a.new_key()["key"]
    body = {
        "name": "runtime",
        "deployments": [_dep(fake, "first", 1), _dep(second_fake, "second", 2)],
    }
    assert b.admin("POST", "/admin/models", json=body).status_code == 201
    eventually(lambda: _chat(a, key).status_code == 200, **WITHIN_A_SECOND)
    assert _chat(a, key).headers["x-parley-deployment"] == "first"
    disabled = b.admin("POST", "/admin/models/runtime/deployments/0/disable")
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["deployments"][0]["enabled"] is False
    eventually(
        lambda: _chat(a, key).headers.get("x-parley-deployment") == "second", **WITHIN_A_SECOND
    )
    calls = len(fake.calls)
    answers = [_chat(a, key) for _ in range(10)]
    assert [r.headers["x-parley-deployment"] for r in answers] == ["second"] * 10
    assert len(fake.calls) == calls  # not one more request reached the disabled deployment
    assert b.admin("POST", "/admin/models/runtime/deployments/0/enable").status_code == 200
    eventually(
        lambda: _chat(a, key).headers.get("x-parley-deployment") == "first", **WITHIN_A_SECOND
    )


def test_a_stream_in_flight_finishes_after_its_group_is_deleted(
    pair: tuple[Client, Client], fake: FakeUpstream
) -> None:
    a, b = pair
    key = a.new_key()["key"]
    slow = "llama-3.1-8b+tokens-12+chunk-delay-0.1"
    body = {"name": "runtime", "deployments": [_dep(fake, "slow", 1, slow)]}
    assert a.admin("POST", "/admin/models", json=body).status_code == 201
    lines: list[str] = []
    first = threading.Event()
    status: list[int] = []

    def stream() -> None:
        with a.http.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": "runtime",
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers={"authorization": f"Bearer {key}"},
        ) as answer:
            status.append(answer.status_code)
            for line in answer.iter_lines():
                if line.startswith("data: "):
                    lines.append(line)
                    first.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert first.wait(10)
    assert b.admin("DELETE", "/admin/models/runtime").status_code == 200
    eventually(lambda: _chat(a, key).status_code == 404, **WITHIN_A_SECOND)
    assert reader.is_alive()  # A serves without the group while the stream still runs
    reader.join(30)
    assert status == [200]
    assert lines[-1] == "data: [DONE]"
    words = "".join(
        httpx.Response(200, content=line[6:]).json()["choices"][0]["delta"].get("content") or ""
        for line in lines[:-1]
        if '"choices":[{' in line.replace(" ", "")
    )
    assert len(words.split()) == 12  # every word, from the deployment it started on


def test_a_deployment_changed_in_place_moves_the_other_instances_traffic(
    pair: tuple[Client, Client], fake: FakeUpstream, second_fake: FakeUpstream
) -> None:
    """Same label, new upstream: the swap builds a new adapter, not the old one reused."""
    a, b = pair
    key = a.new_key()["key"]
    body = {"name": "runtime", "deployments": [_dep(fake, "moving", 1)]}
    assert a.admin("POST", "/admin/models", json=body).status_code == 201
    eventually(lambda: _chat(b, key).status_code == 200, **WITHIN_A_SECOND)
    moved = {"name": "runtime", "deployments": [_dep(second_fake, "moving", 1)]}
    assert a.admin("PUT", "/admin/models/runtime", json=moved).status_code == 200
    before = len(second_fake.calls)
    eventually(
        lambda: _chat(b, key).status_code == 200 and len(second_fake.calls) > before,
        **WITHIN_A_SECOND,
    )
    calls = len(fake.calls)
    assert all(_chat(b, key).status_code == 200 for _ in range(5))
    assert len(fake.calls) == calls
