"""Budgets beyond keys, users and teams (the installation, a model group, a user tier per
member), the per-request cost ceiling and downgrade instead of refusal, on two Parley
instances sharing one Redis and one PostgreSQL, under concurrency spread over both."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, models_from, serve_in_thread
from parley.testing.webhooks import WebhookReceiver
from tests.backends import postgres_database, redis_url
from tests.e2e.test_access import ADMIN, Client, error
from tests.e2e.test_auth import Account
from tests.polling import eventually

# Output-only prices: max_tokens=25 answered with 25 words reserves and costs exactly
# 25 x $0.001 = $0.025 in "dear" groups and $0.0025 in the "cheap" one.
DEAR = {"input_per_mtok": 0.0, "output_per_mtok": 1000.0}
CHEAP = {"input_per_mtok": 0.0, "output_per_mtok": 100.0}
TOKENS = 25

Pair = Callable[..., tuple[Client, Client]]


def group(name: str, fake: FakeUpstream, price: dict[str, float], **extra: Any) -> dict[str, Any]:
    dep = {
        "provider": "openai_compatible",
        "model": f"{name}+tokens-{TOKENS}",
        "api_base": f"{fake.url}/v1",
        "price": price,
    }
    return {"name": name, "deployments": [dep], **extra}


@pytest.fixture
def pair(loop_thread: LoopThread, fake: FakeUpstream) -> Iterator[Pair]:
    """``pair(groups, **model_file)``: two instances on one Redis and one PostgreSQL."""
    pg, rd = postgres_database(migrated=True), redis_url()
    shared = {"database_url": next(pg), "redis_url": next(rd)}
    stack: list[Any] = []
    clients: list[Client] = []

    def start(
        groups: list[dict[str, Any]],
        settings_extra: dict[str, Any] | None = None,
        **model_file: Any,
    ) -> tuple[Client, Client]:
        settings = Settings(
            admin_key=ADMIN,
            usage_flush_seconds=0.05,
            allow_registration=True,
            **shared,
            **(settings_extra or {}),
        )
        made = []
        for _ in range(2):
            models = models_from(groups, **model_file)
            server = serve_in_thread(loop_thread, create_app(settings, models=models))
            stack.append(server)
            made.append(Client(server.__enter__()))
        clients.extend(made)
        return made[0], made[1]

    start.database_url = shared["database_url"]  # type: ignore[attr-defined]
    yield start
    for client in clients:
        client.http.close()
    for server in reversed(stack):
        server.__exit__(None, None, None)
    for gen in (rd, pg):
        with pytest.raises(StopIteration):
            next(gen)


def _usage_rows(database_url: str) -> list[Any]:
    async def fetch() -> list[Any]:
        conn = await asyncpg.connect(database_url)
        try:
            return list(await conn.fetch("SELECT model_group, route_tier FROM usage"))
        finally:
            await conn.close()

    return asyncio.run(fetch())


def spread(clients: tuple[Client, Client], key: str, n: int, **body: Any) -> list[httpx.Response]:
    """``n`` requests, alternately to each instance, 10 at a time."""
    targets = itertools.cycle(clients)
    jobs = [next(targets) for _ in range(n)]
    body.setdefault("max_tokens", TOKENS)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        return list(pool.map(lambda c: c.chat(key, **body), jobs))


def test_installation_budget_refuses_exactly_at_the_limit(pair: Pair, fake: FakeUpstream) -> None:
    a, b = pair(
        [group("dear", fake, DEAR), group("other", fake, DEAR)],
        budget={"usd": 1.00, "period": "daily"},
    )
    keys = [a.new_key()["key"], b.new_key()["key"]]  # the installation's budget spans keys
    responses = spread((a, b), keys[0], 30, model="dear")
    responses += spread((b, a), keys[1], 30, model="other")
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 40  # $1.00 / $0.025, across keys and groups
    refused = next(r for r in responses if r.status_code == 429)
    message = error(refused)["message"]
    assert "the installation has reached its daily budget of $1.0000" in message
    assert "$0.000000 left" in message
    assert "the period resets at" in message
    assert "default estimate" not in message  # the request set max_tokens
    assert refused.headers["retry-after"]


def test_group_budget_refuses_exactly_and_names_the_default_estimate(
    pair: Pair, fake: FakeUpstream
) -> None:
    a, b = pair([group("dear", fake, DEAR, budget={"usd": 0.50, "period": "daily"})])
    key = a.new_key()["key"]
    codes = [r.status_code for r in spread((a, b), key, 30, model="dear")]
    assert codes.count(200) == 20
    before = len(fake.calls)
    # No max_tokens: the reservation is the default estimate (1024 completion tokens)
    refused = b.chat(key, model="dear")
    assert refused.status_code == 429
    body = error(refused)
    assert body["code"] == "budget_exceeded"
    assert "model group dear has reached its daily budget of $0.5000" in body["message"]
    assert "default estimate" in body["message"]
    assert "set max_tokens" in body["message"]
    assert len(fake.calls) == before


def test_group_downgrades_instead_of_refusing_exactly_at_the_limit(
    pair: Pair, fake: FakeUpstream
) -> None:
    a, b = pair(
        [
            group(
                "big",
                fake,
                DEAR,
                budget={"usd": 0.25, "period": "daily"},
                downgrade={"to": "small"},
            ),
            group("small", fake, CHEAP),
        ]
    )
    key = a.new_key()["key"]
    responses = spread((a, b), key, 30, model="big")
    assert all(r.status_code == 200 for r in responses)
    downgraded = [r for r in responses if r.headers.get("x-parley-downgraded-from") == "big"]
    assert len(downgraded) == 20  # $0.25 / $0.025 served by big, the rest by small
    assert {r.headers["x-parley-model-group"] for r in downgraded} == {"small"}
    assert {r.headers["x-parley-downgrade-reason"] for r in downgraded} == {"budget:model"}
    assert {r.json()["model"] for r in downgraded} == {f"small+tokens-{TOKENS}"}
    assert {r.headers["x-parley-cost-usd"] for r in downgraded} == {"0.002500000"}
    assert {r.headers["x-parley-cached-tokens"] for r in downgraded} == {"0"}
    # the usage records name the serving group and the decision
    rows: list[Any] = []

    def recorded() -> bool:
        rows[:] = _usage_rows(pair.database_url)  # type: ignore[attr-defined]
        return len(rows) == 30

    eventually(recorded)
    assert sorted((r["model_group"], r["route_tier"]) for r in rows) == sorted(
        [("big", None)] * 10 + [("small", "downgrade:big")] * 20
    )


def test_a_chat_answer_downgraded_says_which_model_answered(pair: Pair, fake: FakeUpstream) -> None:
    """In the chat app, a budget's downgrade is told to the tab (a ``model`` event before
    the text) and the answer is saved as the cheaper group's, on either instance."""
    a, b = pair(
        [
            group(
                "big", fake, DEAR, budget={"usd": 0.0, "period": "daily"}, downgrade={"to": "small"}
            ),
            group("small", fake, CHEAP),
        ]
    )
    ada = Account(a, "ada@example.com")
    created = ada.call("POST", "/api/conversations", json={"model": "big"})
    cid = created.json()["id"]
    sent = ada.call("POST", f"/api/conversations/{cid}/messages", json={"content": "one two three"})
    assert sent.status_code == 200, sent.text
    events = [json.loads(line[6:]) for line in sent.text.splitlines() if line.startswith("data: {")]
    kinds = [e["type"] for e in events]
    assert "model" in kinds
    assert kinds.index("model") < kinds.index("delta")
    (announced,) = [e for e in events if e["type"] == "model"]
    assert announced == {
        "type": "model",
        "model": "small",
        "downgraded_from": "big",
        "reason": "budget:model",
    }
    bearer = {"authorization": f"Bearer {ada.tokens['access_token']}"}
    read = b.http.get(f"/api/conversations/{cid}", headers=bearer)  # the other instance
    messages = read.json()["messages"]
    assert [(m["role"], m["model"]) for m in messages][-1] == ("assistant", "small")


