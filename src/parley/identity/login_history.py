"""Each account's sign-in history for risk scoring, in SQL so every instance shares it.

A profile row (``login_profiles``) holds the last located sign-in, recent networks and an
hour-of-day histogram; it changes by compare-and-set on its ``version`` (two instances
recording at once both land, one after the other). Known devices (``login_devices``) are
the SHA-256 of device cookies that completed a sign-in, at most ``MAX_DEVICES`` per
account (the least recently used go first).
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from parley.identity.risk import Attempt, Profile, learn
from parley.store.db import Database
from parley.store.tables import login_devices, login_profiles

MAX_DEVICES = 50
_ATTEMPTS = 5


def device_hash(device: str) -> str:
    return hashlib.sha256(device.encode()).hexdigest()


class LoginHistory:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def profile(self, user_id: str) -> tuple[Profile, int | None]:
        """The profile and its version (None: no completed sign-in recorded yet)."""
        t = login_profiles
        async with self._db.read() as conn:
            row = (await conn.execute(select(t).where(t.c.user_id == user_id))).first()
        if row is None:
            return Profile(), None
        hours = tuple(int(h) for h in row.hours) if len(row.hours) == 24 else (0,) * 24
        profile = Profile(
            logins=row.logins,
            last_ms=row.last_ms,
            last_country=row.last_country,
            last_lat=row.last_lat,
            last_lon=row.last_lon,
            networks=tuple(str(n) for n in row.networks),
            hours=hours,
        )
        return profile, row.version

    async def knows(self, user_id: str, device: str | None) -> bool:
        if device is None:
            return False
        t = login_devices
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(t.c.user_id).where(
                        t.c.user_id == user_id, t.c.device_hash == device_hash(device)
                    )
                )
            ).first()
        return row is not None

    async def record(self, user_id: str, attempt: Attempt, device: str | None) -> None:
        """Learn from a completed sign-in: the profile, and the device as known."""
        for _ in range(_ATTEMPTS):
            profile, version = await self.profile(user_id)
            if await self._store(user_id, learn(profile, attempt), version):
                break
        if device is not None:
            await self._device(user_id, device_hash(device), attempt.at_ms)

    async def _store(self, user_id: str, profile: Profile, version: int | None) -> bool:
        values: dict[str, Any] = {
            "logins": profile.logins,
            "last_ms": profile.last_ms,
            "last_country": profile.last_country,
            "last_lat": profile.last_lat,
            "last_lon": profile.last_lon,
            "networks": list(profile.networks),
            "hours": list(profile.hours),
        }
        t = login_profiles
        try:
            async with self._db.write() as conn:
                if version is None:
                    await conn.execute(t.insert().values(user_id=user_id, version=1, **values))
                    return True
                result = await conn.execute(
                    update(t)
                    .where(t.c.user_id == user_id, t.c.version == version)
                    .values(version=version + 1, **values)
                )
                return bool(result.rowcount)
        except IntegrityError:
            return False  # another instance made the row first: read it and try again

    async def _device(self, user_id: str, digest: str, at_ms: int) -> None:
        t = login_devices
        mine = (t.c.user_id == user_id, t.c.device_hash == digest)
        try:
            async with self._db.write() as conn:
                result = await conn.execute(update(t).where(*mine).values(last_ms=at_ms))
                if result.rowcount:
                    return
                await conn.execute(
                    t.insert().values(
                        user_id=user_id, device_hash=digest, first_ms=at_ms, last_ms=at_ms
                    )
                )
                keep = (
                    select(t.c.device_hash)
                    .where(t.c.user_id == user_id)
                    .order_by(t.c.last_ms.desc())
                    .limit(MAX_DEVICES)
                    .scalar_subquery()
                )
                await conn.execute(
                    delete(t).where(t.c.user_id == user_id, t.c.device_hash.not_in(keep))
                )
        except IntegrityError:
            pass  # the same device recorded by another instance at the same moment
