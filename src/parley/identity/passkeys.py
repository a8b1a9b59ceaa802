"""Passkeys: WebAuthn credentials, made and checked with py_webauthn.

Parley keeps each credential's public key, its sign count and a name the user chose; the
private key never leaves the authenticator. Credentials are discoverable (resident), so a
passkey can sign someone in with no email typed: the assertion names the credential and
its user.

Challenges are 32 random bytes, each remembered as a flag in the shared state under its
purpose and the user it was issued to (``state/keys.py``). A response is only verified
after its challenge's flag is taken, and taking succeeds for one caller on any instance,
so a challenge answers once and expires with the flag; a replayed or forged response
finds no flag and is refused before any cryptography runs.

A sign count that fails to grow means two authenticators hold the same key (a clone): the
login is refused. Authenticators that never count (always 0, as synced passkeys do) pass,
as the specification allows.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from parley.errors import AuthenticationFailed, Conflict, InvalidRequest, NotFound
from parley.identity.keys import new_id, now_ms
from parley.identity.users import User
from parley.state import StateBackend
from parley.state import keys as state_keys
from parley.store.db import Database
from parley.store.tables import passkeys

# py_webauthn (with cryptography, pyasn1 and cbor2 behind it) is imported on first use:
# ~0.14 s of start-up for a gateway that may never see a passkey.
if TYPE_CHECKING:
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor

MAX_PER_USER = 20


@functools.cache
def _transports() -> frozenset[str]:
    from webauthn.helpers.structs import AuthenticatorTransport

    return frozenset(t.value for t in AuthenticatorTransport)


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Who the credentials belong to: ``id`` is the site's domain, ``origins`` the pages
    allowed to run the ceremonies (``api/passkeys.py`` decides them per request)."""

    id: str
    name: str
    origins: list[str]


@dataclass(frozen=True, slots=True)
class Asserted:
    """A verified assertion: whose passkey it was, and whether the user was verified
    (PIN or biometric) rather than merely present."""

    user_id: str
    passkey_id: str
    user_verified: bool


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _challenge_of(credential: dict[str, Any]) -> str:
    """The challenge the client signed, read from ``clientDataJSON`` to find its flag
    (the library checks it again, against the flag's challenge)."""
    try:
        response = credential["response"]
        client_data = json.loads(_unb64url(response["clientDataJSON"]))
        challenge = client_data["challenge"]
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise InvalidRequest(
            "credential is not a WebAuthn response", param="credential", code="passkey_invalid"
        ) from exc
    if not isinstance(challenge, str) or not 16 <= len(challenge) <= 128:
        raise InvalidRequest("credential has no usable challenge", param="credential")
    return challenge


def _refused(exc: Exception) -> AuthenticationFailed:
    text = str(exc)
    code = "passkey_sign_count" if "sign count" in text else "passkey_rejected"
    return AuthenticationFailed(f"passkey not accepted: {text}", code=code)