def test_group_downgrades_past_a_threshold(pair: Pair, fake: FakeUpstream) -> None:
    a, b = pair(
        [
            group(
                "big",
                fake,
                DEAR,
                budget={"usd": 0.25, "period": "daily"},
                downgrade={"to": "small", "at_percent": 40},
            ),
            group("small", fake, CHEAP),
        ]
    )
    key = a.new_key()["key"]
    served = [
        r.headers.get("x-parley-downgrade-reason", "big")
        for r in (c.chat(key, model="big", max_tokens=TOKENS) for c in (a, b) * 3)
    ]
    # 1 and 2 leave big 10% and 20% spent; 3 would reach 30%, 4 40%: at 40% it moves on
    assert served == ["big", "big", "big", "threshold:40%", "threshold:40%", "threshold:40%"]


def pool(
    fake: FakeUpstream,
    a_budget: float,
    b_budget: float | None = None,
    *,
    a_fault: str = "",
    b_fault: str = "",
    retries: int = 0,
) -> dict[str, Any]:
    """Deployments ``a`` (tried first) and ``b``, each with its own budget if given, and no
    retries: passing over a spent deployment must not use up the one attempt."""
    deps = []
    for order, (name, usd) in enumerate((("a", a_budget), ("b", b_budget)), start=1):
        fault = a_fault if name == "a" else b_fault
        dep: dict[str, Any] = {
            "name": f"pool-{name}",
            "provider": "openai_compatible",
            "model": f"{name}{fault}+tokens-{TOKENS}",
            "api_base": f"{fake.url}/v1",
            "price": DEAR,
            "order": order,
        }
        if usd is not None:
            dep["budget"] = {"usd": usd, "period": "daily"}
        deps.append(dep)
    return {"name": "pool", "strategy": "ordered", "retries": retries, "deployments": deps}


