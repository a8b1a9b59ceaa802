"""A software passkey authenticator for tests: real P-256 keys, real CBOR and COSE, the
byte layouts of the WebAuthn Level 3 specification (authenticator data, "none"
attestation, ES256 assertion signatures), so the server's py_webauthn checks run on
genuine responses, and a test can bend one field (origin, challenge, sign count) at a
time to see each check refuse it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

_UP, _UV, _AT = 0x01, 0x04, 0x40


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class _Credential:
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0


@dataclass
class SoftAuthenticator:
    """``origin``: the page the ceremonies claim to run on. ``counts``: whether the sign
    count grows (False mimics synced passkeys, which always send 0)."""

    origin: str
    counts: bool = True
    verified: bool = True
    credentials: dict[bytes, _Credential] = field(default_factory=dict)
    aaguid: bytes = bytes(16)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        body = {"type": kind, "challenge": challenge, "origin": origin or self.origin}
        return json.dumps({**body, "crossOrigin": False}, separators=(",", ":")).encode()

    def _flags(self, extra: int = 0) -> int:
        return _UP | (_UV if self.verified else 0) | extra

    def create(self, options: dict[str, Any], *, origin: str | None = None) -> dict[str, Any]:
        """``navigator.credentials.create()`` answered, as ``PublicKeyCredential.toJSON()``."""
        rp_id = options["rp"]["id"]
        credential_id = os.urandom(32)
        key = ec.generate_private_key(ec.SECP256R1())
        user_handle = _unb64(options["user"]["id"])
        stored = _Credential(key, rp_id, user_handle)
        self.credentials[credential_id] = stored
        numbers = key.public_key().public_numbers()
        cose = cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )
        attested = self.aaguid + struct.pack(">H", len(credential_id)) + credential_id + cose
        auth_data = self._auth_data(stored, _AT) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return {
            "id": _b64(credential_id),
            "rawId": _b64(credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": _b64(client_data),
                "attestationObject": _b64(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def _auth_data(self, credential: _Credential, extra: int = 0) -> bytes:
        rp_hash = hashlib.sha256(credential.rp_id.encode()).digest()
        return rp_hash + bytes([self._flags(extra)]) + struct.pack(">I", credential.sign_count)

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        credential_id: bytes | None = None,
        sign_count: int | None = None,
    ) -> dict[str, Any]:
        """``navigator.credentials.get()`` answered with a discoverable credential (the
        first one for the RP, or ``credential_id``). ``sign_count`` forces the counter
        sent (a cloned authenticator's stale one)."""
        rp_id = options["rpId"]
        chosen = credential_id or next(
            cid for cid, c in self.credentials.items() if c.rp_id == rp_id
        )
        credential = self.credentials[chosen]
        if self.counts:
            credential.sign_count += 1
        if sign_count is not None:
            credential.sign_count = sign_count
        auth_data = self._auth_data(credential)
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = credential.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return {
            "id": _b64(chosen),
            "rawId": _b64(chosen),
            "type": "public-key",
            "response": {
                "clientDataJSON": _b64(client_data),
                "authenticatorData": _b64(auth_data),
                "signature": _b64(signature),
                "userHandle": _b64(credential.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }
