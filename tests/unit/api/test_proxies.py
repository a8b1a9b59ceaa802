"""How the client address is resolved behind trusted proxies (api/proxies.py), and the
setting that lists them."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from parley.api.proxies import TrustedProxies
from parley.config import Settings


def test_resolving_the_client_address() -> None:
    """The walk itself: right-most untrusted entry; ports and IPv4-mapped peers handled;
    a non-address stops the walk at the proxy that forwarded it; untrusted peers and an
    empty trust list leave the scope alone."""

    def client(peer: str, forwarded: str | None, trusted: tuple[str, ...]) -> str:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        scope: dict[str, Any] = {"client": (peer, 1234), "headers": headers}
        TrustedProxies(trusted).apply(scope)
        return str(scope["client"][0])

    trusted = ("10.0.0.0/8", "fd00::/8")
    assert client("10.0.0.1", "1.1.1.1, 2.2.2.2", trusted) == "2.2.2.2"
    assert client("10.0.0.1", "1.1.1.1, 2.2.2.2, 10.9.9.9", trusted) == "2.2.2.2"
    assert client("10.0.0.1", "10.2.2.2, 10.9.9.9", trusted) == "10.2.2.2"  # all trusted
    assert client("10.0.0.1", "2.2.2.2:5555", trusted) == "2.2.2.2"
    assert client("10.0.0.1", "[2001:db8::1]:443", trusted) == "2001:db8::1"
    assert client("::ffff:10.0.0.1", "3.3.3.3", trusted) == "3.3.3.3"
    assert client("fd00::5", "3.3.3.3", trusted) == "3.3.3.3"
    assert client("10.0.0.1", "unknown, 10.9.9.9", trusted) == "10.9.9.9"
    assert client("10.0.0.1", None, trusted) == "10.0.0.1"
    assert client("8.8.8.8", "1.1.1.1", trusted) == "8.8.8.8"  # peer not trusted
    assert client("127.0.0.1", "1.1.1.1", ()) == "127.0.0.1"  # nothing trusted


def test_forwarded_proto_counts_only_from_a_trusted_peer() -> None:
    """The proxy terminated TLS: its ``X-Forwarded-Proto`` sets the scheme (HSTS is sent
    over HTTPS only); anyone else's is ignored, as is a value that is not a scheme."""

    def scheme(peer: str, proto: bytes) -> str:
        headers = [(b"x-forwarded-proto", proto)]
        scope: dict[str, Any] = {"client": (peer, 1), "headers": headers, "scheme": "http"}
        TrustedProxies(["10.0.0.0/8"]).apply(scope)
        return str(scope["scheme"])

    assert scheme("10.0.0.1", b"https") == "https"
    assert scheme("10.0.0.1", b"http, HTTPS") == "https"
    assert scheme("10.0.0.1", b"gopher") == "http"
    assert scheme("192.0.2.1", b"https") == "http"


def test_trusted_proxies_setting_is_comma_separated_and_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().trusted_proxies == []
    monkeypatch.setenv("PARLEY_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7,fd00::/8")
    assert Settings().trusted_proxies == ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]
    monkeypatch.setenv("PARLEY_TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal")
    with pytest.raises(pydantic.ValidationError, match=r"'proxy\.internal' is not an IP address"):
        Settings()
