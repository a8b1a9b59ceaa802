"""The client address (login lockout, rate limits, sessions, audit log) is the socket's
peer unless that peer is a configured trusted proxy: a spoofed ``X-Forwarded-For`` never
chooses it, and behind a trusted proxy each client is told apart. Embedded and shared
(PostgreSQL + Redis) backends; on the shared one a second instance sees the same lockout."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.test_access import Client, backend, start
from tests.e2e.test_auth import PASSWORD, Account

__all__ = ["backend", "start"]  # fixtures shared with the access suite

PROXY = "127.0.0.2"  # the "proxy" connects from this loopback address
WRONG = "wrong-password!"


def login(http: httpx.Client, email: str, password: str, forwarded: str | None) -> httpx.Response:
    headers = {"x-forwarded-for": forwarded} if forwarded else {}
    return http.post("/auth/login", json={"email": email, "password": password}, headers=headers)


def from_address(url: str, source: str) -> httpx.Client:
    return httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address=source))


@pytest.fixture
def via_proxy() -> Iterator[Callable[[str], httpx.Client]]:
    clients: list[httpx.Client] = []

    def make(url: str) -> httpx.Client:
        clients.append(from_address(url, PROXY))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def test_spoofed_forwarded_for_does_not_bypass_the_address_lockout(
    start: Callable[..., Client],
) -> None:
    """With no trusted proxies (the default), a client on loopback that sends a new
    ``X-Forwarded-For`` with every attempt is still one address: locked out after five
    failures, and its session records the socket's address, not the header's."""
    client = start(allow_registration=True)
    ada = Account(client, "ada@example.com")
    sessions = ada.get("/auth/sessions").json()["data"]
    assert {row["ip"] for row in sessions} == {"127.0.0.1"}
    for i in range(5):
        failed = login(client.http, f"user{i}@example.com", WRONG, f"198.51.100.{i}")
        assert failed.status_code == 401, failed.text
    blocked = login(client.http, "ada@example.com", PASSWORD, "198.51.100.200")
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "too_many_attempts"
    with from_address(client.url, "127.0.0.5") as elsewhere:
        spoofed = login(elsewhere, "ada@example.com", PASSWORD, "1.2.3.4")
    assert spoofed.status_code == 200  # another peer: its own address, not the header's
    tokens = spoofed.json()
    listed = client.http.get(
        "/auth/sessions", headers={"authorization": f"Bearer {tokens['access_token']}"}
    ).json()["data"]
    assert "1.2.3.4" not in {row["ip"] for row in listed}
    assert "127.0.0.5" in {row["ip"] for row in listed}


def test_behind_a_trusted_proxy_clients_get_their_own_addresses(
    start: Callable[..., Client],
    via_proxy: Callable[[str], httpx.Client],
    backend: dict[str, Any],
) -> None:
    """Every request arrives from the proxy's address: one client's five bad logins lock
    out that client (by the right-most untrusted ``X-Forwarded-For`` entry, whatever it
    puts left of it), not the others behind the same proxy. On the shared backend the
    lockout holds on a second instance too."""
    settings = {"allow_registration": True, "trusted_proxies": f"{PROXY}, 10.0.0.0/8"}
    one = start(**settings)
    Account(one, "ada@example.com")
    proxy = via_proxy(one.url)
    for i in range(5):
        # the attacker forges a left-hand entry; the proxy appended its real address
        forged = f"192.0.2.{i}, 203.0.113.5"
        assert login(proxy, f"user{i}@example.com", WRONG, forged).status_code == 401
    assert login(proxy, "ada@example.com", PASSWORD, "203.0.113.5").status_code == 429
    # another client behind the same proxy (through a second, internal proxy hop)
    other = login(proxy, "ada@example.com", PASSWORD, "203.0.113.6, 10.1.2.3")
    assert other.status_code == 200, other.text
    listed = proxy.get(
        "/auth/sessions", headers={"authorization": f"Bearer {other.json()['access_token']}"}
    ).json()["data"]
    assert {row["ip"] for row in listed} >= {"203.0.113.6"}
    assert "10.1.2.3" not in {row["ip"] for row in listed}
    # the proxy itself, with no header, is its own address
    direct = login(proxy, "ada@example.com", PASSWORD, None)
    assert direct.status_code == 200
    if backend:  # shared state: the lockout is the same on every instance
        two = start(**settings)
        second = via_proxy(two.url)
        again = login(second, "ada@example.com", PASSWORD, "203.0.113.5")
        assert again.status_code == 429
        assert login(second, "ada@example.com", PASSWORD, "203.0.113.7").status_code == 200
