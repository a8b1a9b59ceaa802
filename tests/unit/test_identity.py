"""Password hashing, policy and TOTP, without a server."""

from __future__ import annotations

import pyotp
import pytest
from argon2 import PasswordHasher

from parley.errors import InvalidRequest
from parley.identity import mfa
from parley.identity.passwords import Passwords, check_policy

pytestmark = pytest.mark.real_password_cost  # tests/conftest.py: the production parameters


async def test_login_rehashes_when_parameters_change() -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    stored = old.hash("a long enough password")
    ok, rehash = await Passwords().verify(stored, "a long enough password")
    assert ok
    assert rehash is not None
    assert PasswordHasher().check_needs_rehash(rehash) is False
    wrong, none = await Passwords().verify(stored, "not the password!!")
    assert (wrong, none) == (False, None)


async def test_unknown_account_is_still_verified_against_a_hash() -> None:
    passwords = Passwords()
    ok, rehash = await passwords.verify(None, "anything at all 123")
    assert (ok, rehash) == (False, None)
    assert passwords._dummy is not None  # the same argon2 work as a real account


def test_policy_accepts_a_long_unusual_password() -> None:
    check_policy("violet kettle orbit 9931", email="ada@example.com", name="Ada")
    with pytest.raises(InvalidRequest, match="email or name"):
        check_policy("my name is ada lovelace", email="x@example.com", name="Ada Lovelace")


def test_totp_accepts_one_step_of_drift_only() -> None:
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    now = 1_800_000_000.0
    for drift, accepted in ((-60, False), (-30, True), (0, True), (30, True), (60, False)):
        step = mfa.matching_step(secret, totp.at(now + drift), at=now)
        assert (step is not None) is accepted, drift
    assert mfa.matching_step(secret, "12345", at=now) is None