def test_deployment_budget_passes_a_spent_deployment_over_exactly(
    pair: Pair, fake: FakeUpstream
) -> None:
    a, b = pair([pool(fake, a_budget=0.25)])
    key = a.new_key()["key"]
    responses = spread((a, b), key, 30, model="pool")
    assert [r.status_code for r in responses] == [200] * 30
    served = collections.Counter(r.json()["model"] for r in responses)
    # $0.25 / $0.025: ten on a, across both instances; the rest on b
    assert served == {f"a+tokens-{TOKENS}": 10, f"b+tokens-{TOKENS}": 20}
    assert len(fake.calls) == 30  # a spent deployment is never called
    eventually(lambda: len(_usage_rows(pair.database_url)) == 30)  # type: ignore[attr-defined]
    rows = b.admin("GET", "/admin/spend/forecast").json()["data"]
    (row,) = [r for r in rows if r["scope"] == "deployment"]
    assert row["holder"] == "pool-a"
    assert row["spent_usd"] == pytest.approx(0.25)
    assert row["budget_usd"] == pytest.approx(0.25)


def test_deployment_budgets_all_spent_refuse_with_the_budget(
    pair: Pair, fake: FakeUpstream
) -> None:
    a, b = pair([pool(fake, a_budget=0.05, b_budget=0.025)])
    key = a.new_key()["key"]
    codes = [r.status_code for r in spread((a, b), key, 6, model="pool")]
    assert codes.count(200) == 3  # two on a, one on b
    before = len(fake.calls)
    refused = b.chat(key, model="pool", max_tokens=TOKENS)
    assert refused.status_code == 429
    body = error(refused)
    assert body["code"] == "budget_exceeded"
    assert "deployment pool-a has reached its daily budget of $0.0500" in body["message"]
    assert "deployment pool-b has reached its daily budget of $0.0250" in body["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert len(fake.calls) == before


def test_a_failed_attempt_gives_its_deployment_reservation_back(
    pair: Pair, fake: FakeUpstream
) -> None:
    """a's budget has room for one request at a time and a fails every time; b streams
    slowly. While the first request streams from b, a second is sent: had the first kept
    its failed attempt's reservation on a until it finished, a would read as spent and the
    second would skip it."""
    a, b = pair(
        [pool(fake, a_budget=0.025, a_fault="+error-500", b_fault="+chunk-delay-0.1", retries=1)]
    )
    key = a.new_key()["key"]
    body = {
        "model": "pool",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": TOKENS,
        "stream": True,
    }
    headers = {"authorization": f"Bearer {key}"}
    with a.http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as first:
        assert first.status_code == 200
        lines = first.iter_lines()  # kept: a dropped iterator would close the stream
        next(lines)  # b is streaming; a's attempt failed before it
        second = b.chat(key, model="pool", max_tokens=TOKENS)
        assert second.status_code == 200
        assert second.json()["model"] == f"b+chunk-delay-0.1+tokens-{TOKENS}"
        tried_a = [c for c in fake.calls if c.body["model"].startswith("a+error-500")]
        assert len(tried_a) == 2


def test_tier_budget_applies_to_each_member(pair: Pair, fake: FakeUpstream) -> None:
    a, b = pair(
        [group("dear", fake, DEAR)],
        user_tiers=[{"name": "free", "budget": {"usd": 0.05, "period": "daily"}}],
    )
    keys = []
    for n in range(2):
        created = a.http.post(
            "/auth/register",
            json={
                "email": f"m{n}@example.com",
                "password": "correct horse battery 42",
                "name": "M",
            },
        )
        assert created.status_code == 201, created.text
        user = created.json()["id"]
        patched = a.admin("PATCH", f"/admin/users/{user}", json={"tier": "free"})
        assert patched.status_code == 200, patched.text
        assert patched.json()["tier"] == "free"
        keys.append(a.new_key(user_id=user)["key"])
    for key in keys:  # $0.05 each: two requests per member, whichever instance
        codes = [c.chat(key, model="dear", max_tokens=TOKENS).status_code for c in (a, b, a)]
        assert codes == [200, 200, 429]
    message = error(b.chat(keys[1], model="dear", max_tokens=TOKENS))["message"]
    assert "user tier free (member" in message
    eventually(lambda: len(_usage_rows(pair.database_url)) == 4)  # type: ignore[attr-defined]
    rows = a.admin("GET", "/admin/spend/forecast").json()["data"]
    members = sorted((r["holder"], r["spent_usd"]) for r in rows if r["scope"] == "tier")
    assert members == [
        ("free (member m0@example.com)", pytest.approx(0.05)),
        ("free (member m1@example.com)", pytest.approx(0.05)),
    ]


def test_per_request_ceiling_refuses_before_any_upstream_call(
    pair: Pair, fake: FakeUpstream
) -> None:
    a, b = pair(
        [group("dear", fake, DEAR, max_cost_usd=0.05)],
        user_tiers=[{"name": "free", "max_cost_usd": 0.02}],
    )
    key = a.new_key(max_cost_usd=0.04)["key"]
    assert a.chat(key, model="dear", max_tokens=40).status_code == 200  # $0.04: at the key's
    before = len(fake.calls)
    over_key = b.chat(key, model="dear", max_tokens=41)
    assert over_key.status_code == 400
    body = error(over_key)
    assert body["code"] == "max_cost_exceeded"
    assert "max_cost_usd of $0.040000" in body["message"]
    # the header can only lower the ceiling: 0.03 refuses what the key allows ...
    lowered = a.http.post(
        "/v1/chat/completions",
        json={"model": "dear", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 35},
        headers={"authorization": f"Bearer {key}", "x-parley-max-cost-usd": "0.03"},
    )
    assert lowered.status_code == 400
    assert "x-parley-max-cost-usd header of $0.030000" in error(lowered)["message"]
    # ... and 1.00 does not raise it above the key's 0.04
    raised = a.http.post(
        "/v1/chat/completions",
        json={"model": "dear", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 45},
        headers={"authorization": f"Bearer {key}", "x-parley-max-cost-usd": "1.00"},
    )
    assert raised.status_code == 400
    # no max_tokens: the default estimate (1024 tokens, $1.024) is above the group's $0.05
    unbounded = b.chat(a.new_key()["key"], model="dear")
    assert unbounded.status_code == 400
    assert "model group dear's max_cost_usd of $0.050000" in error(unbounded)["message"]
    assert "default estimate" in error(unbounded)["message"]
    assert len(fake.calls) == before


def test_thresholds_alert_exactly_once_though_the_receiver_is_down_at_first(
    pair: Pair, fake: FakeUpstream, loop_thread: LoopThread
) -> None:
    receiver = WebhookReceiver(secret="hook-secret-123", fail_first=2)
    loop_thread.run(receiver.start())
    try:
        a, b = pair(
            [group("dear", fake, DEAR)],
            settings_extra={
                "alert_webhook_url": receiver.url,
                "alert_webhook_secret": "hook-secret-123",
                "alert_retry_base_seconds": 0.05,
                "alert_poll_seconds": 0.05,
            },
            budget={"usd": 1.00, "period": "daily", "alert_thresholds": [50, 80, 100]},
        )
        key = a.new_key()["key"]
        codes = [r.status_code for r in spread((a, b), key, 44, model="dear")]
        assert codes.count(200) == 40
        eventually(lambda: len(receiver.received) >= 3)
        # both instances saw every threshold crossed; the receiver got each exactly once.
        # A delivery's row says "delivered" just after the receiver answered: wait for it.
        deliveries: list[dict[str, Any]] = []

        def settled() -> bool:
            deliveries[:] = a.admin("GET", "/admin/alerts").json()["data"]
            return len(deliveries) == 3 and all(d["status"] == "delivered" for d in deliveries)

        eventually(settled)
        assert sum(d["attempts"] for d in deliveries) == 5  # two refused attempts retried
        assert sorted(e["threshold_percent"] for e in receiver.received) == [50, 80, 100]
        assert len(set(receiver.ids())) == 3
        assert receiver.rejected_signatures == 0
        first = receiver.received[0]
        assert first["scope"] == "installation"
        assert first["budget_usd"] == 1.0
        eventually(lambda: len(_usage_rows(pair.database_url)) == 40)  # type: ignore[attr-defined]
        forecast = a.admin("GET", "/admin/spend/forecast")
        assert forecast.status_code == 200, forecast.text
        (row,) = [r for r in forecast.json()["data"] if r["scope"] == "installation"]
        assert row["spent_usd"] == pytest.approx(1.0)
        assert row["projected_usd"] >= row["spent_usd"]
        assert receiver.attempts == 5
    finally:
        loop_thread.run(receiver.stop())