class Passkeys:
    def __init__(self, db: Database, state: StateBackend, *, challenge_seconds: int) -> None:
        self._db = db
        self._state = state
        self._challenge_s = challenge_seconds

    async def _challenge(self, purpose: str, subject: str) -> bytes:
        challenge = secrets.token_bytes(32)
        key = state_keys.passkey_challenge(purpose, subject, b64url(challenge))
        await self._state.set_flag(key, self._challenge_s)
        return challenge

    async def _take(self, purpose: str, subject: str, credential: dict[str, Any]) -> bytes:
        challenge = _challenge_of(credential)
        key = state_keys.passkey_challenge(purpose, subject, challenge)
        if not await self._state.take_flag(key):
            raise AuthenticationFailed(
                "passkey challenge expired or already used; start again",
                code="passkey_challenge",
            )
        return _unb64url(challenge)

    # --- registration ----------------------------------------------------------------

    async def registration_options(self, rp: RelyingParty, user: User) -> dict[str, Any]:
        """``PublicKeyCredentialCreationOptions`` as JSON: a discoverable credential for
        this user, none of the authenticators they already registered."""
        existing = await self._rows(user.id)
        if len(existing) >= MAX_PER_USER:
            raise InvalidRequest(
                f"at most {MAX_PER_USER} passkeys per account", code="too_many_passkeys"
            )
        from webauthn import generate_registration_options, options_to_json
        from webauthn.helpers.structs import (
            AuthenticatorSelectionCriteria,
            ResidentKeyRequirement,
            UserVerificationRequirement,
        )

        options = generate_registration_options(
            rp_id=rp.id,
            rp_name=rp.name,
            user_id=user.id.encode(),
            user_name=user.email,
            user_display_name=user.name,
            challenge=await self._challenge("register", user.id),
            timeout=self._challenge_s * 1000,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[_descriptor(row) for row in existing],
        )
        body: dict[str, Any] = json.loads(options_to_json(options))
        return body

    async def register(
        self, rp: RelyingParty, user: User, credential: dict[str, Any], name: str
    ) -> dict[str, Any]:
        from webauthn import verify_registration_response
        from webauthn.helpers.exceptions import WebAuthnException

        challenge = await self._take("register", user.id, credential)
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=rp.id,
                expected_origin=rp.origins,
            )
        except WebAuthnException as exc:
            raise InvalidRequest(
                f"passkey not accepted: {exc}", param="credential", code="passkey_rejected"
            ) from exc
        transports = credential.get("response", {}).get("transports")
        row = {
            "id": new_id(),
            "user_id": user.id,
            "credential_id": b64url(verified.credential_id),
            "public_key": verified.credential_public_key,
            "sign_count": verified.sign_count,
            "name": name.strip() or "Passkey",
            "transports": [t for t in transports if t in _transports()]
            if isinstance(transports, list)
            else None,
            "aaguid": verified.aaguid,
            "backed_up": bool(verified.credential_backed_up),
            "created_ms": now_ms(),
            "last_used_ms": None,
        }
        try:
            async with self._db.write() as conn:
                await conn.execute(passkeys.insert().values(**row))
        except IntegrityError as exc:
            raise Conflict("this passkey is already registered", code="passkey_exists") from exc
        return _public(row)

    # --- assertion -------------------------------------------------------------------

    async def assertion_options(
        self, rp: RelyingParty, purpose: str, user_id: str | None = None
    ) -> dict[str, Any]:
        """``PublicKeyCredentialRequestOptions`` as JSON. With no user (sign-in), no
        credentials are listed: the authenticator offers its discoverable ones."""
        from webauthn import generate_authentication_options, options_to_json
        from webauthn.helpers.structs import UserVerificationRequirement

        allow = [_descriptor(r) for r in await self._rows(user_id)] if user_id else []
        if user_id and not allow:
            raise InvalidRequest("this account has no passkey", code="no_passkey")
        options = generate_authentication_options(
            rp_id=rp.id,
            challenge=await self._challenge(purpose, user_id or "-"),
            timeout=self._challenge_s * 1000,
            allow_credentials=allow,
            user_verification=UserVerificationRequirement.PREFERRED
            if user_id
            else UserVerificationRequirement.REQUIRED,
        )
        body: dict[str, Any] = json.loads(options_to_json(options))
        return body

    async def verify(
        self,
        rp: RelyingParty,
        credential: dict[str, Any],
        purpose: str,
        user_id: str | None = None,
    ) -> Asserted:
        """Check an assertion for ``purpose`` (``login`` with no user: a passwordless
        sign-in, which needs user verification; otherwise a second factor or a
        re-authentication of ``user_id``) and advance the credential's sign count."""
        from webauthn import verify_authentication_response
        from webauthn.helpers.exceptions import WebAuthnException

        challenge = await self._take(purpose, user_id or "-", credential)
        raw_id = credential.get("rawId") or credential.get("id")
        row = await self._by_credential(raw_id) if isinstance(raw_id, str) else None
        if row is None or (user_id is not None and row["user_id"] != user_id):
            raise AuthenticationFailed("unknown passkey", code="passkey_rejected")
        handle = credential.get("response", {}).get("userHandle")
        if handle and _handle_user(handle) != row["user_id"]:
            raise AuthenticationFailed(
                "passkey belongs to another account", code="passkey_rejected"
            )
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=rp.id,
                expected_origin=rp.origins,
                credential_public_key=row["public_key"],
                credential_current_sign_count=row["sign_count"],
                require_user_verification=user_id is None,
            )
        except WebAuthnException as exc:
            raise _refused(exc) from exc
        async with self._db.write() as conn:
            moved = await conn.execute(
                update(passkeys)
                .where(passkeys.c.id == row["id"], passkeys.c.sign_count == row["sign_count"])
                .values(sign_count=verified.new_sign_count, last_used_ms=now_ms())
            )
        if not moved.rowcount:  # another login with this credential landed in between
            raise AuthenticationFailed("passkey used twice at once", code="passkey_sign_count")
        return Asserted(row["user_id"], row["id"], verified.user_verified)

    # --- management ------------------------------------------------------------------

    async def listed(self, user_id: str) -> list[dict[str, Any]]:
        return [_public(r) for r in await self._rows(user_id)]

    async def has_any(self, user_id: str) -> bool:
        async with self._db.read() as conn:
            found = await conn.execute(
                select(passkeys.c.id).where(passkeys.c.user_id == user_id).limit(1)
            )
            return found.first() is not None

    async def rename(self, user_id: str, passkey_id: str, name: str) -> dict[str, Any]:
        async with self._db.write() as conn:
            done = await conn.execute(
                update(passkeys)
                .where(passkeys.c.id == passkey_id, passkeys.c.user_id == user_id)
                .values(name=name.strip() or "Passkey")
            )
        if not done.rowcount:
            raise NotFound(f"no passkey with id {passkey_id!r}")
        return next(p for p in await self.listed(user_id) if p["id"] == passkey_id)

    async def remove(self, user_id: str, passkey_id: str) -> None:
        async with self._db.write() as conn:
            done = await conn.execute(
                passkeys.delete().where(passkeys.c.id == passkey_id, passkeys.c.user_id == user_id)
            )
        if not done.rowcount:
            raise NotFound(f"no passkey with id {passkey_id!r}")

    async def _rows(self, user_id: str | None) -> list[dict[str, Any]]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(passkeys)
                .where(passkeys.c.user_id == user_id)
                .order_by(passkeys.c.created_ms)
            )
            return [dict(r._mapping) for r in rows]

    async def _by_credential(self, credential_id: str) -> dict[str, Any] | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(passkeys).where(passkeys.c.credential_id == credential_id)
                )
            ).first()
        return None if row is None else dict(row._mapping)


def _handle_user(handle: str) -> str | None:
    try:
        return _unb64url(handle).decode()
    except (ValueError, binascii.Error):
        return None


def _descriptor(row: dict[str, Any]) -> PublicKeyCredentialDescriptor:
    from webauthn.helpers.structs import AuthenticatorTransport, PublicKeyCredentialDescriptor

    known = _transports()
    transports = [AuthenticatorTransport(t) for t in row["transports"] or [] if t in known]
    return PublicKeyCredentialDescriptor(
        id=_unb64url(row["credential_id"]), transports=transports or None
    )


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "created_ms": row["created_ms"],
        "last_used_ms": row["last_used_ms"],
        "backed_up": row["backed_up"],
        "transports": row["transports"] or [],
    }
