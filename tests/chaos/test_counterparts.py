"""Counterparts taken away under load: Redis and PostgreSQL crash and come back while
clients keep sending. Parley keeps serving what it can (rate limits fail open by default,
keys are cached), refuses the rest fast, recovers without a restart, and loses no usage
record. A slow Redis delays the requests that need it, not the event loop. Each scenario
prints what was sent, answered, refused and lost."""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, models_from, serve_in_thread
from tests import pg_replica
from tests.backends import postgres_database, redis_url
from tests.chaos.load import Load
from tests.chaos.services import DelayProxy, own_nats, own_redis
from tests.e2e.test_access import ADMIN, Client
from tests.e2e.test_auth import Account
from tests.e2e.test_multi_instance import _usage_ids
from tests.e2e.test_realtime import Live
from tests.polling import eventually

OUTAGE_S = 1.5


def _models(fake: FakeUpstream) -> Any:
    dep = {"provider": "openai_compatible", "model": "m+tokens-3", "api_base": f"{fake.url}/v1"}
    return models_from([{"name": "m", "deployments": [dep]}])


@contextlib.contextmanager
def _parley(loop_thread: LoopThread, fake: FakeUpstream, **settings: Any) -> Iterator[str]:
    merged = {"admin_key": ADMIN, "usage_flush_seconds": 0.05, **settings}
    app = create_app(Settings(**merged), models=_models(fake))
    with serve_in_thread(loop_thread, app) as url:
        yield url


def _key(url: str) -> str:
    created = httpx.post(f"{url}/admin/keys", json={}, headers={"authorization": f"Bearer {ADMIN}"})
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def _stored_ids(database_url: str) -> set[str]:
    try:
        return {r.split(".")[0] for r in _usage_ids(database_url)}
    except (OSError, asyncpg.PostgresError):
        return set()  # the database is still coming back


def _answers_again(load: Load, since: int, count: int = 20) -> None:
    eventually(lambda: sum(o.status == 200 for o in load.during(since)) >= count, attempts=600)


def _no_usage_lost(load: Load, database_url: str) -> None:
    answered = load.answered()
    stored: set[str] = set()

    def written() -> bool:
        stored.update(_stored_ids(database_url))
        return answered <= stored

    with contextlib.suppress(AssertionError):
        eventually(written, attempts=600)
    assert answered <= stored, f"lost {len(answered - stored)} usage records"


@pytest.fixture
def database() -> Iterator[str]:
    pg = postgres_database()
    yield next(pg)
    with pytest.raises(StopIteration):
        next(pg)


def test_redis_crashes_and_returns_under_load(
    loop_thread: LoopThread, fake: FakeUpstream, database: str
) -> None:
    with (
        own_redis() as redis,
        _parley(
            loop_thread, fake, database_url=database, redis_url=f"redis://127.0.0.1:{redis.port}/0"
        ) as url,
    ):
        key = _key(url)
        with Load(url, key, "m") as load:
            _answers_again(load, 0)
            redis.stop()
            outage = load.mark()
            time.sleep(OUTAGE_S)
            during = load.during(outage)
            redis.start()
            back = load.mark()
            _answers_again(load, back)
        print(f"\nRedis crash: {load.summary()}")  # noqa: T201 - each scenario reports its tally
        # rate limits fail open by default: requests were answered while Redis was down
        assert any(o.status == 200 for o in during), [o.status for o in during]
        assert all(o.status is not None for o in load.outcomes)  # nothing hung or reset
        assert {o.status for o in load.outcomes} <= {200, 429, 503}
        _no_usage_lost(load, database)


def test_budgets_fail_closed_while_redis_is_away(
    loop_thread: LoopThread, fake: FakeUpstream, database: str
) -> None:
    """A budget cannot be checked without the shared counters: refused fast, with a
    retry hint, and admitted again once Redis is back."""
    with (
        own_redis() as redis,
        _parley(
            loop_thread, fake, database_url=database, redis_url=f"redis://127.0.0.1:{redis.port}/0"
        ) as url,
    ):
        created = httpx.post(
            f"{url}/admin/keys",
            json={"budget_usd": 100.0},
            headers={"authorization": f"Bearer {ADMIN}"},
        )
        key = created.json()["key"]
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"authorization": f"Bearer {key}"}
        assert httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers).is_success
        redis.stop()
        refused = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers)
        assert refused.status_code == 503
        assert "budgets cannot be checked" in refused.json()["error"]["message"]
        redis.start()

        def admitted() -> bool:
            return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers).is_success

        eventually(admitted, attempts=600)


def test_postgres_crashes_and_returns_under_load(
    loop_thread: LoopThread, fake: FakeUpstream
) -> None:
    pg_replica.require()
    rd = redis_url()
    with (
        pg_replica.standalone() as cluster,
        _parley(loop_thread, fake, database_url=cluster.url, redis_url=next(rd)) as url,
    ):
        key = _key(url)
        with Load(url, key, "m") as load:
            _answers_again(load, 0)  # the key is cached from here on
            cluster.stop()
            outage = load.mark()
            time.sleep(OUTAGE_S)
            during = load.during(outage)
            cluster.start()
            _answers_again(load, load.mark())
        print(f"\nPostgreSQL crash: {load.summary()}")  # noqa: T201 - each scenario reports its tally
        # the request path needs no database once the key is cached: answers went on
        assert any(o.status == 200 for o in during), [o.status for o in during]
        assert all(o.status is not None for o in load.outcomes)
        assert {o.status for o in load.outcomes} <= {200, 429, 503}
        _no_usage_lost(load, cluster.url)
    with pytest.raises(StopIteration):
        next(rd)


