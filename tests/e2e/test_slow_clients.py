"""Slow or idle clients cannot hold connections: a connection that sends nothing, dribbles
its headers, or sends less body than its Content-Length is answered 408 (when it sent
anything) and closed; past the connection cap a new connection gets a 503 and is closed.
Responses are never timed: a slow upstream and a slow stream still arrive whole.

Raw sockets against a real in-process server with short limits. Every read is bounded by
the socket's own timeout (``BOUND``), so a connection the server fails to close makes the
test fail rather than hang."""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import structlog.testing

from tests.conftest import ParleyFactory

BOUND = 10.0  # seconds a read may block: far past every limit set below
LIMIT = 0.4  # header and body limits in these tests
CHAT = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}


@contextlib.contextmanager
def connect(url: str) -> Iterator[socket.socket]:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=BOUND)
    try:
        yield sock
    finally:
        sock.close()


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything until the server closes; ``TimeoutError`` if it never does."""
    received = b""
    for _ in range(10_000):
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk
    raise AssertionError("the server kept sending")


def request_head(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: parley\r\ncontent-type: application/json\r\n"
        f"content-length: {length}\r\n\r\n"
    ).encode()


def status_and_error(raw: bytes) -> tuple[int, dict[str, Any], str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    error: dict[str, Any] = json.loads(body)["error"]
    return status, error, head.decode().lower()


@pytest.fixture
def url(parley: ParleyFactory) -> str:
    return parley(header_timeout_seconds=LIMIT, body_timeout_seconds=LIMIT)


def test_a_connection_that_sends_nothing_is_closed(url: str) -> None:
    with connect(url) as sock:
        assert read_to_eof(sock) == b""  # nothing asked, nothing answered: just closed


def test_dribbled_headers_are_cut_off(url: str) -> None:
    """One header byte every 50 ms: each byte is progress, but the headers as a whole must
    arrive within the limit. The loop would dribble for 25 s; the server answers first."""
    with connect(url) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nhost: parley\r\n")
        for _ in range(500):
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                break
            sock.sendall(b"x")
        else:
            raise AssertionError("still reading headers after 25 s")
        status, error, head = status_and_error(read_to_eof(sock))
    assert status == 408
    assert error["code"] == "request_timeout"
    assert "connection: close" in head


@pytest.fixture
def uvicorn_errors() -> Iterator[list[logging.LogRecord]]:
    """What uvicorn logs (it logs an app's unhandled exception itself, with a traceback)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/auth/login"])
def test_a_body_shorter_than_its_content_length_is_cut_off(
    url: str, path: str, uvicorn_errors: list[logging.LogRecord]
) -> None:
    """The app is waiting for the rest of the body: the client is told 408 and the
    connection closed; the abandoned request logs that the client went, no traceback."""
    with structlog.testing.capture_logs() as logs:
        with connect(url) as sock:
            sock.sendall(request_head(path, 100) + b'{"model": "o')
            status, error, _ = status_and_error(read_to_eof(sock))
        for _ in range(100):  # until the abandoned request has been handled
            if any(entry["event"] == "client gone before its request was read" for entry in logs):
                break
            time.sleep(0.02)
        else:
            raise AssertionError(f"the abandoned request was not handled: {logs}")
    assert status == 408
    assert error == {
        "message": "request body not received in time",
        "type": "invalid_request_error",
        "param": None,
        "code": "request_timeout",
    }
    assert not [entry for entry in logs if "exc_info" in entry or entry["log_level"] == "error"]
    assert not [record for record in uvicorn_errors if record.exc_info]


def test_a_later_request_on_a_kept_alive_connection_is_timed_too(url: str) -> None:
    with connect(url) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nhost: parley\r\n\r\n")
        first = b""
        for _ in range(100):
            first += sock.recv(65536)
            if b"\r\n\r\n" in first:
                break
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /health/live HTTP/1.1\r\nhost: par")  # and never the rest
        rest = read_to_eof(sock)
    assert b"HTTP/1.1 408" in rest


def test_slow_responses_and_streams_are_not_cut(parley: ParleyFactory) -> None:
    """Limits far below the upstream's pace: a 1 s wait for the answer and a stream whose
    chunks come 0.3 s apart (about 2 s in all) are delivered whole."""
    url = parley(
        directive="+latency-1+chunk-delay-0.3",
        header_timeout_seconds=0.2,
        body_timeout_seconds=0.2,
    )
    with httpx.Client(base_url=url, timeout=BOUND * 3) as http:
        answer = http.post("/v1/chat/completions", json=CHAT)
        assert answer.status_code == 200, answer.text
        with http.stream("POST", "/v1/chat/completions", json=CHAT | {"stream": True}) as stream:
            assert stream.status_code == 200
            events = [line for line in stream.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert len(events) > 3
    assert all(json.loads(line[6:])["object"] == "chat.completion.chunk" for line in events[:-1])


def test_connections_past_the_cap_are_refused_with_a_503(parley: ParleyFactory) -> None:
    """Two connections allowed: a third gets a 503 ``too_many_connections`` (with
    Retry-After and Connection: close) and is closed; once one of the two goes, a new
    connection is served."""
    url = parley(max_connections=2)
    with connect(url) as first, connect(url) as second:
        for held in (first, second):  # both accepted and served (keep-alive holds them)
            held.sendall(b"GET /health/live HTTP/1.1\r\nhost: parley\r\n\r\n")
            assert held.recv(65536).startswith(b"HTTP/1.1 200")
        with connect(url) as third:
            third.sendall(b"GET /health/live HTTP/1.1\r\nhost: parley\r\n\r\n")
            status, error, head = status_and_error(read_to_eof(third))
        assert status == 503
        assert error["code"] == "too_many_connections"
        assert error["type"] == "service_unavailable_error"
        assert "retry-after: 1" in head
        assert "connection: close" in head
        second.close()
        statuses = []
        for _ in range(50):  # the server notices the close within a loop pass or two
            with connect(url) as fresh:
                fresh.sendall(b"GET /health/live HTTP/1.1\r\nhost: parley\r\n\r\n")
                statuses.append(int(fresh.recv(65536).split()[1]))
            if statuses[-1] == 200:
                break
        assert statuses[-1] == 200
        assert set(statuses) <= {200, 503}
