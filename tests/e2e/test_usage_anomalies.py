"""Usage anomaly detection through HTTP on two instances sharing PostgreSQL and Redis: a
key with three quiet days suddenly hammers from twenty addresses; the scan on one instance
raises the anomaly (stored, audited, counted, sent to the webhook) and suspends the key on
both; dismissing the review lifts it on both."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from parley.config import Settings
from parley.gateway.accounting.usage import USAGE_COLUMNS, UsageRecord
from parley.store.db import Database
from parley.store.tables import usage
from parley.store.usage import insert_usage
from parley.testing.servers import LoopThread
from parley.testing.webhooks import WebhookReceiver
from tests.conftest import ParleyFactory
from tests.e2e.test_access import ADMIN, error
from tests.polling import eventually

HOUR_MS = 3_600_000
PRICE = {"price": {"input_per_mtok": 5.0, "output_per_mtok": 15.0}}


def _history(key_id: str, end_ms: int) -> list[tuple[Any, ...]]:
    """Three days of five requests an hour for the key and for 29 others like it."""
    rng = random.Random(7)  # noqa: S311 - synthetic traffic, not a secret
    rows = []
    for n, key in enumerate([key_id, *(f"other{i:02d}" for i in range(29))]):
        for hour in range(72):
            start = end_ms - (hour + 1) * HOUR_MS
            for i in range(rng.randint(3, 7)):
                record = UsageRecord(
                    request_id=f"h-{n}-{hour}-{i}",
                    time_ms=start + rng.randrange(HOUR_MS),
                    model_group="openai",
                    status=200,
                    key_id=key,
                    prompt_tokens=int(rng.lognormvariate(5, 0.7)),
                    completion_tokens=int(rng.lognormvariate(5, 0.7)),
                    cost_nusd=rng.randint(500_000, 3_000_000),
                    client_ip=f"10.0.{n}.1",
                )
                rows.append(tuple(getattr(record, c) for c in USAGE_COLUMNS))
    return rows


async def _load(url: str, rows: list[tuple[Any, ...]]) -> None:
    db = Database(Settings(database_url=url).database_url)
    try:
        await insert_usage(db, USAGE_COLUMNS, rows)
    finally:
        await db.close()


async def _recent(url: str, key_id: str, since_ms: int) -> int:
    db = Database(Settings(database_url=url).database_url)
    try:
        async with db.read() as conn:
            query = select(func.count()).where(
                usage.c.key_id == key_id, usage.c.time_ms >= since_ms
            )
            return int(await conn.scalar(query) or 0)
    finally:
        await db.close()


def _admin(url: str, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {ADMIN}"}
    return httpx.request(method, url + path, headers=headers, timeout=30, **kw)


def _chat(url: str, key: str, ip: str = "10.9.9.9") -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "openai", "messages": [{"role": "user", "content": "word " * 400}]},
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": ip},
        timeout=30,
    )


@pytest.fixture
def receiver(loop_thread: LoopThread) -> Any:
    hook = WebhookReceiver(secret="hook-secret-anomaly")
    loop_thread.run(hook.start())
    yield hook
    loop_thread.run(hook.stop())


def test_a_hammering_key_is_suspended_on_every_instance_until_reviewed(
    shared: dict[str, str], parley: ParleyFactory, receiver: WebhookReceiver
) -> None:
    settings: dict[str, Any] = {
        "admin_key": ADMIN,
        "trusted_proxies": "127.0.0.1",
        "anomaly_enabled": True,
        "anomaly_suspend_keys": True,
        "anomaly_min_windows": 50,
        "anomaly_scan_seconds": 3600,  # the test scans on demand
        "key_cache_seconds": 1,
        "usage_flush_seconds": 0.05,
        "alert_webhook_url": receiver.url,
        "alert_webhook_secret": "hook-secret-anomaly",
        "alert_poll_seconds": 0.05,
        **shared,
    }
    a, b = parley(extra=PRICE, **settings), parley(extra=PRICE, **settings)
    created = _admin(a, "POST", "/admin/keys", json={"name": "leaky"})
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["id"]
    now = int(time.time() * 1000)
    asyncio.run(_load(shared["database_url"], _history(key_id, now // HOUR_MS * HOUR_MS - HOUR_MS)))

    for n in range(150):  # thirty times its usual hour, from twenty addresses
        assert _chat(a, key, ip=f"203.0.113.{n % 20 + 1}").status_code == 200
    # the usage writer's last batch may land just after the last answer
    eventually(lambda: asyncio.run(_recent(shared["database_url"], key_id, now)) == 150)
    found = _admin(b, "POST", "/admin/anomalies/scan")
    assert found.status_code == 200, found.text
    (raised,) = found.json()["data"]
    assert raised["scope"] == "key"
    assert raised["subject"] == key_id
    assert raised["suspended"] is True
    assert raised["score"] >= 0.62

    for instance in (a, b):  # suspended everywhere, in the API's own error shape
        refused = _chat(instance, key)
        assert refused.status_code == 403, refused.text
        assert error(refused)["code"] == "key_suspended"
        assert error(refused)["type"] == "permission_error"
        assert "administrator must review it" in error(refused)["message"]

    again = _admin(a, "POST", "/admin/anomalies/scan")
    assert again.json()["data"] == []  # open already: not raised twice

    (row,) = _admin(a, "GET", "/admin/anomalies?status=open").json()["data"]
    assert row["id"] == raised["id"]
    assert row["features"]["requests"] == 150
    assert row["features"]["addresses"] == 20
    key_view = _admin(b, "GET", f"/admin/keys/{key_id}").json()
    assert key_view["suspended_ms"] is not None
    audit = _admin(a, "GET", "/admin/audit?action=usage.anomaly").json()["data"]
    assert [e["target"] for e in audit] == [key_id]
    metrics = _admin(b, "GET", "/metrics").text
    assert 'parley_usage_anomalies_total{action="suspend",scope="key"} 1.0' in metrics

    eventually(lambda: len(receiver.received) == 1)
    (event,) = receiver.received
    assert event["type"] == "usage.anomaly"
    assert event["subject"] == key_id
    assert event["suspended"] is True
    assert receiver.rejected_signatures == 0

    bad = _admin(a, "POST", f"/admin/anomalies/{raised['id']}/review", json={"decision": "ok"})
    assert bad.status_code == 400
    assert error(bad)["param"] == "decision"
    review = _admin(
        a,
        "POST",
        f"/admin/anomalies/{raised['id']}/review",
        json={"decision": "dismissed", "note": "load test"},
    )
    assert review.status_code == 200, review.text
    assert review.json()["lifted"] is True
    assert _chat(a, key).status_code == 200
    eventually(lambda: _chat(b, key).status_code == 200)  # b's key cache: one second
    twice = _admin(
        b, "POST", f"/admin/anomalies/{raised['id']}/review", json={"decision": "confirmed"}
    )
    assert twice.status_code == 409
    reviews = _admin(a, "GET", "/admin/audit?action=usage.anomaly.dismissed").json()["data"]
    assert [e["target"] for e in reviews] == [key_id]


def test_scan_and_review_answer_409_while_detection_is_off(parley: ParleyFactory) -> None:
    url = parley(admin_key=ADMIN)
    scan = _admin(url, "POST", "/admin/anomalies/scan")
    assert scan.status_code == 409
    assert error(scan)["code"] == "anomaly_detection_off"
    assert _admin(url, "GET", "/admin/anomalies").json()["data"] == []
