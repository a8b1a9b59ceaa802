"""Every failure reaches the client as OpenAI-shaped JSON with the right status; streams end
with an error event (never a fake ``[DONE]``) when the upstream breaks after the first byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.scenario import Behaviour
from parley.testing.servers import FAMILIES, LoopThread, fake_models, free_port, serve_in_thread
from tests.backends import sqlite_url
from tests.conftest import ParleyFactory

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    return dict(error)


def sse_events(response: httpx.Response) -> list[str]:
    return [
        line.removeprefix("data: ")
        for line in response.text.split("\n\n")
        if line.startswith("data: ")
    ]


@pytest.fixture
def url(parley: ParleyFactory) -> str:
    return parley()


def test_malformed_json(url: str) -> None:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        content=b'{"model": "openai", "mess',
        headers={"content-type": "application/json"},
    )
    error = assert_openai_error(response, 400)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_json"


def test_empty_body(url: str) -> None:
    assert_openai_error(httpx.post(f"{url}/v1/chat/completions", content=b""), 400)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "openai", "messages": []}, "messages"),
        ({"model": "openai", "messages": [{"role": "tool", "content": "x"}]}, "messages[0]"),
        ({"model": "openai", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({**CHAT, "model": "openai", "temperature": 9}, "temperature"),
        ({**CHAT, "model": "openai", "n": 0}, "n"),
        ({**CHAT}, None),
    ],
)
def test_schema_violations_name_the_param(
    url: str, body: dict[str, Any], param: str | None
) -> None:
    error = assert_openai_error(httpx.post(f"{url}/v1/chat/completions", json=body), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_unknown_model(url: str) -> None:
    response = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "model": "gpt-9"})
    error = assert_openai_error(response, 404)
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"


def test_unknown_route_is_openai_shaped(url: str) -> None:
    assert_openai_error(httpx.get(f"{url}/v1/nothing-here"), 404)


def test_body_over_limit_refused_before_parsing(parley: ParleyFactory, fake: FakeUpstream) -> None:
    url = parley(max_request_bytes=2048)
    big = {"model": "openai", "messages": [{"role": "user", "content": "x" * 5000}]}
    error = assert_openai_error(httpx.post(f"{url}/v1/chat/completions", json=big), 413)
    assert error["code"] == "request_too_large"
    assert fake.calls == []


def test_chunked_body_over_limit(parley: ParleyFactory, fake: FakeUpstream) -> None:
    url = parley(max_request_bytes=2048)

    def chunks() -> Any:
        yield b'{"model": "openai", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}]}'

    response = httpx.post(f"{url}/v1/chat/completions", content=chunks())
    assert_openai_error(response, 413)
    assert fake.calls == []


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("status", [400, 401, 404, 500, 503])
def test_upstream_status_mapped_faithfully(parley: ParleyFactory, family: str, status: int) -> None:
    url = parley(directive=f"+error-{status}")
    response = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "model": family})
    error = assert_openai_error(response, status)
    assert f"fake upstream error {status}" in error["message"]


def test_upstream_cookies_are_never_sent_back(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> None:
    """The upstream connection pool is shared by every caller: a cookie one response set
    must not ride along on anyone's next request. (Reached by name: a cookie jar ignores
    cookies from a bare IP address, which would hide the leak.)"""
    fake.set_cookies = {"__cf_bm": "session-of-the-first-caller"}
    models = fake_models(fake.url.replace("127.0.0.1", "localhost"))
    app = create_app(Settings(database_url=sqlite_url(tmp_path, "p.db")), models=models)
    with serve_in_thread(loop_thread, app) as url:
        _call_three_times(url)
    calls = fake.calls_to("openai")
    assert len(calls) == 3
    assert all("Cookie" not in call.headers for call in calls)


def _call_three_times(url: str) -> None:
    for _ in range(3):
        response = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "model": "openai"})
        assert response.status_code == 200
        assert "set-cookie" not in response.headers


@pytest.mark.parametrize("family", FAMILIES)
def test_upstream_429_keeps_retry_after(parley: ParleyFactory, family: str) -> None:
    url = parley(directive="+rate-limited")
    response = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "model": family})
    error = assert_openai_error(response, 429)
    assert response.headers["retry-after"] == "7"
    assert error["type"] == "rate_limit_error" or error["type"] == "rate_limit_exceeded"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "timeout", [{"first_byte": 0.3}, {"first_byte": 30, "total": 0.3}], ids=["first_byte", "total"]
)
def test_upstream_timeout_is_504(
    parley: ParleyFactory, stream: bool, timeout: dict[str, float]
) -> None:
    """The upstream would answer after 4 s; whichever timeout is shorter cuts it off. Had
    Parley waited for the upstream, the client's own 2 s read timeout would have raised
    instead of a 504 arriving. No retries: three 0.3 s attempts and their backoff came
    close to the client's 2 s on a loaded machine, and retrying is tested elsewhere."""
    url = parley(directive="+latency-4", extra={"timeout": timeout}, group={"retries": 0})
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={**CHAT, "model": "openai", "stream": stream},
        timeout=2,
    )
    error = assert_openai_error(response, 504)
    assert error["type"] == "timeout_error"


