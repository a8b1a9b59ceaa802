"""Password hashing (argon2id) and the password policy.

Hashing runs in a thread, at most ``concurrency`` at a time: each hash takes ~64 MiB and
tens of milliseconds, so a login storm waits in line instead of exhausting memory or
blocking the event loop. Unknown accounts are verified against a dummy hash, so a login's
timing does not tell whether the account exists.

The blocklist is zxcvbn's list of the 30,000 most common passwords (from leaked password
corpora, as shipped in the ``zxcvbn`` package), compared case-insensitively.
"""

from __future__ import annotations

import asyncio
import functools
import sys

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from parley.errors import InvalidRequest

MIN_LENGTH = 12
MAX_LENGTH = 1024


@functools.cache
def _blocklist() -> frozenset[str]:
    # Imported on first use: the module holds all of zxcvbn's word lists (~12 MB), and
    # only the password list is kept once this set is built.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # noqa: PLC0415

    blocked = frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])
    sys.modules.pop("zxcvbn.frequency_lists", None)
    return blocked


def check_policy(password: str, *, email: str, name: str = "") -> None:
    """Raise a 400 naming the rule a password breaks."""
    if len(password) < MIN_LENGTH:
        raise InvalidRequest(
            f"password must be at least {MIN_LENGTH} characters",
            param="password",
            code="weak_password",
        )
    if len(password) > MAX_LENGTH:
        raise InvalidRequest(
            f"password must be at most {MAX_LENGTH} characters",
            param="password",
            code="weak_password",
        )
    lowered = password.lower()
    local = email.split("@", 1)[0].lower()
    for part in {email.lower(), local, name.lower().strip()}:
        if len(part) >= 3 and part in lowered:
            raise InvalidRequest(
                "password must not contain your email or name",
                param="password",
                code="weak_password",
            )
    if lowered in _blocklist():
        raise InvalidRequest(
            "password is among the most common passwords; choose another",
            param="password",
            code="weak_password",
        )


class Passwords:
    def __init__(self, *, concurrency: int = 4, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> tuple[bool, str | None]:
        """(matches, new hash when the parameters changed and it should be re-stored)."""
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash("parley-dummy-password-for-timing")
            stored = self._dummy
            await self._check(stored, password)
            return False, None
        ok = await self._check(stored, password)
        if ok and self._hasher.check_needs_rehash(stored):
            return True, await self.hash(password)
        return ok, None

    async def _check(self, stored: str, password: str) -> bool:
        async with self._slots:
            try:
                return await asyncio.to_thread(self._hasher.verify, stored, password)
            except (VerificationError, InvalidHashError):
                return False
