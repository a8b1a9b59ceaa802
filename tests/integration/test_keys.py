"""API key lookups on SQLite and PostgreSQL: one database read however many requests miss
the cache together, and a revocation is never undone by a read that began before it."""

from __future__ import annotations

import asyncio

import pytest

from parley.errors import AuthenticationFailed
from parley.identity.keys import KeySpec, KeyStore, _Cached
from parley.store.db import Database


class CountingKeyStore(KeyStore):
    """Counts database reads and holds each one's result until ``release`` is set, so a
    test can line requests up behind it, or revoke the key in between."""

    def __init__(self, db: Database, **kwargs: float) -> None:
        super().__init__(db, **kwargs)
        self.reads = 0
        self.release = asyncio.Event()

    async def _load(self, digest: str, now: int) -> _Cached | None:
        self.reads += 1
        found = await super()._load(digest, now)
        await self.release.wait()
        return found


async def test_concurrent_misses_for_one_key_share_one_read(db: Database) -> None:
    store = CountingKeyStore(db, cache_seconds=30)
    created = await store.create(KeySpec(name="busy"), created_by="test")
    callers = [asyncio.create_task(store.authenticate(created.key)) for _ in range(50)]
    await asyncio.sleep(0.05)
    callers[0].cancel()  # one waiter giving up does not cancel the read the rest share
    store.release.set()
    results = await asyncio.gather(*callers[1:])
    assert {caller.key_id for caller in results} == {created.id}
    assert store.reads == 1
    await store.authenticate(created.key)  # cached now
    assert store.reads == 1
    with pytest.raises(AuthenticationFailed):  # an unknown key: one shared read too
        await asyncio.gather(*(store.authenticate("pk-unknown") for _ in range(5)))
    assert store.reads == 2


async def test_a_read_begun_before_a_revocation_is_not_cached(db: Database) -> None:
    store = CountingKeyStore(db, cache_seconds=30)
    created = await store.create(KeySpec(name="doomed"), created_by="test")
    early = asyncio.create_task(store.authenticate(created.key))
    await asyncio.sleep(0.05)
    await store.revoke(created.id)  # the held read saw the key still valid
    store.release.set()
    assert (await early).key_id == created.id  # it began before the revocation
    with pytest.raises(AuthenticationFailed):
        await store.authenticate(created.key)
    assert store.reads == 2
