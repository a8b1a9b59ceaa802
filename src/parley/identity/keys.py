"""Virtual API keys: ``pk-`` + 43 url-safe characters (256 random bits), shown once.

Only a sha256 of the key is stored (the key is random, so a slow hash would add nothing but
latency) plus a short visible prefix to tell keys apart in listings. Each request looks the
hash up in a small in-process cache backed by one indexed query; revocation reaches every
instance at once through a flag in the shared state (see ``gateway/accounting/limits.py``), and the
flag outlives the cache so no instance can serve a revoked key from memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from sqlalchemy import Select, and_, or_, select, update

from parley.errors import AuthenticationFailed, InvalidRequest, KeySuspended, NotFound
from parley.gateway.accounting.caller import BudgetPeriod, Caller, Limits, Principal
from parley.store.db import Database
from parley.store.tables import api_keys, teams, users

KEY_PREFIX = "pk-"
_VISIBLE = len(KEY_PREFIX) + 8
_LIMIT_FIELDS = tuple(f.name for f in fields(Limits) if f.name in users.c)
"""The limit columns every principal (key, user, team) has."""


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    return uuid.uuid4().hex


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What an admin may set on a key (CLI flags and ``POST /admin/keys`` alike)."""

    name: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    models: Sequence[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_nusd: int | None = None
    budget_period: BudgetPeriod = "monthly"
    soft_budget_nusd: int | None = None
    expires_ms: int | None = None
    tier: str | None = None
    priority: int | None = None
    """Admission priority of this key's requests, 1 (first) to 5; None = the default."""
    max_cost_nusd: int | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    id: str
    key: str
    prefix: str


@dataclass(slots=True)
class _Cached:
    caller: Caller
    valid_until_ms: int | None
    loaded: float
    suspended: bool = False


class KeyStore:
    def __init__(self, db: Database, *, cache_seconds: float = 30.0) -> None:
        self._db = db
        self._cache: dict[str, _Cached] = {}
        self._cache_seconds = cache_seconds
        self._loading: dict[str, asyncio.Task[_Cached | None]] = {}
        self._generation = 0  # bumped by forget(): a read begun before it is not cached

    async def create(self, spec: KeySpec, *, created_by: str) -> CreatedKey:
        key = generate_key()
        key_id = new_id()
        async with self._db.write() as conn:
            await self._check_owner(conn, spec)
            await conn.execute(
                api_keys.insert().values(
                    id=key_id,
                    key_hash=hash_key(key),
                    prefix=key[:_VISIBLE],
                    name=spec.name,
                    user_id=spec.user_id,
                    team_id=spec.team_id,
                    models=list(spec.models) if spec.models is not None else None,
                    metadata=dict(spec.metadata) if spec.metadata else None,
                    tier=spec.tier,
                    priority=spec.priority,
                    max_cost_nusd=spec.max_cost_nusd,
                    expires_ms=spec.expires_ms,
                    created_ms=now_ms(),
                    created_by=created_by,
                    rpm=spec.rpm,
                    tpm=spec.tpm,
                    max_parallel=spec.max_parallel,
                    budget_nusd=spec.budget_nusd,
                    budget_period=spec.budget_period,
                    soft_budget_nusd=spec.soft_budget_nusd,
                )
            )
        return CreatedKey(key_id, key, key[:_VISIBLE])

    @staticmethod
    async def _check_owner(conn: Any, spec: KeySpec) -> None:
        if spec.team_id is not None:
            found = await conn.scalar(select(teams.c.id).where(teams.c.id == spec.team_id))
            if found is None:
                raise InvalidRequest(f"team {spec.team_id!r} does not exist", param="team_id")
        if spec.user_id is not None:
            found = await conn.scalar(select(users.c.id).where(users.c.id == spec.user_id))
            if found is None:
                raise InvalidRequest(f"user {spec.user_id!r} does not exist", param="user_id")

    async def find_id(self, key_or_id: str) -> str:
        """Accept the key itself or its id (what ``parley keys revoke`` is given)."""
        column = api_keys.c.key_hash if key_or_id.startswith(KEY_PREFIX) else api_keys.c.id
        value = hash_key(key_or_id) if key_or_id.startswith(KEY_PREFIX) else key_or_id
        async with self._db.read() as conn:
            found = await conn.scalar(select(api_keys.c.id).where(column == value))
        if found is None:
            raise NotFound("no such API key")
        return str(found)

    async def get(self, key_id: str) -> dict[str, Any]:
        async with self._db.read() as conn:
            row = (await conn.execute(_public_select().where(api_keys.c.id == key_id))).first()
        if row is None:
            raise NotFound(f"no API key with id {key_id!r}")
        return dict(row._mapping)

    async def list(
        self, *, team_id: str | None = None, user_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        query = _public_select().order_by(api_keys.c.created_ms.desc()).limit(limit)
        if team_id is not None:
            query = query.where(api_keys.c.team_id == team_id)
        if user_id is not None:
            query = query.where(api_keys.c.user_id == user_id)
        async with self._db.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def revoke(self, key_id: str) -> None:
        async with self._db.write() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_ms.is_(None))
                .values(revoked_ms=now_ms())
            )
        if result.rowcount == 0:
            await self.get(key_id)  # 404 when it never existed; revoking twice is fine
        self.forget(key_id)

    async def reset_budget(self, key_id: str) -> None:
        """Spend in the current period counts from now (a new counter is started)."""
        async with self._db.write() as conn:
            result = await conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(budget_reset_ms=now_ms())
            )
        if result.rowcount == 0:
            raise NotFound(f"no API key with id {key_id!r}")
        self.forget(key_id)

    async def rotate(self, key_id: str, *, grace_seconds: float) -> CreatedKey:
        key = generate_key()
        async with self._db.write() as conn:
            current = await conn.scalar(
                select(api_keys.c.key_hash).where(
                    api_keys.c.id == key_id, api_keys.c.revoked_ms.is_(None)
                )
            )
            if current is None:
                raise NotFound(f"no active API key with id {key_id!r}")
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(
                    key_hash=hash_key(key),
                    prefix=key[:_VISIBLE],
                    previous_hash=current,
                    previous_expires_ms=now_ms() + int(grace_seconds * 1000),
                )
            )
        self.forget(key_id)
        return CreatedKey(key_id, key, key[:_VISIBLE])

    def forget(self, key_id: str) -> None:
        for digest in [h for h, c in self._cache.items() if c.caller.key_id == key_id]:
            del self._cache[digest]
        self._generation += 1
        self._loading.clear()  # requests from now on read the key afresh

    async def authenticate(self, key: str, *, ip: str | None = None) -> Caller:
        """The caller a key stands for. Every refusal says the same thing, so a probe
        cannot tell an unknown key from a revoked or expired one."""
        digest = hash_key(key)
        now = now_ms()
        cached = self._cache.get(digest)
        if cached is None or time.monotonic() - cached.loaded > self._cache_seconds:
            cached = await self._load_once(digest, now)
            if cached is None:
                raise AuthenticationFailed("invalid API key")
        if cached.valid_until_ms is not None and now >= cached.valid_until_ms:
            raise AuthenticationFailed("invalid API key")
        if cached.suspended:  # the key is genuine: saying why helps its owner, not a probe
            raise KeySuspended()
        return cached.caller if ip is None else replace(cached.caller, ip=ip)

    async def _load_once(self, digest: str, now: int) -> _Cached | None:
        """One database read however many requests miss the cache for the same key at
        once: when a busy key's entry expires, every request in flight at that moment
        missed together, and each read of its own (hundreds at high concurrency) stalled
        them all behind the database. A waiter that gives up does not cancel the read
        the others wait on."""
        loading = self._loading.get(digest)
        if loading is None:
            loading = asyncio.ensure_future(self._load_and_cache(digest, now))
            self._loading[digest] = loading
            loading.add_done_callback(lambda task: self._loaded(digest, task))
        return await asyncio.shield(loading)

    def _loaded(self, digest: str, task: asyncio.Task[_Cached | None]) -> None:
        if self._loading.get(digest) is task:
            del self._loading[digest]
        if not task.cancelled():
            task.exception()  # every waiter has it, or none is left to: not "never retrieved"

    async def _load_and_cache(self, digest: str, now: int) -> _Cached | None:
        generation = self._generation
        cached = await self._load(digest, now)
        if cached is not None and generation == self._generation:
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[digest] = cached
        return cached

    async def _load(self, digest: str, now: int) -> _Cached | None:
        user_cols = [users.c[f].label(f"user_{f}") for f in _LIMIT_FIELDS]
        team_cols = [teams.c[f].label(f"team_{f}") for f in _LIMIT_FIELDS]
        query = (
            select(
                api_keys,
                users.c.disabled.label("user_disabled"),
                users.c.tier.label("user_tier"),
                *user_cols,
                *team_cols,
            )
            .select_from(
                api_keys.outerjoin(users, users.c.id == api_keys.c.user_id).outerjoin(
                    teams, teams.c.id == api_keys.c.team_id
                )
            )
            .where(
                or_(
                    api_keys.c.key_hash == digest,
                    and_(api_keys.c.previous_hash == digest, api_keys.c.previous_expires_ms > now),
                ),
                api_keys.c.revoked_ms.is_(None),
            )
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        r = dict(row._mapping)
        if r["user_disabled"]:
            return None
        deadlines = [r["expires_ms"]]
        if r["key_hash"] != digest:
            deadlines.append(r["previous_expires_ms"])
        valid_until = min((d for d in deadlines if d is not None), default=None)
        principals = [Principal("key", r["id"], Limits.from_row(r), label=r["prefix"])]
        if r["user_id"] is not None:
            principals.append(Principal("user", r["user_id"], Limits.from_row(r, "user_")))
        if r["team_id"] is not None:
            principals.append(Principal("team", r["team_id"], Limits.from_row(r, "team_")))
        caller = Caller(
            key_id=r["id"],
            user_id=r["user_id"],
            team_id=r["team_id"],
            models=frozenset(r["models"]) if r["models"] is not None else None,
            principals=tuple(principals),
            tier=r["tier"],
            user_tier=r["user_tier"],
            priority=r["priority"],
        )
        return _Cached(caller, valid_until, time.monotonic(), r["suspended_ms"] is not None)


def _public_select() -> Select[Any]:
    """Everything about a key except its hashes."""
    hidden = {"key_hash", "previous_hash"}
    return select(*(c for c in api_keys.c if c.name not in hidden))
