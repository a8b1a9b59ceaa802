"""Who may read ``/metrics`` (it names every deployment): open on a loopback bind only,
behind ``PARLEY_METRICS_TOKEN``, or on an address of its own (``PARLEY_METRICS_ADDRESS``)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, fake_models, free_port, serve_in_thread
from tests.backends import sqlite_url

TOKEN = "metrics-scrape-token-0123456789"
CHAT = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}


@contextlib.contextmanager
def served(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path, **settings: Any
) -> Iterator[str]:
    tmp_path.mkdir(exist_ok=True)
    if "database_url" not in settings:
        settings["database_url"] = sqlite_url(tmp_path)
    app = create_app(Settings(**settings), models=fake_models(fake.url))
    with serve_in_thread(loop_thread, app) as url:
        yield url


def _assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "openai" not in response.text  # no deployment named in a refusal
    return error


def test_metrics_refused_on_a_non_loopback_bind_without_protection(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> None:
    with served(loop_thread, fake, tmp_path, host="0.0.0.0", insecure=True) as url:
        error = _assert_error(httpx.get(f"{url}/metrics"), 403)
        assert "PARLEY_METRICS_TOKEN" in error["message"]
        assert "PARLEY_METRICS_ADDRESS" in error["message"]


def test_metrics_token_is_required_when_set(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> None:
    with served(loop_thread, fake, tmp_path, metrics_token=TOKEN) as url:
        assert httpx.post(f"{url}/v1/chat/completions", json=CHAT).status_code == 200
        for headers in ({}, {"authorization": "Bearer wrong-token"}, {"authorization": TOKEN}):
            response = httpx.get(f"{url}/metrics", headers=headers)
            error = _assert_error(response, 401)
            assert TOKEN not in response.text
            assert error["type"] == "authentication_error"
        scraped = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200
        assert 'deployment="openai/openai/gpt-4o-mini"' in scraped.text


def test_metrics_on_their_own_address_leave_the_main_port(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> None:
    port = free_port()
    with served(
        loop_thread, fake, tmp_path, host="0.0.0.0", metrics_address=f"127.0.0.1:{port}"
    ) as url:
        assert httpx.post(f"{url}/v1/chat/completions", json=CHAT).status_code == 200
        _assert_error(httpx.get(f"{url}/metrics"), 404)
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        assert 'deployment="openai/openai/gpt-4o-mini"' in scraped.text
        _assert_error(httpx.get(f"http://127.0.0.1:{port}/v1/models"), 404)
        _assert_error(httpx.post(f"http://127.0.0.1:{port}/metrics"), 405)
    with pytest.raises(httpx.ConnectError):  # closed with the app
        httpx.get(f"http://127.0.0.1:{port}/metrics")


def test_metrics_address_with_token_needs_both(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> None:
    port = free_port()
    with served(
        loop_thread, fake, tmp_path, metrics_address=f"127.0.0.1:{port}", metrics_token=TOKEN
    ):
        _assert_error(httpx.get(f"http://127.0.0.1:{port}/metrics"), 401)
        scraped = httpx.get(
            f"http://127.0.0.1:{port}/metrics", headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert scraped.status_code == 200
        assert "parley_http_requests_total" in scraped.text


def test_two_instances_share_one_metrics_address(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> None:
    """``parley serve --workers N``: every worker binds the same metrics address."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    with (
        served(loop_thread, fake, tmp_path / "a", metrics_address=address),
        served(loop_thread, fake, tmp_path / "b", metrics_address=address),
    ):
        for _ in range(4):
            assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200


def test_metrics_listener_hangs_up_on_an_oversized_head(
    loop_thread: LoopThread, fake: FakeUpstream, tmp_path: Path
) -> None:
    port = free_port()
    with served(loop_thread, fake, tmp_path, metrics_address=f"127.0.0.1:{port}"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 70_000)
            assert sock.recv(1024) == b""  # closed without an answer
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200


@pytest.mark.parametrize("bad", ["9464", "127.0.0.1", "127.0.0.1:http", ":9464", "h:70000"])
def test_metrics_address_must_be_host_and_port(bad: str) -> None:
    with pytest.raises(ValidationError, match="metrics_address"):
        Settings(metrics_address=bad)
