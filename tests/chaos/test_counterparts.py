"""Counterparts taken away under load: Redis and PostgreSQL crash and come back while
clients keep sending. Parley keeps serving what it can (rate limits fail open by default,
keys are cached), refuses the rest fast, recovers without a restart, and loses no usage
record. A slow Redis delays the requests that need it, not the event loop. Each scenario
prints what was sent, answered, refused and lost."""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, models_from, serve_in_thread
from tests import pg_replica
from tests.backends import postgres_database, redis_url
from tests.chaos.load import Load
from tests.chaos.services import DelayProxy, own_redis
from tests.e2e.test_access import ADMIN
from tests.e2e.test_multi_instance import _usage_ids
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
