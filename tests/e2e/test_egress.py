"""Egress through a forward proxy: a real one (proxy.py, with Basic authentication) run by
the test. ``https://`` upstreams go through a ``CONNECT`` tunnel with TLS inside it to the
origin; ``http://`` ones are forwarded; ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` and a
deployment's own ``proxy:`` (its password an environment reference) decide which."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.config.egress import Egress, parse_proxy
from parley.config.loader import LoadedModels, parse_models, resolve_groups
from parley.identity.oidc_http import provider_client
from parley.providers.http1 import ConnectionPool, Origin, ProxyRefused
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, free_port, serve_in_thread
from tests.backends import sqlite_url
from tests.forward_proxy import PASSWORD, USER, ForwardProxy, running_proxy
from tests.polling import eventually_async
from tests.unit.providers.test_http1 import _self_signed, fixed, post, response, serving

ADMIN = "admin-secret-for-tests-0123456789"


@pytest.fixture(scope="module")
def forward_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForwardProxy]:
    with running_proxy(tmp_path_factory.mktemp("proxy")) as proxy:
        yield proxy


async def test_https_goes_through_a_connect_tunnel_with_tls_to_the_origin(
    forward_proxy: ForwardProxy, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with serving(fixed(response(b"through the tunnel")), tls=server_tls) as server:
        origin = Origin("https", "127.0.0.1", server.port)
        proxy = parse_proxy(forward_proxy.url_with_credentials)
        pool = ConnectionPool(
            origin, max_connections=2, connect_timeout=5, ssl_context=trusting, proxy=proxy
        )
        before = len(forward_proxy.access_log())
        assert await post(pool) == (200, b"through the tunnel")
        assert await post(pool) == (200, b"through the tunnel")  # the tunnel is kept alive
        await pool.close()
        # the origin got the request itself (TLS inside the tunnel), origin-form, with no
        # proxy credentials in it
        assert server.connections == 1
        assert server.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        assert b"proxy-authorization" not in server.requests[0].lower()

        wrong = parse_proxy(f"http://{USER}:not-the-password@127.0.0.1:{forward_proxy.port}")
        refused = ConnectionPool(
            origin, max_connections=1, connect_timeout=5, ssl_context=trusting, proxy=wrong
        )
        with pytest.raises(ProxyRefused, match="407"):
            await post(refused)
        await refused.close()
    tunnels = [line for line in forward_proxy.access_log()[before:] if " CONNECT " in line]
    assert tunnels
    assert f"CONNECT 127.0.0.1:{server.port}" in tunnels[0]


async def test_an_sso_providers_https_requests_tunnel_through_the_proxy(
    forward_proxy: ForwardProxy, tmp_path: Path
) -> None:
    """The OpenID client's transport (``identity/oidc_http.py``; the SSO tests cover
    ``http://`` providers, forwarded) opens a ``CONNECT`` tunnel for an ``https://`` one and
    verifies TLS inside it as without a proxy (a self-signed origin is refused); a proxy
    refusing the credentials is an ``httpx.ProxyError`` naming the 407."""
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    async with serving(fixed(response(b"{}")), tls=server_tls) as server:
        url = f"https://127.0.0.1:{server.port}/.well-known/openid-configuration"
        before = len(forward_proxy.access_log())
        good = Egress(parse_proxy(forward_proxy.url_with_credentials))
        async with provider_client(good, 5) as client:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(url)

        def tunnelled() -> bool:
            log = forward_proxy.access_log()[before:]
            return any(f"CONNECT 127.0.0.1:{server.port}" in line for line in log)

        await eventually_async(tunnelled)  # proxy.py logs a tunnel once it closes
        wrong = Egress(
            parse_proxy(f"http://{USER}:not-the-password@127.0.0.1:{forward_proxy.port}")
        )
        async with provider_client(wrong, 5) as client:
            with pytest.raises(httpx.ProxyError, match="407") as refused:
                await client.get(url)
        assert "not-the-password" not in str(refused.value)


Serve = Callable[..., str]


@pytest.fixture
def serve(loop_thread: LoopThread, tmp_path: Path) -> Iterator[Serve]:
    stack = contextlib.ExitStack()

    def start(deployment: dict[str, Any], environ: dict[str, str]) -> str:
        groups = [{"name": "chat", "retries": 0, "deployments": [deployment]}]
        env = {"PARLEY_TEST_FAKE_KEY": "fake-secret-key-123456", **environ}
        models = LoadedModels(resolve_groups(parse_models({"models": groups}), env), "test")
        settings = Settings(admin_key=ADMIN, database_url=sqlite_url(tmp_path))
        return stack.enter_context(
            serve_in_thread(loop_thread, create_app(settings, models=models))
        )

    with stack:
        yield start


def _deployment(fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "api_base": f"{fake.url}/v1",
        "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
        **extra,
    }


def _chat(url: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "hello"}]},
        headers={"authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )


def _via_proxy(fake: FakeUpstream) -> list[bool]:
    """For each call the fake received: whether it came through proxy.py (which adds
    ``Via: 1.1 proxy.py ...`` to what it forwards)."""
    return [
        any(k.lower() == "via" and "proxy.py" in v for k, v in call.headers.items())
        for call in fake.calls
    ]


def test_http_proxy_from_the_environment_forwards_upstream_calls(
    serve: Serve, fake: FakeUpstream, forward_proxy: ForwardProxy
) -> None:
    url = serve(_deployment(fake), {"HTTP_PROXY": forward_proxy.url_with_credentials})
    answer = _chat(url)
    assert answer.status_code == 200, answer.text
    assert _via_proxy(fake) == [True]
    (call,) = fake.calls
    assert not any(name.lower() == "proxy-authorization" for name in call.headers)


def test_no_proxy_sends_the_listed_hosts_direct(
    serve: Serve, fake: FakeUpstream, forward_proxy: ForwardProxy
) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens: only direct works
    url = serve(_deployment(fake), {"http_proxy": dead_proxy, "NO_PROXY": "localhost,127.0.0.1"})
    assert _chat(url).status_code == 200
    assert _via_proxy(fake) == [False]


def test_a_deployments_own_proxy_with_its_password_from_the_environment(
    serve: Serve, fake: FakeUpstream, forward_proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = {"url": forward_proxy.url, "username": USER, "password": "os.environ/EGRESS_PASSWORD"}
    # the environment names no proxy, and a NO_PROXY that would bypass it: proxy: wins
    url = serve(_deployment(fake, proxy=proxy), {"EGRESS_PASSWORD": PASSWORD, "NO_PROXY": "*"})
    assert _chat(url).status_code == 200
    assert _via_proxy(fake) == [True]


def test_wrong_proxy_credentials_fail_the_call_without_reaching_the_upstream(
    serve: Serve, fake: FakeUpstream, forward_proxy: ForwardProxy
) -> None:
    proxy = {"url": forward_proxy.url, "username": USER, "password": "os.environ/EGRESS_PASSWORD"}
    url = serve(_deployment(fake, proxy=proxy), {"EGRESS_PASSWORD": "wrong"})
    answer = _chat(url)
    assert answer.status_code >= 500
    assert "proxy authentication required" in answer.json()["error"]["message"]
    assert "wrong" not in answer.text
    assert fake.calls == []


def test_proxy_direct_ignores_the_environment(serve: Serve, fake: FakeUpstream) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    url = serve(_deployment(fake, proxy="direct"), {"HTTP_PROXY": dead_proxy})
    assert _chat(url).status_code == 200
    assert _via_proxy(fake) == [False]
