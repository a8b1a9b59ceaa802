"""The sampled gauges on ``/metrics``, per instance: WebSockets open and the users they
belong to, the database (and, on the shared tier, Redis) pool's connections, the outbox
backlogs and the bus lag. On the shared tier two instances: a socket open on A counts on
A only."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

import httpx

from tests.e2e.test_access import Client, backend, start
from tests.e2e.test_auth import Account
from tests.e2e.test_realtime import Live
from tests.polling import eventually

__all__ = ["backend", "start"]  # fixtures shared with the access suite

QUICK = {"metrics_sample_seconds": 0.1, "allow_registration": True}


def gauges(client: Client) -> dict[str, float]:
    """Every ``parley_`` sample on /metrics, by name and labels as printed."""
    text = httpx.get(f"{client.url}/metrics", timeout=10).text
    found = {}
    for line in text.splitlines():
        matched = re.match(r"^(parley_[a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
        if matched:
            found[matched[1]] = float(matched[2])
    return found


def test_the_sampled_gauges_follow_the_running_service(
    start: Callable[..., Client], backend: dict[str, Any]
) -> None:
    a = start(**QUICK)
    others = [start(**QUICK)] if backend else []  # the embedded tier is one instance
    ada = Account(a, "ada@example.com")
    first, second = Live(a, ada), Live(a, ada)
    try:
        eventually(lambda: gauges(a).get("parley_websocket_connections") == 2)
        seen = gauges(a)
        assert seen["parley_active_users"] == 1  # two sockets, one user
        assert seen['parley_outbox_backlog{kind="events"}'] >= 0
        assert seen['parley_outbox_backlog{kind="mail"}'] == 0
        assert seen["parley_bus_lag_seconds"] >= 0
        assert seen['parley_db_pool_connections{state="idle"}'] >= 0
        assert 'parley_db_pool_connections{state="in_use"}' in seen
        if backend:
            pooled = seen['parley_redis_pool_connections{state="idle"}']
            assert pooled + seen['parley_redis_pool_connections{state="in_use"}'] >= 1
        for other in others:  # the sockets are A's, not B's
            eventually(lambda other=other: "parley_websocket_connections" in gauges(other))
            assert gauges(other)["parley_websocket_connections"] == 0
            assert gauges(other)["parley_active_users"] == 0
        first.close()
        eventually(lambda: gauges(a).get("parley_websocket_connections") == 1)
        assert gauges(a)["parley_active_users"] == 1
    finally:
        for live in (first, second):
            with contextlib.suppress(Exception):  # first is closed already when all went well
                live.close()
    eventually(lambda: gauges(a).get("parley_active_users") == 0)
