"""JWT signing keys rotate: a new key signs after the schedule, the old one keeps verifying
through the overlap, and the JWKS publishes both."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from parley.errors import AuthenticationFailed
from parley.identity.tokens import TokenSigner
from parley.store import migrate
from parley.store.db import Database


async def test_rotation_keeps_old_tokens_valid_through_the_overlap(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/k.db")
    await migrate.upgrade(db)
    try:
        signer = TokenSigner(db, rotate_days=0.5 / 86400)  # a new key every half second
        await signer.load()
        old, _ = await signer.issue(sub="u1", sid="s1", auth_time=0, amr=["pwd"])
        first_kid = signer.jwks()["keys"][0]["kid"]
        await asyncio.sleep(0.6)
        new, _ = await signer.issue(sub="u1", sid="s1", auth_time=0, amr=["pwd"])
        kids = [k["kid"] for k in signer.jwks()["keys"]]
        assert len(kids) == 2
        assert kids[1] == first_kid  # newest first, the retired one still published
        assert (await signer.verify(old)).sub == "u1"
        assert (await signer.verify(new)).sub == "u1"
        # a second instance sharing the database verifies both without being told
        other = TokenSigner(db, rotate_days=1)
        assert (await other.verify(old)).sid == "s1"
        with pytest.raises(AuthenticationFailed):
            await other.verify(old[:-4] + "AAAA")  # tampered signature
        with pytest.raises(AuthenticationFailed):
            await other.verify(old, typ="mfa")  # an access token is not an MFA challenge
    finally:
        await db.close()