def test_a_slow_redis_delays_its_requests_not_the_event_loop(
    loop_thread: LoopThread, fake: FakeUpstream, database: str
) -> None:
    """Redis 0.4 s away: requests that need it (admission) wait, while the liveness probe,
    which needs nothing shared, answers before any of them."""
    with (
        own_redis() as redis,
        DelayProxy(redis.port, 0.4) as proxy,
        _parley(
            loop_thread, fake, database_url=database, redis_url=f"redis://127.0.0.1:{proxy.port}/0"
        ) as url,
    ):
        key = _key(url)
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"authorization": f"Bearer {key}"}
        finished: list[str] = []

        def chat() -> None:
            httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)
            finished.append("chat")

        def live() -> None:
            time.sleep(0.1)  # the chats are in, waiting on Redis
            response = httpx.get(f"{url}/health/live", timeout=30)
            assert response.status_code == 200
            finished.append("live")

        with concurrent.futures.ThreadPoolExecutor(9) as pool:
            jobs = [pool.submit(chat) for _ in range(8)] + [pool.submit(live)]
            for job in jobs:
                job.result()
        print(f"\nslow Redis: completion order {finished}")  # noqa: T201 - each scenario reports its tally
        assert finished[0] == "live"
        assert finished.count("chat") == 8


def _event_named(kind: str, title: str) -> Callable[[dict[str, Any]], bool]:
    def matches(message: dict[str, Any]) -> bool:
        event = message.get("event", {})
        return bool(event.get("type") == kind and event.get("payload", {}).get("title") == title)

    return matches


def _backlog(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith('parley_outbox_backlog{kind="events"}'):
            return float(line.split()[-1])
    return -1.0  # not sampled yet


def test_nats_crashes_and_returns_under_load(
    loop_thread: LoopThread, fake: FakeUpstream, database: str
) -> None:
    """Two instances on one database and a NATS of the test's own. While NATS is down the
    gateway keeps answering (it needs no bus), conversation writes succeed and their events
    wait in the outbox (the backlog gauge shows them); once NATS is back, without a
    restart, the backlog drains, the other instance closes its open socket with 1013 (its
    subscription missed what went by) so the client reloads, a new socket hears changes
    live again, and no usage record is lost."""
    rd = redis_url()
    with own_nats() as nats_server:
        shared = {
            "database_url": database,
            "redis_url": next(rd),
            "nats_url": f"nats://127.0.0.1:{nats_server.port}",
            "nats_namespace": f"chaos{uuid.uuid4().hex[:8]}",
            "allow_registration": True,
            "metrics_sample_seconds": 0.1,
        }
        with (
            _parley(loop_thread, fake, **shared) as a_url,
            _parley(loop_thread, fake, **shared) as b_url,
            contextlib.ExitStack() as stack,
        ):
            a, b = Client(a_url), Client(b_url)
            stack.callback(a.http.close)  # before the servers stop
            stack.callback(b.http.close)
            ada = Account(a, "ada@example.com")
            on_b = Live(b, ada)
            made = ada.call("POST", "/api/conversations", json={"title": "before"})
            assert made.status_code == 201, made.text
            on_b.until(_event_named("conversation.created", "before"))
            with Load(a_url, _key(a_url), "m") as load:
                _answers_again(load, 0)
                nats_server.stop()
                outage = load.mark()
                during_write = ada.call("POST", "/api/conversations", json={"title": "during"})
                eventually(lambda: _backlog(a_url) >= 1)  # waiting in the outbox, not lost
                time.sleep(OUTAGE_S)
                during = load.during(outage)
                nats_server.start()
                _answers_again(load, load.mark())
            print(f"\nNATS crash: {load.summary()}")  # noqa: T201 - each scenario reports its tally
            assert during_write.status_code == 201, during_write.text
            eventually(lambda: _backlog(a_url) == 0, attempts=600)  # published after all
            # B's socket missed what went by while its bus connection was down: B closes
            # it as one that fell behind (1013), so the client reconnects and reloads
            with pytest.raises(ConnectionClosed) as closed:
                on_b.until(lambda _: False)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1013
            on_b.close()
            listed = ada.get("/api/conversations").json()["data"]
            assert {"before", "during"} <= {c["title"] for c in listed}  # the reload has it
            again = Live(b, ada)
            cid = made.json()["id"]
            renamed = ada.call("PATCH", f"/api/conversations/{cid}", json={"title": "after"})
            assert renamed.status_code == 200, renamed.text
            again.until(_event_named("conversation.renamed", "after"))  # live again
            again.close()
            assert any(o.status == 200 for o in during), [o.status for o in during]
            assert all(o.status is not None for o in load.outcomes)
            assert {o.status for o in load.outcomes} <= {200, 429, 503}
            _no_usage_lost(load, database)
    with pytest.raises(StopIteration):
        next(rd)
