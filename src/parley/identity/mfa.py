"""TOTP (RFC 6238: 6 digits, 30-second steps, one step of drift either way) and single-use
recovery codes stored as sha256 hashes. A code is accepted once: the step it matched is
remembered in the shared state, so a code seen over a shoulder cannot be replayed."""

from __future__ import annotations

import hashlib
import secrets
import time

import pyotp

from parley.state import StateBackend
from parley.state import keys as state_keys

ISSUER = "Parley"
RECOVERY_CODES = 10


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step ``code`` belongs to (current, previous or next), or None."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = time.time() if at is None else at
    for drift in (0, -1, 1):
        moment = now + drift * totp.interval
        if secrets.compare_digest(totp.at(moment), code):
            return int(moment // totp.interval)
    return None


async def verify_once(state: StateBackend, user_id: str, secret: str, code: str) -> bool:
    step = matching_step(secret, code)
    if step is None:
        return False
    key = state_keys.failures("totp", f"{user_id}:{step}")
    if await state.has_flag(key):
        return False  # this step's code was already used
    await state.set_flag(key, 120)
    return True


def new_recovery_codes() -> list[str]:
    return [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]


def hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().lower().encode()).hexdigest()
