"""Keys, limits, budgets, revocation and usage records through the real HTTP surface,
run against the embedded backends (SQLite + in-process state) and the shared ones
(PostgreSQL + Redis)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog.testing

from parley.app import create_app
from parley.config import Settings
from parley.observability.logging import add_request_id
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, fake_models, serve_in_thread
from tests.backends import NATS_URL, nats_namespace, postgres_database, redis_url
from tests.conftest import ParleyFactory

ADMIN = "admin-secret-for-tests-0123456789"
# Output-only price: a request with max_tokens=N answered with N words costs exactly
# N * $0.001, and its reservation equals its cost.
PRICE = {"price": {"input_per_mtok": 0.0, "output_per_mtok": 1000.0}}


@pytest.fixture(params=["embedded", "shared"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    if request.param == "embedded":
        yield {}
        return
    pg = postgres_database(migrated=True)
    rd = redis_url()
    ns = nats_namespace()
    settings = {
        "database_url": next(pg),
        "redis_url": next(rd),
        "nats_url": NATS_URL,
        "nats_namespace": next(ns),
    }
    yield settings
    for gen in (ns, rd, pg):
        with pytest.raises(StopIteration):
            next(gen)


class Client:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=20)

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(
            method, path, headers={"authorization": f"Bearer {ADMIN}"}, **kwargs
        )

    def new_key(self, **fields: Any) -> dict[str, Any]:
        response = self.admin("POST", "/admin/keys", json=fields)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def chat(self, key: str | None, model: str = "openai", **extra: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
        return self.http.post("/v1/chat/completions", json=body, headers=headers)


@pytest.fixture
def start(backend: dict[str, Any], parley: ParleyFactory) -> Iterator[Callable[..., Client]]:
    # backend first: it is torn down last, after the servers using it have stopped
    clients: list[Client] = []

    def run(directive: str = "", **settings: Any) -> Client:
        merged = {"admin_key": ADMIN, "usage_flush_seconds": 0.05, **backend, **settings}
        client = Client(parley(directive=directive, extra=PRICE, **merged))
        clients.append(client)
        return client

    yield run
    for client in clients:
        client.http.close()


def error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


def test_v1_requires_a_valid_key_when_an_admin_key_is_set(start: Callable[..., Client]) -> None:
    client = start()
    missing = client.chat(None)
    assert missing.status_code == 401
    assert "missing API key" in error(missing)["message"]
    bogus = client.chat("pk-not-a-real-key-000000000000000000000000000")
    assert bogus.status_code == 401
    assert error(bogus)["type"] == "authentication_error"
    key = client.new_key(name="ci")
    assert key["key"].startswith("pk-")
    assert key["prefix"] == key["key"][:11]
    ok = client.chat(key["key"])
    assert ok.status_code == 200, ok.text
    via_header = client.http.post(
        "/v1/chat/completions",
        json={"model": "openai", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": key["key"]},
    )
    assert via_header.status_code == 200
    listed = client.admin("GET", "/admin/keys").json()["data"]
    assert [k["id"] for k in listed] == [key["id"]]
    assert "key_hash" not in listed[0]
    assert key["key"] not in str(listed)


def test_rpm_limit_refuses_with_code_and_headers(start: Callable[..., Client]) -> None:
    client = start()
    key = client.new_key(rpm=3)["key"]
    answers = [client.chat(key) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "3"
    assert answers[0].headers["x-ratelimit-remaining-requests"] == "2"
    assert answers[2].headers["x-ratelimit-remaining-requests"] == "0"
    assert answers[0].headers["x-ratelimit-reset-requests"].endswith("s")
    refused = answers[3]
    assert error(refused)["code"] == "rpm_limit_exceeded"
    assert error(refused)["type"] == "rate_limit_error"
    assert 1 <= int(refused.headers["retry-after"]) <= 61
    assert key not in refused.text


def test_tpm_reserves_max_tokens_and_reports_token_headers(start: Callable[..., Client]) -> None:
    client = start(directive="+tokens-5")
    key = client.new_key(tpm=1000)["key"]
    first = client.chat(key, max_tokens=600)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    # 600 reserved + prompt; the call used ~6, so the reservation was given back:
    second = client.chat(key, max_tokens=900)
    assert second.status_code == 200, second.text
    too_big = client.chat(key, max_tokens=5000)
    assert too_big.status_code == 429
    assert error(too_big)["code"] == "tpm_limit_exceeded"
    assert "more than" in error(too_big)["message"]


def test_max_parallel_refuses_the_excess(start: Callable[..., Client]) -> None:
    client = start(directive="+latency-0.8")
    key = client.new_key(max_parallel=2)["key"]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = sorted(r.status_code for r in pool.map(lambda _: client.chat(key), range(4)))
    assert codes == [200, 200, 429, 429]
    assert client.chat(key).status_code == 200  # slots were released


def test_budget_stops_at_the_request_that_would_cross_it(start: Callable[..., Client]) -> None:
    client = start(directive="+tokens-30")
    key = client.new_key(budget_usd=0.10, budget_period="daily")["key"]
    codes = [client.chat(key, max_tokens=30).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]  # $0.03 each: a 4th would reach $0.12
    refused = client.chat(key, max_tokens=30)
    assert error(refused)["code"] == "budget_exceeded"
    assert "Retry-After" in refused.headers


def test_admin_actions_are_audited(parley: ParleyFactory, tmp_path: Path) -> None:
    client = Client(parley(admin_key=ADMIN))
    try:
        key = client.new_key(name="audited")
        client.admin("DELETE", f"/admin/keys/{key['id']}")
    finally:
        client.http.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "parley.db")) as conn:
        rows = conn.execute(
            "SELECT actor, action, target, ip FROM audit_log ORDER BY id"
        ).fetchall()
    assert rows == [
        ("admin-key", "key.create", key["id"], "127.0.0.1"),
        ("admin-key", "key.revoke", key["id"], "127.0.0.1"),
    ]
    assert key["key"] not in str(rows)


def test_revoked_key_is_refused_at_once(start: Callable[..., Client]) -> None:
    client = start()
    key = client.new_key()
    assert client.chat(key["key"]).status_code == 200
    assert client.admin("DELETE", f"/admin/keys/{key['id']}").status_code == 200
    refused = client.chat(key["key"])
    assert refused.status_code == 401
    assert client.admin("DELETE", "/admin/keys/nope").status_code == 404


def test_rotated_key_keeps_the_old_secret_for_the_grace_period(
    start: Callable[..., Client],
) -> None:
    client = start(key_cache_seconds=0)
    key = client.new_key()
    rotated = client.admin("POST", f"/admin/keys/{key['id']}/rotate", json={"grace_seconds": 60})
    new = rotated.json()["key"]
    assert new != key["key"]
    assert client.chat(new).status_code == 200
    assert client.chat(key["key"]).status_code == 200
    again = client.admin("POST", f"/admin/keys/{key['id']}/rotate", json={"grace_seconds": 0})
    assert client.chat(again.json()["key"]).status_code == 200
    assert client.chat(new).status_code == 401


def test_key_model_allow_list(start: Callable[..., Client]) -> None:
    client = start()
    key = client.new_key(models=["openai"])["key"]
    assert client.chat(key, model="openai").status_code == 200
    refused = client.chat(key, model="anthropic")
    assert refused.status_code == 403
    assert error(refused)["code"] == "model_not_allowed"
    listed = client.http.get("/v1/models", headers={"authorization": f"Bearer {key}"}).json()
    assert [m["id"] for m in listed["data"]] == ["openai"]


def test_expired_key_is_refused(start: Callable[..., Client]) -> None:
    client = start(key_cache_seconds=0)
    key = client.new_key(expires_in_days=0.00001)["key"]  # about one second
    time.sleep(1.2)
    assert client.chat(key).status_code == 401


def test_usage_records_reach_the_database_and_aggregate(start: Callable[..., Client]) -> None:
    client = start(directive="+tokens-10")
    key = client.new_key(name="usage")
    for _ in range(3):
        assert client.chat(key["key"], max_tokens=10).status_code == 200
    stream = client.chat(key["key"], max_tokens=10, stream=True)
    assert stream.status_code == 200
    deadline = time.monotonic() + 10
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = client.admin("GET", "/admin/usage", params={"group_by": "key"}).json()["data"]
        if rows and rows[0]["requests"] == 4:
            break
        time.sleep(0.1)
    assert rows == [
        {
            "bucket": key["id"],
            "requests": 4,
            "prompt_tokens": rows[0]["prompt_tokens"],
            "completion_tokens": 40,
            "cached_tokens": 0,
            "errors": 0,
            "cost_usd": pytest.approx(0.04),
        }
    ]
    by_day = client.admin("GET", "/admin/usage", params={"group_by": "day"}).json()
    assert by_day["data"][0]["requests"] == 4
    bad = client.admin("GET", "/admin/usage", params={"group_by": "planet"})
    assert bad.status_code == 400
    assert error(bad)["param"] == "group_by"


def test_admin_routes_refuse_keys_and_anonymous(start: Callable[..., Client]) -> None:
    client = start()
    key = client.new_key()["key"]
    for method, path in (("GET", "/admin/keys"), ("POST", "/admin/keys"), ("GET", "/admin/usage")):
        anonymous = client.http.request(method, path)
        assert anonymous.status_code == 401
        as_key = client.http.request(method, path, headers={"authorization": f"Bearer {key}"})
        assert as_key.status_code in (401, 403)


def test_bad_key_fields_are_400_and_write_nothing(start: Callable[..., Client]) -> None:
    client = start()
    for body, param in (
        ({"rpm": 0}, "rpm"),
        ({"budget_period": "hourly"}, "budget_period"),
        ({"team_id": "no-such-team"}, "team_id"),
        ({"colour": "red"}, "colour"),
    ):
        response = client.admin("POST", "/admin/keys", json=body)
        assert response.status_code == 400, body
        assert error(response)["param"] == param
    assert client.admin("GET", "/admin/keys").json()["data"] == []


DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.mark.parametrize(
    ("modes", "limits", "expected"),
    [
        ({}, {"budget_usd": 5}, 503),  # budgets fail closed by default
        ({}, {"rpm": 100}, 200),  # rate limits fail open by default
        ({"rate_limit_failure_mode": "closed"}, {"rpm": 100}, 503),
        ({"budget_failure_mode": "open"}, {"budget_usd": 5}, 200),
    ],
)
def test_unreachable_redis_applies_the_failure_mode(
    parley: ParleyFactory, modes: dict[str, str], limits: dict[str, Any], expected: int
) -> None:
    client = Client(parley(extra=PRICE, admin_key=ADMIN, redis_url=DEAD_REDIS, **modes))
    try:
        key = client.new_key(**limits)["key"]
        answer = client.chat(key)
        assert answer.status_code == expected, answer.text
        if expected == 503:
            assert error(answer)["code"] == "service_unavailable"
            assert "retry" in error(answer)["message"]
    finally:
        client.http.close()


def test_keyless_embedded_tier_serves_anonymous_callers(parley: ParleyFactory) -> None:
    client = Client(parley())
    try:
        assert client.chat(None).status_code == 200
        assert client.chat("sk-whatever-the-sdk-needs").status_code == 200
        # a Parley key, though, must be valid even where keys are optional
        assert client.chat("pk-unknown-000000000000000000000000000000000").status_code == 401
    finally:
        client.http.close()


def test_security_headers_and_cors_allow_list(parley: ParleyFactory) -> None:
    url = parley(cors_origins=["https://chat.example.com"])
    with httpx.Client(base_url=url) as http:
        response = http.get("/v1/models")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "strict-transport-security" not in response.headers  # plain HTTP here
        allowed = http.options(
            "/v1/chat/completions",
            headers={
                "origin": "https://chat.example.com",
                "access-control-request-method": "POST",
            },
        )
        assert allowed.headers["access-control-allow-origin"] == "https://chat.example.com"
        denied = http.get("/v1/models", headers={"origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in denied.headers
        # The hot routes skip FastAPI's stack, but neither the envelope nor, for a
        # browser's cross-origin call, the CORS layer.
        body = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}
        for origin in ({}, {"origin": "https://chat.example.com"}):
            answer = http.post("/v1/chat/completions", json=body, headers=origin)
            assert answer.status_code == 200
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["x-request-id"]
            assert float(answer.headers["x-parley-overhead-ms"]) >= 0
            allow = answer.headers.get("access-control-allow-origin")
            assert allow == (origin["origin"] if origin else None)


def test_shared_tier_always_requires_keys(parley: ParleyFactory) -> None:
    """With Redis (or PostgreSQL) configured, several instances may serve: no anonymous /v1."""
    client = Client(parley(redis_url="redis://127.0.0.1:6379/15"))
    try:
        assert client.chat(None).status_code == 401
    finally:
        client.http.close()


def test_soft_budget_logs_and_counts_but_serves(start: Callable[..., Client]) -> None:
    client = start(directive="+tokens-30")
    key = client.new_key(soft_budget_usd=0.05)["key"]
    codes = [client.chat(key, max_tokens=30).status_code for _ in range(4)]
    assert codes == [200] * 4  # soft: never refuses
    metrics = client.http.get("/metrics").text
    line = next(
        x for x in metrics.splitlines() if x.startswith("parley_soft_budget_exceeded_total")
    )
    # flagged from the request that takes spend past $0.05 (the 2nd, to $0.06) onwards
    assert line.endswith(" 3.0")


def test_graceful_shutdown_writes_queued_usage(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> None:
    """Usage waiting for its (hour-long) flush interval is written when the app stops."""
    db = tmp_path / "usage.db"
    settings = Settings(database_url=f"sqlite:///{db}", usage_flush_seconds=3600)
    app = create_app(settings, models=fake_models(fake.url))
    with serve_in_thread(loop_thread, app) as url, httpx.Client(base_url=url) as http:
        for _ in range(3):
            body = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}
            assert http.post("/v1/chat/completions", json=body).status_code == 200
        assert _count_usage(db) == 0  # still queued
    assert _count_usage(db) == 3


def _count_usage(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM usage").fetchone()[0])


def test_admin_budget_reset_starts_the_period_again(start: Callable[..., Client]) -> None:
    client = start(directive="+tokens-30", key_cache_seconds=0)
    key = client.new_key(budget_usd=0.05, budget_period="monthly")
    assert client.chat(key["key"], max_tokens=30).status_code == 200
    assert client.chat(key["key"], max_tokens=30).status_code == 429
    reset = client.admin("POST", f"/admin/keys/{key['id']}/reset-budget")
    assert reset.status_code == 200
    assert reset.json()["budget_reset_ms"] is not None
    assert client.chat(key["key"], max_tokens=30).status_code == 200
    assert client.chat(key["key"], max_tokens=30).status_code == 429


def test_each_request_logs_one_line_with_who_what_where_and_outcome(
    start: Callable[..., Client],
) -> None:
    client = start()
    key = client.new_key()
    with structlog.testing.capture_logs(processors=[add_request_id]) as logs:
        ok = client.chat(key["key"])
        failed = client.chat(key["key"], model="openai", temperature=9)
    assert failed.status_code == 400
    lines = [entry for entry in logs if entry["event"] == "llm request"]
    assert len(lines) == 1  # the invalid request never reached the gateway
    line = lines[0]
    assert line["request_id"] == ok.headers["x-request-id"]
    assert line["key_id"] == key["id"]
    assert line["model_group"] == "openai"
    assert line["deployment"] == ok.headers["x-parley-deployment"]
    assert (line["status"], line["outcome"]) == (200, "ok")
    assert key["key"] not in str(logs)
