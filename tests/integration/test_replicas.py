"""Read replicas on a real streaming replica made in the test run (``tests/pg_replica.py``):
which queries went where, a user's own writes never missing from what they read next, and
a lagging or stopped replica taken out of rotation and brought back."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from parley.app import create_app
from parley.config import Settings
from parley.store.db import Database
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, fake_models, serve_in_thread
from tests import pg_replica
from tests.e2e.test_access import ADMIN, Client
from tests.e2e.test_auth import Account
from tests.polling import eventually


@pytest.fixture(scope="module")
def pair() -> Iterator[pg_replica.Pair]:
    pg_replica.require()
    with pg_replica.primary_and_replica() as made:
        yield made


@pytest.fixture
def served(pair: pg_replica.Pair, loop_thread: LoopThread, fake: FakeUpstream) -> Iterator[Any]:
    stack = contextlib.ExitStack()

    def start(**settings: Any) -> tuple[Client, Database]:
        app = create_app(
            Settings(
                admin_key=ADMIN,
                allow_registration=True,
                database_url=pair.primary_url,
                database_replica_urls=[pair.replica_url],
                database_replica_check_seconds=0.1,
                **settings,
            ),
            models=fake_models(fake.url),
        )
        client = Client(stack.enter_context(serve_in_thread(loop_thread, app)))
        stack.callback(client.http.close)
        return client, app.state.services.db

    with stack:
        yield start


def _titles(account: Account) -> list[str]:
    listed = account.get("/api/conversations")
    assert listed.status_code == 200, listed.text
    return [c["title"] for c in listed.json()["data"]]


def _replica_rows(pair: pg_replica.Pair, title: str) -> int:
    """Rows with this title as the replica itself has them (titles here are the test's own)."""
    query = "SELECT count(*) FROM conversations WHERE title = '%s'" % title  # noqa: S608, UP031
    return int(pair.psql(pair.replica_port, query))


def test_lists_go_to_the_replica_but_a_users_own_write_is_never_missing(
    pair: pg_replica.Pair, served: Any
) -> None:
    # a generous lag bound: the paused replica below stays in rotation, stale
    client, db = served(database_replica_max_lag_seconds=60)
    replicas = db.replicas
    assert replicas is not None
    eventually(lambda: replicas.replicas[0].healthy)
    ada, bob = Account(client, "ada@example.com"), Account(client, "bob@example.com", "Bob")
    replica = replicas.replicas[0].url

    before = replicas.routed.copy()
    assert _titles(bob) == []  # bob wrote nothing: his list is a replica's
    assert replicas.routed[replica] == before[replica] + 1

    pair.psql(pair.replica_port, "SELECT pg_wal_replay_pause()")
    try:
        created = ada.call("POST", "/api/conversations", json={"model": "openai", "title": "fresh"})
        assert created.status_code == 201, created.text
        assert _replica_rows(pair, "fresh") == 0  # the replica has not seen it
        before = replicas.routed.copy()
        assert _titles(ada) == ["fresh"]  # ...but ada, having just written, reads the primary
        assert replicas.routed["primary"] == before["primary"] + 1
        assert replicas.routed[replica] == before[replica]
        cid = created.json()["id"]
        renamed = ada.call("PATCH", f"/api/conversations/{cid}", json={"title": "renamed"})
        assert renamed.status_code == 200, renamed.text
        assert _titles(ada) == ["renamed"]
        assert _titles(bob) == []  # bob's reads still go to the (stale) replica
        assert replicas.routed[replica] == before[replica] + 1
    finally:
        pair.psql(pair.replica_port, "SELECT pg_wal_replay_resume()")
    eventually(lambda: _replica_rows(pair, "renamed") == 1)


def test_a_lagging_or_stopped_replica_is_taken_out_and_comes_back(
    pair: pg_replica.Pair, served: Any
) -> None:
    client, db = served(database_replica_max_lag_seconds=0.5)
    replicas = db.replicas
    assert replicas is not None
    (state,) = replicas.replicas
    eventually(lambda: state.healthy)
    bob = Account(client, "carol@example.com", "Carol")
    up = f'parley_db_replica_up{{replica="127.0.0.1:{pair.replica_port}'

    pair.psql(pair.replica_port, "SELECT pg_wal_replay_pause()")
    try:
        # the primary moves on; the replica does not replay it, and its lag grows past 0.5 s
        pair.psql(pair.primary_port, "CREATE TABLE IF NOT EXISTS lag_probe (x int)")
        pair.psql(pair.primary_port, "INSERT INTO lag_probe VALUES (1)")
        eventually(lambda: not state.healthy)
        assert state.why.startswith("lagging")
        assert f'{up}"}} 0.0' in client.http.get("/metrics").text
        before = replicas.routed.copy()
        assert _titles(bob) == []
        assert replicas.routed["primary"] == before["primary"] + 1
        assert replicas.routed[state.url] == before[state.url]
    finally:
        pair.psql(pair.replica_port, "SELECT pg_wal_replay_resume()")
    eventually(lambda: state.healthy)
    before = replicas.routed.copy()
    assert _titles(bob) == []
    assert replicas.routed[state.url] == before[state.url] + 1
    scraped = client.http.get("/metrics").text
    assert f'{up}"}} 1.0' in scraped
    replica_reads = f'parley_db_lag_tolerant_reads_total{{target="127.0.0.1:{pair.replica_port}"}}'
    assert replica_reads in scraped
    assert 'parley_db_lag_tolerant_reads_total{target="primary"}' in scraped

    pg_replica.stop_replica(pair)
    try:
        eventually(lambda: not state.healthy)
        assert state.why.startswith("check failed")
        before = replicas.routed.copy()
        assert _titles(bob) == []  # served by the primary, no error
        assert replicas.routed["primary"] == before["primary"] + 1
    finally:
        pg_replica.start_replica(pair)
    eventually(lambda: state.healthy)
