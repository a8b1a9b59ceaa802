"""Provider credentials entered through the API, encrypted at rest.

``PARLEY_SECRETS_KEY`` holds one or more Fernet keys, comma-separated: the first encrypts,
every one decrypts (``MultiFernet``), so a key is rotated by putting the new one first,
re-encrypting (``parley secrets rotate``), then dropping the old one. Without a key Parley
refuses to store a literal secret: only ``os.environ/NAME`` references, stored as they are.

A stored secret is the string ``sealed:<Fernet token>``; nothing but this module reads one.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from parley.config.secrets import Secret

SEALED = "sealed:"
HINT = "\u2026"
"""What a hint starts with (``…abcd``); an input starting with it means "keep the stored
secret" (``config/stored.py``)."""


class VaultError(ValueError):
    """No key, a malformed key, or a token none of the keys opens. Never carries a secret."""


def new_key() -> str:
    """A fresh key for ``PARLEY_SECRETS_KEY``."""
    return Fernet.generate_key().decode()


def hint(value: str) -> str:
    """At most the last four characters, and none of a short secret."""
    return HINT + value[-4:] if len(value) >= 12 else HINT


class SecretBox:
    """Encrypts with the first key, decrypts with any."""

    def __init__(self, keys: str | None) -> None:
        parts = [k.strip() for k in (keys or "").split(",") if k.strip()]
        try:
            fernets = [Fernet(k.encode()) for k in parts]
        except (ValueError, TypeError):
            raise VaultError(
                "PARLEY_SECRETS_KEY must be Fernet keys (32 url-safe base64 bytes each), "
                "comma-separated; `parley secrets new-key` makes one"
            ) from None
        self._keys = fernets
        self._fernet = MultiFernet(fernets) if fernets else None

    def ephemeral(self) -> SecretBox:
        """A box that seals with a throwaway key and still opens what this one sealed:
        for resolving a group that is tried, not stored (a connection test)."""
        box = SecretBox(None)
        box._keys = [Fernet(Fernet.generate_key()), *self._keys]
        box._fernet = MultiFernet(box._keys)
        return box

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def seal(self, value: str) -> str:
        if self._fernet is None:
            raise VaultError(
                "PARLEY_SECRETS_KEY is not set, so Parley cannot store a secret: set it "
                "(`parley secrets new-key`) or give a reference like os.environ/OPENAI_API_KEY"
            )
        return SEALED + self._fernet.encrypt(value.encode()).decode()

    def open(self, sealed: str) -> Secret:
        if self._fernet is None:
            raise VaultError("a stored secret needs PARLEY_SECRETS_KEY to be read; it is unset")
        try:
            return Secret(self._fernet.decrypt(sealed.removeprefix(SEALED).encode()).decode())
        except InvalidToken:
            raise VaultError(
                "a stored secret opens with none of the PARLEY_SECRETS_KEY keys"
            ) from None

    def reseal(self, sealed: str) -> str:
        """The same secret under the first key (rotation)."""
        if self._fernet is None:
            raise VaultError("PARLEY_SECRETS_KEY is not set")
        try:
            token = self._fernet.rotate(sealed.removeprefix(SEALED).encode())
        except InvalidToken:
            raise VaultError(
                "a stored secret opens with none of the PARLEY_SECRETS_KEY keys"
            ) from None
        return SEALED + token.decode()


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED)