@pytest.mark.parametrize("stream", [False, True])
def test_connection_failure_is_502(parley: ParleyFactory, stream: bool) -> None:
    dead = free_port()  # nobody listens there
    url = parley(extra={"api_base": f"http://127.0.0.1:{dead}"})
    response = httpx.post(
        f"{url}/v1/chat/completions", json={**CHAT, "model": "anthropic", "stream": stream}
    )
    error = assert_openai_error(response, 502)
    assert error["code"] == "upstream_unavailable"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("fault", ["+stream-cut-3", "+stream-malformed-3", "+stream-error-3"])
def test_broken_stream_ends_with_error_not_done(
    parley: ParleyFactory, family: str, fault: str
) -> None:
    url = parley(directive=fault)
    body = {
        "model": family,
        "stream": True,
        "messages": [{"role": "user", "content": "one two three four five six seven"}],
    }
    response = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert response.status_code == 200  # the failure came after the first byte
    events = sse_events(response)
    assert events[-1] != "[DONE]"
    assert "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if "stream-error" in fault:  # the provider said why; the client hears it
        assert "upstream overloaded" in error["message"]
    else:
        assert error["code"] in ("upstream_protocol_error", "upstream_unavailable")
    for event in events[:-1]:
        for choice in json.loads(event).get("choices", []):
            assert choice.get("finish_reason") is None, "no fake finish before the error"


def test_sdk_raises_on_mid_stream_error(parley: ParleyFactory) -> None:

    client = openai.OpenAI(
        base_url=parley(directive="+stream-cut-3") + "/v1", api_key="x", max_retries=0
    )
    stream = client.chat.completions.create(
        model="openai",
        stream=True,
        messages=[{"role": "user", "content": "one two three four five"}],
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_keepalive_comments_while_waiting_for_first_token(parley: ParleyFactory) -> None:
    url = parley(directive="+ttft-2.0", stream_keepalive_seconds=0.25)
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={**CHAT, "model": "anthropic", "stream": True},
        timeout=10,
    )
    head = response.text.split("data: ", 1)[0]
    assert head.count(": keep-alive\n\n") >= 3
    assert sse_events(response)[-1] == "[DONE]"


def test_client_disconnect_cancels_upstream(
    parley: ParleyFactory, fake: FakeUpstream, loop_thread: Any
) -> None:
    url = parley(directive="+chunk-delay-0.2+tokens-200")
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", json={**CHAT, "model": "openai", "stream": True}
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    # Leaving the block closed our connection mid-stream; the fake must see its client go.
    assert loop_thread.run(fake.wait_for_disconnect(5.0))
    assert fake.disconnects == 1


@pytest.mark.parametrize("stream", [False, True])
def test_usage_counted_with_tiktoken_when_upstream_omits_it(
    parley: ParleyFactory, stream: bool
) -> None:
    url = parley(directive="+no-usage", tokenizer_preload=True)
    body = {
        "model": "openai_compatible",
        "stream": stream,
        "stream_options": {"include_usage": True} if stream else None,
        "messages": [{"role": "user", "content": "count these tokens please"}],
    }
    body = {k: v for k, v in body.items() if v is not None}
    response = httpx.post(f"{url}/v1/chat/completions", json=body)
    usage = json.loads(sse_events(response)[-2])["usage"] if stream else response.json()["usage"]
    # "You said: count these tokens please" is 7 cl100k tokens; the prompt is framed as
    # 3 (priming) + 4 (one message) + 4 ("count these tokens please").
    assert usage == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def test_usage_chunk_only_when_asked(url: str) -> None:
    response = httpx.post(
        f"{url}/v1/chat/completions", json={**CHAT, "model": "anthropic", "stream": True}
    )
    chunks = [json.loads(e) for e in sse_events(response)[:-1]]
    assert all(c.get("usage") is None for c in chunks)
    assert all(c["choices"] for c in chunks)


def test_response_headers(url: str) -> None:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={**CHAT, "model": "openai"},
        headers={"x-request-id": "client-id-42"},
    )
    assert response.headers["x-request-id"] == "client-id-42"
    assert float(response.headers["x-parley-overhead-ms"]) >= 0
    bad = httpx.get(f"{url}/health/live", headers={"x-request-id": "bad id with spaces"})
    assert bad.headers["x-request-id"] != "bad id with spaces"
    assert len(bad.headers["x-request-id"]) == 32


def test_queued_fault_applies_to_next_call_only(parley: ParleyFactory, fake: FakeUpstream) -> None:
    url = parley()
    fake.fail_next(Behaviour(status=503))
    first = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "model": "gemini"})
    # the 503 was retried (a retryable failure) and the retry found the upstream well again
    assert first.status_code == 200
    assert len(fake.calls) == 2
    second = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "model": "gemini"})
    assert second.status_code == 200
    assert len(fake.calls) == 3
