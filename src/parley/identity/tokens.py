"""Access tokens: ES256 JWTs, five minutes by default, signed by keys kept in the database
so every instance signs and verifies with the same set.

Rotation: the newest key signs; a key stops signing after ``rotate_days`` and keeps
verifying for a day more (far longer than any access token lives), and
``/.well-known/jwks.json`` publishes every key still verifying. Instances reload the set
every minute, and sooner when a token names a ``kid`` they have not seen, but at most once
per ``UNKNOWN_KID_RELOAD_S``: the header is the sender's to choose, so a stream of made-up
``kid`` values must not become a stream of database reads.

A token is untrusted input until its signature checks out: its header must be a JSON
object naming a string ``kid`` and ``alg`` ES256 with no ``crit`` extensions (Parley
defines none), and whatever else is wrong with it is the same 401.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import select

from parley.errors import AuthenticationFailed
from parley.store.db import Database
from parley.store.tables import signing_keys

ISSUER = "parley"
ALG = "ES256"
_OVERLAP_MS = 86_400_000
_RELOAD_S = 60.0
UNKNOWN_KID_RELOAD_S = 5.0
"""The least time between two reloads of the key set caused by tokens naming unknown keys."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    sub: str
    sid: str
    jti: str
    auth_time: int
    amr: tuple[str, ...]
    exp: int
    typ: str = "access"
    idle: int = 0
    """Seconds of inactivity that end the session (0: no idle timeout), claim ``idl``."""


class TokenSigner:
    def __init__(self, db: Database, *, access_seconds: int = 300, rotate_days: float = 30) -> None:
        self._db = db
        self.access_seconds = access_seconds
        self._rotate_ms = int(rotate_days * 86_400_000)
        self._keys: KeySet = KeySet([])
        self._current: ECKey | None = None
        self._public: list[dict[str, Any]] = []
        self._loaded = 0.0
        self._current_retire_ms = 0
        self._reloading = asyncio.Lock()

    async def load(self) -> None:
        """Read the key set; make a new signing key when none is current."""
        now = int(time.time() * 1000)
        rows = await self._rows(now)
        if not rows or rows[0]["retire_ms"] <= now:
            await self._create(now)
            rows = await self._rows(now)
        keys = [ECKey.import_key(json.loads(r["private_jwk"])) for r in rows]
        self._keys = KeySet(list[Any](keys))
        self._current = keys[0]
        self._current_retire_ms = rows[0]["retire_ms"]
        self._public = [json.loads(r["public_jwk"]) for r in rows]
        self._loaded = time.monotonic()

    async def _rows(self, now: int) -> list[dict[str, Any]]:
        query = (
            select(signing_keys)
            .where(signing_keys.c.expires_ms > now)
            .order_by(signing_keys.c.created_ms.desc())
        )
        async with self._db.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def _create(self, now: int) -> None:
        kid = uuid.uuid4().hex[:16]
        key = ECKey.generate_key(
            "P-256", parameters={"kid": kid, "alg": ALG, "use": "sig"}, private=True
        )
        async with self._db.write() as conn:
            await conn.execute(
                signing_keys.insert().values(
                    kid=kid,
                    alg=ALG,
                    private_jwk=json.dumps(key.as_dict(private=True)),
                    public_jwk=json.dumps(key.as_dict(private=False)),
                    created_ms=now,
                    retire_ms=now + self._rotate_ms,
                    expires_ms=now + self._rotate_ms + _OVERLAP_MS,
                )
            )

    async def _fresh(self) -> None:
        stale = time.monotonic() - self._loaded > _RELOAD_S
        if self._current is None or stale or time.time() * 1000 >= self._current_retire_ms:
            await self._reload(older_than=0.0)

    async def _reload(self, *, older_than: float) -> None:
        """Load the key set unless it was loaded less than ``older_than`` seconds ago;
        requests that need a reload at the same time share one."""
        started = time.monotonic()
        async with self._reloading:
            if self._current is not None and self._loaded > started - older_than:
                return  # loaded meanwhile (by a request that queued first) or recently
            await self.load()

    def jwks(self) -> dict[str, Any]:
        return {"keys": self._public}

    async def issue(
        self,
        *,
        sub: str,
        sid: str,
        auth_time: int,
        amr: list[str],
        typ: str = "access",
        seconds: int | None = None,
        idle: int = 0,
    ) -> tuple[str, int]:
        lifetime = seconds or self.access_seconds
        claims: dict[str, Any] = {
            "sub": sub,
            "sid": sid,
            "jti": uuid.uuid4().hex,
            "auth_time": auth_time,
            "amr": amr,
        }
        if idle:
            claims["idl"] = idle
        return await self.seal(claims, typ=typ, seconds=lifetime), lifetime

    async def seal(self, claims: dict[str, Any], *, typ: str, seconds: int) -> str:
        """A signed, expiring token around ``claims`` for Parley's own later reading: an
        access token (``issue``) or a single sign-on flow's cookie, told apart by ``typ``."""
        await self._fresh()
        assert self._current is not None
        now = int(time.time())
        body = {**claims, "iss": ISSUER, "iat": now, "exp": now + seconds, "typ": typ}
        return jwt.encode({"alg": ALG, "kid": self._current.kid}, body, self._current)

    async def unseal(self, token: str, *, typ: str) -> dict[str, Any]:
        """The claims of a token ``seal`` made with this ``typ``: signature, issuer,
        expiry and type checked; else 401."""
        await self._fresh()
        try:
            kid = _kid(token)
            if kid not in {k.kid for k in self._keys.keys}:
                # a key made by another instance since our last load, or a made-up kid
                await self._reload(older_than=UNKNOWN_KID_RELOAD_S)
                if kid not in {k.kid for k in self._keys.keys}:
                    raise ValueError("token names an unknown signing key")
            decoded = jwt.decode(token, self._keys, algorithms=[ALG])
        except (JoseError, ValueError, TypeError) as exc:
            raise AuthenticationFailed("invalid or expired token", code="invalid_token") from exc
        c = decoded.claims
        if (
            not isinstance(c, dict)
            or c.get("iss") != ISSUER
            or c.get("typ") != typ
            or not isinstance(c.get("exp"), int)
            or c["exp"] <= int(time.time())
        ):
            raise AuthenticationFailed("invalid or expired token", code="invalid_token")
        return c

    async def verify(self, token: str, *, typ: str = "access") -> AccessClaims:
        """Signature, issuer, expiry and type; revocation is checked by the caller."""
        c = await self.unseal(token, typ=typ)
        if not isinstance(c.get("sub"), str) or not isinstance(c.get("sid"), str):
            raise AuthenticationFailed("invalid or expired token", code="invalid_token")
        return AccessClaims(
            sub=c["sub"],
            sid=c["sid"],
            jti=str(c.get("jti", "")),
            auth_time=int(c.get("auth_time", 0)),
            amr=tuple(c.get("amr") or ()),
            exp=c["exp"],
            typ=typ,
            idle=c["idl"] if isinstance(c.get("idl"), int) else 0,
        )


def _kid(token: str) -> str:
    """The ``kid`` of a token whose header has the one shape Parley issues; ``ValueError``
    for any other (a list, null, a string, bad base64, a ``crit`` list, another ``alg``)."""
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError("token header is not base64url JSON") from exc
    if not isinstance(header, dict):
        raise ValueError("token header is not a JSON object")
    kid = header.get("kid")
    if not isinstance(kid, str) or header.get("alg") != ALG or "crit" in header:
        raise ValueError("token header is not one Parley issues")
    return kid
