"""Fault tests: what the client receives, and which deployments were called, when
upstreams fail, slow down, rate-limit or overflow (issue: routing and resilience)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.scenario import Behaviour
from parley.testing.servers import LoopThread, free_port, models_from, serve_in_thread
from tests.backends import sqlite_url
from tests.polling import eventually

ADMIN = "admin-secret-for-tests-0123456789"
CHAT = {"messages": [{"role": "user", "content": "hello there"}]}


def dep(fake: FakeUpstream | str, model: str, name: str, **extra: Any) -> dict[str, Any]:
    base = fake if isinstance(fake, str) else fake.url
    return {
        "provider": "openai_compatible",
        "model": model,
        "api_base": f"{base}/v1",
        "name": name,
        **extra,
    }


Serve = Callable[..., str]


@pytest.fixture
def serve(loop_thread: LoopThread, tmp_path: Path) -> Iterator[Serve]:
    stack = contextlib.ExitStack()

    def start(
        groups: list[dict[str, Any]],
        tiered: list[dict[str, Any]] | None = None,
        experiments: list[dict[str, Any]] | None = None,
        **settings: Any,
    ) -> str:
        if "database_url" not in settings:
            settings["database_url"] = sqlite_url(tmp_path)
        settings.setdefault("admin_key", ADMIN)
        models = models_from(groups, tiered=tiered or [], experiments=experiments or [])
        app = create_app(Settings(**settings), models=models)
        return stack.enter_context(serve_in_thread(loop_thread, app))

    with stack:
        yield start


def chat(url: str, model: str, **extra: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {ADMIN}", **extra.pop("headers", {})}
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={**CHAT, "model": model, **extra},
        headers=headers,
        timeout=30,
    )


def streamed_text(answer: httpx.Response) -> str:
    parts = []
    for line in answer.text.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:])["choices"]:
                parts.append(choice["delta"].get("content") or "")
    assert answer.text.rstrip().endswith("data: [DONE]")
    return "".join(parts)


def models_called(fake: FakeUpstream) -> list[str]:
    return [str(call.body["model"]) for call in fake.calls]


def admin_deployments(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(
        f"{url}/admin/deployments", headers={"authorization": f"Bearer {ADMIN}"}
    ).json()
    return body


def deployments(url: str) -> dict[str, dict[str, Any]]:
    return {row["deployment"]: row for row in admin_deployments(url)["data"]}


BREAKER = {"failure_rate": 0.5, "window": 30, "min_requests": 3, "cooldown": 0.5}


def test_failing_deployment_trips_its_breaker_and_traffic_shifts(
    serve: Serve, fake: FakeUpstream
) -> None:
    url = serve(
        [
            {
                "name": "chat",
                "strategy": "ordered",
                "circuit_breaker": {**BREAKER, "cooldown": 60},
                "deployments": [
                    dep(fake, "broken+error-500", "broken", order=1),
                    dep(fake, "healthy", "healthy", order=2),
                ],
            }
        ]
    )
    answers = [chat(url, "chat") for _ in range(10)]
    assert [a.status_code for a in answers] == [200] * 10
    assert {a.headers["x-parley-deployment"] for a in answers} == {"healthy"}
    called = models_called(fake)
    # three failures opened the breaker; after that the broken deployment saw nothing
    assert called.count("broken+error-500") == 3
    assert called.count("healthy") == 10
    state = deployments(url)
    assert state["broken"]["breaker"] == "open"
    assert state["healthy"]["breaker"] == "closed"
    metrics = httpx.get(f"{url}/metrics").text
    assert 'parley_breaker_transitions_total{deployment="broken",to_state="open"} 1.0' in metrics


def test_breaker_recovers_through_half_open(
    serve: Serve, fake: FakeUpstream, second_fake: FakeUpstream
) -> None:
    # The two checks made while it is open must both fall inside the cooldown, even on a
    # loaded machine: 2 s, and the test waits for the cooldown by asking, not by sleeping.
    url = serve(
        [
            {
                "name": "chat",
                "circuit_breaker": {**BREAKER, "cooldown": 2},
                "deployments": [
                    dep(fake, "primary", "primary", order=1),
                    dep(second_fake, "backup", "backup", order=2),
                ],
            }
        ]
    )
    for _ in range(3):
        fake.fail_next(Behaviour(status=502))
    for _ in range(3):
        assert chat(url, "chat").status_code == 200
    assert deployments(url)["primary"]["breaker"] == "open"
    assert chat(url, "chat").headers["x-parley-deployment"] == "backup"  # skipped while open
    # cooldown over: the next call is a half-open probe, and it succeeds
    eventually(lambda: deployments(url)["primary"]["breaker"] == "half_open")
    probe = chat(url, "chat")
    assert probe.headers["x-parley-deployment"] == "primary"
    assert deployments(url)["primary"]["breaker"] == "closed"
    assert chat(url, "chat").headers["x-parley-deployment"] == "primary"


def test_health_checks_open_an_idle_failing_deployment_and_close_it_when_it_recovers(
    serve: Serve, fake: FakeUpstream
) -> None:
    check = {"interval": 0.05, "timeout": 2}
    # Down until the test says it has recovered: with a fixed number of failures the breaker
    # could open and close again between two polls of a loaded machine.
    fake.defaults = Behaviour(status=502)
    url = serve(
        [
            {
                "name": "chat",
                "circuit_breaker": BREAKER,
                "deployments": [dep(fake, "primary", "primary", health_check=check)],
            }
        ]
    )
    eventually(lambda: deployments(url)["primary"]["breaker"] == "open")  # no user call made
    assert deployments(url)["primary"]["last_health_check"]["ok"] is False
    fake.defaults = Behaviour()
    # the cooldown passes, a probe takes the half-open slot, succeeds, and closes it
    eventually(lambda: deployments(url)["primary"]["breaker"] == "closed")
    assert deployments(url)["primary"]["last_health_check"]["ok"] is True
    probes = [call.body for call in fake.calls]
    assert len(probes) >= 4
    assert all(p["max_tokens"] == 1 for p in probes)
    assert all(p["messages"] == [{"role": "user", "content": "ping"}] for p in probes)
    assert chat(url, "chat").status_code == 200


def test_retry_after_is_honoured_before_retrying_the_same_deployment(
    serve: Serve, fake: FakeUpstream
) -> None:
    url = serve([{"name": "chat", "deployments": [dep(fake, "only", "only")]}])
    fake.fail_next(Behaviour(status=429, retry_after="1"))
    answer = chat(url, "chat")
    assert answer.status_code == 200
    assert len(fake.calls) == 2  # the wait itself is asserted in tests/unit/test_routing.py


def test_long_retry_after_is_returned_not_waited_for(serve: Serve, fake: FakeUpstream) -> None:
    url = serve([{"name": "chat", "deployments": [dep(fake, "m+rate-limited", "only")]}])
    answer = chat(url, "chat")
    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "7"
    assert len(fake.calls) == 1  # 7 s is beyond backoff.max: the client decides


@pytest.mark.parametrize("stream", [False, True])
def test_slow_first_byte_fails_over(
    serve: Serve, fake: FakeUpstream, second_fake: FakeUpstream, stream: bool
) -> None:
    url = serve(
        [
            {
                "name": "chat",
                "deployments": [
                    dep(fake, "m+latency-5+ttft-5", "slow", timeout={"first_byte": 0.3}),
                    dep(second_fake, "m", "fast", order=2),
                ],
            }
        ],
        stream_keepalive_seconds=5,
    )
    answer = chat(url, "chat", stream=stream)
    assert answer.status_code == 200
    assert answer.headers["x-parley-deployment"] == "fast"
    if stream:
        assert answer.text.rstrip().endswith("data: [DONE]")


def test_stream_cut_before_first_chunk_fails_over(
    serve: Serve, fake: FakeUpstream, second_fake: FakeUpstream
) -> None:
    url = serve(
        [
            {
                "name": "chat",
                "deployments": [
                    dep(fake, "m+stream-cut-0", "cutter"),
                    dep(second_fake, "m", "steady", order=2),
                ],
            }
        ]
    )
    answer = chat(url, "chat", stream=True)
    assert answer.status_code == 200
    assert answer.headers["x-parley-deployment"] == "steady"
    assert (
        "You said: hello there"
        in "".join(line for line in answer.text.splitlines() if line.startswith("data: {"))
        .replace('"},"', "")
        .replace('{"content":"', "")
        or "data: [DONE]" in answer.text
    )


def test_context_length_error_falls_back_to_the_larger_group(
    serve: Serve, fake: FakeUpstream
) -> None:
    url = serve(
        [
            {
                "name": "small",
                "context_window_fallbacks": ["large"],
                "deployments": [dep(fake, "small+context-overflow", "small-dep")],
            },
            {"name": "large", "deployments": [dep(fake, "large", "large-dep")]},
        ]
    )
    answer = chat(url, "small")
    assert answer.status_code == 200
    assert answer.headers["x-parley-deployment"] == "large-dep"
    assert models_called(fake) == ["small+context-overflow", "large"]  # no retry of small
    metrics = httpx.get(f"{url}/metrics").text
    assert 'from_group="small",reason="context_window",to_group="large"' in metrics


def test_context_length_error_without_fallback_is_the_upstream_400(
    serve: Serve, fake: FakeUpstream
) -> None:
    url = serve([{"name": "small", "deployments": [dep(fake, "s+context-overflow", "s")]}])
    answer = chat(url, "small")
    assert answer.status_code == 400
    assert "maximum context length" in answer.json()["error"]["message"]
    assert len(fake.calls) == 1


def test_content_policy_error_falls_back(serve: Serve, fake: FakeUpstream) -> None:
    url = serve(
        [
            {
                "name": "strict",
                "content_policy_fallbacks": ["lenient"],
                "deployments": [dep(fake, "strict+content-filter", "strict-dep")],
            },
            {"name": "lenient", "deployments": [dep(fake, "lenient", "lenient-dep")]},
        ]
    )
    answer = chat(url, "strict")
    assert answer.status_code == 200
    assert answer.headers["x-parley-deployment"] == "lenient-dep"


def test_all_deployments_down_gives_one_error_naming_each(serve: Serve, fake: FakeUpstream) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    url = serve(
        [
            {
                "name": "chat",
                "retries": 1,
                "fallbacks": ["backup"],
                "deployments": [
                    dep(fake, "a+error-500", "dep-a"),
                    dep(fake, "b+error-503", "dep-b", order=2),
                ],
            },
            {"name": "backup", "retries": 0, "deployments": [dep(dead, "c", "dep-c")]},
        ]
    )
    answer = chat(url, "chat")
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "all_deployments_failed"
    message = error["message"]
    assert message.startswith("all 3 attempts failed for model 'chat'")
    for label, why in (("dep-a", "500"), ("dep-b", "503"), ("dep-c", "cannot reach")):
        assert label in message
        assert why in message
    assert models_called(fake) == ["a+error-500", "b+error-503"]


def test_non_retryable_request_error_is_not_retried(serve: Serve, fake: FakeUpstream) -> None:
    url = serve(
        [{"name": "chat", "deployments": [dep(fake, "m+error-400", "a"), dep(fake, "n", "b")]}]
    )
    answer = chat(url, "chat")
    assert answer.status_code == 400
    assert len(fake.calls) == 1  # a bad request is bad everywhere


def test_client_deadline_bounds_retries(serve: Serve, fake: FakeUpstream) -> None:
    url = serve(
        [
            {
                "name": "chat",
                "retries": 5,
                "deployments": [dep(fake, "m+latency-0.4+error-500", "slow-fail")],
            }
        ]
    )
    answer = chat(url, "chat", headers={"x-parley-timeout": "1"})
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == "deadline_exceeded"
    assert 2 <= len(fake.calls) <= 3  # 0.4 s each plus backoff: three at most fit in 1 s


def test_overload_refuses_fast_while_admitted_requests_are_served(
    serve: Serve, fake: FakeUpstream
) -> None:
    url = serve(
        [
            {
                "name": "chat",
                "max_concurrency": 2,
                "queue": {"max_size": 2, "timeout": 0.3},
                "deployments": [dep(fake, "m+latency-1", "slow")],
            }
        ]
    )
    finished: list[tuple[int, str]] = []  # in the order the answers came back

    def one(_: int) -> None:
        answer = chat(url, "chat")
        code = answer.json().get("error", {}).get("code") if answer.status_code != 200 else ""
        finished.append((answer.status_code, code or ""))
        if answer.status_code == 503:
            assert int(answer.headers["retry-after"]) >= 1

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        list(pool.map(one, range(10)))
    statuses = [s for s, _ in finished]
    assert statuses.count(200) == 2
    assert statuses.count(503) == 8
    codes = {c for _, c in finished if c}
    assert codes <= {"overloaded", "queue_timeout"}
    assert "overloaded" in codes
    # every refusal came back before any admitted request finished: no pile-up
    assert statuses == [503] * 8 + [200] * 2
    assert len(fake.calls) == 2


def waiting(url: str) -> int:
    return int(admin_deployments(url)["groups"][0]["waiting"])


def test_a_keys_priority_orders_the_queue_and_caps_what_its_header_may_ask(
    serve: Serve, fake: FakeUpstream
) -> None:
    url = serve(
        [
            {
                "name": "chat",
                "max_concurrency": 1,
                "queue": {"max_size": 5, "timeout": 20},
                "deployments": [dep(fake, "m", "only")],
            }
        ]
    )
    admin = {"authorization": f"Bearer {ADMIN}"}

    def key(**fields: Any) -> str:
        made = httpx.post(f"{url}/admin/keys", json=fields, headers=admin)
        assert made.status_code == 201, made.text
        return str(made.json()["key"])

    low, high = key(name="batch", priority=4), key(name="interactive", priority=2)
    bad = httpx.post(f"{url}/admin/keys", json={"priority": 7}, headers=admin)
    assert bad.status_code == 400
    listed = httpx.get(f"{url}/admin/keys", headers=admin).json()["data"]
    assert {k["name"]: k["priority"] for k in listed} == {"batch": 4, "interactive": 2}

    def ask(api_key: str, text: str, priority: str | None = None) -> int:
        headers = {"authorization": f"Bearer {api_key}"}
        if priority is not None:
            headers["x-parley-priority"] = priority
        body = {"model": "chat", "messages": [{"role": "user", "content": text}]}
        return httpx.post(
            f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30
        ).status_code

    fake.fail_next(Behaviour(latency=3))  # the first call holds the only slot meanwhile
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(ask, low, "holds the slot")]
        eventually(lambda: len(fake.calls) == 1)
        jobs.append(pool.submit(ask, low, "batch waits"))
        eventually(lambda: waiting(url) == 1)
        # asks for 1 (first) but its key grants 2: still ahead of the batch key's 4 (without
        # key priorities both would sit at the default 3 and the batch request, first in,
        # would go first)
        jobs.append(pool.submit(ask, high, "interactive", priority="1"))
        eventually(lambda: waiting(url) == 2)
        jobs.append(pool.submit(ask, high, "interactive, lowered", priority="5"))
        eventually(lambda: waiting(url) == 3)
        assert [job.result() for job in jobs] == [200, 200, 200, 200]
    order = [call.body["messages"][0]["content"] for call in fake.calls]
    # the one that lowered itself to 5 goes after the batch key's 4
    assert order == ["holds the slot", "interactive", "batch waits", "interactive, lowered"]


def test_auto_model_routes_by_tier_and_records_the_decision(
    serve: Serve, fake: FakeUpstream, tmp_path: Path
) -> None:
    groups = [
        {"name": name, "deployments": [dep(fake, name, f"{name}-dep")]}
        for name in ("small", "medium", "large")
    ]
    tiered = [
        {"name": "auto", "tiers": {"fast": "small", "balanced": "medium", "premium": "large"}}
    ]
    experiments = [{"name": "ab", "variants": [{"group": "small"}, {"group": "large"}]}]
    url = serve(groups, tiered=tiered, experiments=experiments, usage_flush_seconds=0.05)
    quick = chat(url, "auto")
    assert quick.status_code == 200
    assert quick.headers["x-parley-route-tier"] == "fast"
    assert quick.headers["x-parley-model-group"] == "small"
    hard = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": "auto",
            "messages": [{"role": "user", "content": "Analyze the trade-offs, then design a plan"}],
        },
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert hard.headers["x-parley-route-tier"] == "premium"
    assert hard.headers["x-parley-deployment"] == "large-dep"
    variant = chat(url, "ab")
    assert variant.headers["x-parley-variant"] in ("small", "large")
    assert chat(url, "ab").headers["x-parley-variant"] == variant.headers["x-parley-variant"]
    listed = httpx.get(f"{url}/v1/models", headers={"authorization": f"Bearer {ADMIN}"}).json()
    assert {"auto", "ab"} <= {m["id"] for m in listed["data"]}
    deadline = time.monotonic() + 5
    tiers: list[str] = []
    while time.monotonic() < deadline and len(tiers) < 4:
        with contextlib.closing(sqlite3.connect(tmp_path / "parley.db")) as conn:
            tiers = [
                r[0] for r in conn.execute("SELECT route_tier FROM usage ORDER BY time_ms, id")
            ]
        time.sleep(0.05)
    assert tiers[:2] == ["fast", "premium"]
    assert tiers[2].startswith("variant:")


def test_calls_refused_at_a_full_queue_spend_none_of_the_keys_limits(
    serve: Serve, fake: FakeUpstream
) -> None:
    """A full group refuses before the key's limits are reserved: the refusal is Parley's
    doing, so it costs the caller no request of its rpm, and costs Parley little."""
    url = serve(
        [
            {
                "name": "chat",
                "max_concurrency": 1,
                "queue": {"max_size": 0, "timeout": 1},
                "deployments": [dep(fake, "m+latency-1", "slow")],
            }
        ]
    )
    created = httpx.post(
        f"{url}/admin/keys",
        json={"rpm": 2},
        headers={"authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    auth = {"authorization": f"Bearer {created.json()['key']}"}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        holder = pool.submit(chat, url, "chat", headers=auth)
        deadline = time.monotonic() + 10
        while waiting_or_busy(url) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        refused = [chat(url, "chat", headers=auth) for _ in range(5)]
        assert holder.result().status_code == 200
    assert [r.status_code for r in refused] == [503] * 5
    assert {r.json()["error"]["code"] for r in refused} == {"overloaded"}
    second = chat(url, "chat", headers=auth)  # the key's second request this minute
    assert second.status_code == 200, second.text


def waiting_or_busy(url: str) -> int:
    group = admin_deployments(url)["groups"][0]
    return int(group["in_use"]) + int(group["waiting"])
