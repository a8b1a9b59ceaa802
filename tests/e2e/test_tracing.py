"""OpenTelemetry tracing (``PARLEY_TRACING=otlp``): spans exported over real OTLP/HTTP to
a receiver in the test, which decodes the protobuf payloads; the span tree, the GenAI
attributes, and the ``traceparent`` the upstream received are asserted. And with tracing
off (the default), none of the OpenTelemetry SDK is imported at all."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.observability import tracing
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.scenario import Behaviour
from parley.testing.servers import LoopThread, free_port, models_from, serve_in_thread
from tests.backends import redis_url as flushed_redis
from tests.backends import sqlite_url
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.polling import eventually

ADMIN = "admin-secret-for-tests-0123456789"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
SERVER, CLIENT = 2, 3  # the OTLP SpanKind numbers


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as received:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", received.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "parley-under-test")
        yield received


@pytest.fixture
def traced(
    loop_thread: LoopThread, tmp_path: Path, receiver: OtlpReceiver
) -> Iterator[Callable[..., str]]:
    stack = contextlib.ExitStack()

    def start(groups: list[dict[str, Any]], **settings: Any) -> str:
        if "database_url" not in settings:
            settings["database_url"] = sqlite_url(tmp_path)
        app = create_app(
            Settings(admin_key=ADMIN, tracing="otlp", **settings), models=models_from(groups)
        )
        return stack.enter_context(serve_in_thread(loop_thread, app))

    with stack:
        yield start
    assert not tracing.ON, "the app's shutdown turns tracing off again"


redis_db = pytest.fixture(flushed_redis)


def _groups(fake: FakeUpstream) -> list[dict[str, Any]]:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    return [
        {
            "name": "primary",
            "retries": 0,
            "fallbacks": ["backup"],
            "deployments": [
                {"provider": "openai_compatible", "model": "m", "api_base": dead, "name": "dead"}
            ],
        },
        {
            "name": "backup",
            "retries": 1,
            "backoff": {"base": 0.01, "max": 0.02},
            "deployments": [
                {
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "api_base": f"{fake.url}/v1",
                    "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
                    "name": "backup-dep",
                }
            ],
        },
    ]


def _one(receiver: OtlpReceiver, name: str) -> ReceivedSpan:
    eventually(lambda: bool(receiver.named(name)))
    (span,) = receiver.named(name)
    return span


def _header(headers: dict[str, str], name: str) -> str:
    (value,) = [v for k, v in headers.items() if k.lower() == name]
    return value


def _traceparent_parts(header: str) -> tuple[str, str]:
    version, trace_id, parent, flags = header.split("-")
    assert version == "00"
    assert int(flags, 16) & 1
    return trace_id, parent


def test_a_chat_request_is_one_trace_with_retries_and_fallbacks_visible(
    traced: Callable[..., str], fake: FakeUpstream, receiver: OtlpReceiver
) -> None:
    url = traced(_groups(fake))
    fake.fail_next(Behaviour(status=500))
    answer = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "primary", "messages": [{"role": "user", "content": "hello there"}]},
        headers={"authorization": f"Bearer {ADMIN}", "traceparent": TRACEPARENT},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-parley-deployment"] == "backup-dep"

    server = _one(receiver, "POST /v1/chat/completions")
    assert (server.trace_id, server.parent_id) == (TRACE_ID, CLIENT_SPAN)  # continues the client's
    assert server.kind == SERVER
    assert server.attributes["http.response.status_code"] == 200
    assert server.resource["service.name"] == "parley-under-test"

    chat = _one(receiver, "chat primary")
    assert chat.parent_id == server.span_id
    assert chat.kind == CLIENT
    usage = answer.json()["usage"]
    assert chat.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "primary",
        "gen_ai.response.model": answer.json()["model"],
        "gen_ai.response.id": answer.json()["id"],
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": usage["prompt_tokens"],
        "gen_ai.usage.output_tokens": usage["completion_tokens"],
        "gen_ai.response.finish_reasons": ["stop"],
        "parley.deployment": "backup-dep",
    }

    children = receiver.children(chat)
    names = [s.name for s in children]
    assert names.count("parley.policies") == 1
    assert names.count("parley.cache") == 1
    assert names.count("parley.admission") == 2  # one queue per group: primary, then backup
    attempts = sorted(
        (s for s in children if s.name.startswith("upstream ")),
        key=lambda s: (
            s.attributes["parley.model_group"] != "primary",
            s.attributes["parley.attempt"],
        ),
    )
    summary = [
        (
            s.attributes["parley.deployment"],
            s.attributes["parley.attempt"],
            s.attributes.get("parley.fallback_reason"),
            s.attributes.get("error.type"),
        )
        for s in attempts
    ]
    assert summary[0][:3] == ("dead", 1, None)
    assert summary[0][3]
    assert summary[1][:3] == ("backup-dep", 1, "failure")
    assert summary[1][3]
    assert summary[2] == ("backup-dep", 2, "failure", None)  # the retry that answered
    assert all(s.trace_id == TRACE_ID for s in children)

    # the upstream saw the trace continued, its parent being the attempt that answered
    answered = attempts[2]
    sent = [_header(call.headers, "traceparent") for call in fake.calls_to("openai")]
    assert len(sent) == 2
    assert all(sent)
    assert _traceparent_parts(sent[-1]) == (TRACE_ID, answered.span_id)
    assert _traceparent_parts(sent[0]) == (TRACE_ID, attempts[1].span_id)


def test_a_stream_span_ends_with_the_stream_and_counts_its_tokens(
    traced: Callable[..., str], fake: FakeUpstream, receiver: OtlpReceiver
) -> None:
    url = traced(_groups(fake)[1:])
    answer = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": "backup",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hello there"}],
        },
        headers={"authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    assert answer.status_code == 200
    events = [
        json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: {")
    ]
    usage = events[-1]["usage"]

    chat = _one(receiver, "chat backup")
    server = _one(receiver, "POST /v1/chat/completions")
    assert chat.parent_id == server.span_id
    assert len(server.parent_id) in (0, 16)
    assert chat.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert chat.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert chat.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert chat.attributes["gen_ai.response.model"] == events[0]["model"]
    (attempt,) = [s for s in receiver.children(chat) if s.name == "upstream backup-dep"]
    assert attempt.attributes["gen_ai.provider.name"] == "openai"
    (sent,) = [_header(call.headers, "traceparent") for call in fake.calls_to("openai")]
    assert _traceparent_parts(sent) == (chat.trace_id, attempt.span_id)


def test_database_and_redis_calls_are_spans_of_the_request(
    traced: Callable[..., str],
    fake: FakeUpstream,
    receiver: OtlpReceiver,
    redis_db: str,
) -> None:
    url = traced(_groups(fake)[1:], redis_url=redis_db, ip_rpm=10_000)
    created = httpx.post(
        f"{url}/admin/keys", json={"name": "traced"}, headers={"authorization": f"Bearer {ADMIN}"}
    )
    assert created.status_code == 201, created.text
    answer = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "backup", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {created.json()['key']}", "traceparent": TRACEPARENT},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    chat = _one(receiver, "chat backup")
    eventually(lambda: any(s.name == "db read" and s.trace_id == TRACE_ID for s in receiver.spans))
    in_trace = [s for s in receiver.spans if s.trace_id == TRACE_ID]
    by_id = {s.span_id: s for s in in_trace}
    server = by_id[chat.parent_id]
    key_reads = [s for s in in_trace if s.name == "db read" and s.parent_id == server.span_id]
    assert key_reads
    assert key_reads[0].attributes["db.system.name"] == "sqlite"
    (policies,) = [s for s in receiver.children(chat) if s.name == "parley.policies"]
    admits = [s for s in receiver.children(policies) if s.name == "redis admit"]
    assert admits
    assert admits[0].attributes["db.system.name"] == "redis"


def test_with_tracing_off_parley_imports_nothing_of_opentelemetry(tmp_path: Path) -> None:
    """The default: building the app and serving requests adds no OpenTelemetry module to
    those FastAPI imports for its own optional telemetry (``fastapi.telemetry``, loaded
    first as the baseline), and none of the SDK or the exporter."""
    script = f"""
import sys
import fastapi, fastapi.telemetry._asgi  # FastAPI's own imports: the baseline
def otel():
    return {{m for m in sys.modules if m.startswith(("opentelemetry", "google.protobuf"))}}
baseline = otel()
from starlette.testclient import TestClient
from parley.app import create_app
from parley.config import Settings
from parley.observability import tracing
app = create_app(Settings(database_url="sqlite:///{tmp_path}/p.db"))
with TestClient(app) as client:
    assert client.get("/health/live").status_code == 200
    assert client.post("/v1/chat/completions", json={{}}).status_code in (400, 401, 404)
added = sorted(otel() - baseline)
added += sorted(m for m in sys.modules if m.startswith("parley.observability.otel"))
print(repr((tracing.ON, "opentelemetry.sdk" in sys.modules, added)))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("PARLEY_TRACING", None)
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "(False, False, [])"
