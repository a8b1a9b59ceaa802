"""Password reset and email verification: the links mailed to an account's address.

Asking for a reset does the same work whether or not the address has an account: it
checks the per-address rate limit and inserts one outbox row, nothing else, and answers
the same. Who the address belongs to is decided later, by the mail sender, off the
request path (``compose``): an address with no account (or a disabled one) is dropped
there, unsent, so neither the answer nor its timing tells an account exists.

A reset sets the new password under the password policy, spends the token, marks the
address verified (the link proved the mailbox) and ends every session of the account
through ``Accounts.logout_all``: refused on every instance, sockets closed.

Verification: with ``email_verification`` at ``required`` an unverified account may sign
in but not chat (``require_verified``); ``optional`` sends the link and only shows a
notice; ``off`` sends nothing. Changing an address mails a link to the new one and takes
effect when it is followed (``off``: at once).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

from sqlalchemy import update

from parley.errors import AuthenticationFailed, Conflict, PermissionDenied, StateError
from parley.identity import account_tokens
from parley.identity.accounts import Accounts, Authenticated
from parley.identity.keys import now_ms
from parley.identity.passwords import check_policy
from parley.identity.users import User, normalise_email
from parley.mail.outbox import MailOutbox
from parley.mail.templates import render
from parley.observability.logging import get_logger
from parley.state import keys as state_keys
from parley.store.tables import users

log = get_logger(__name__)

Verification = Literal["required", "optional", "off"]


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    reset_seconds: float = 1800.0
    verify_seconds: float = 48 * 3600.0
    verification: Verification = "optional"
    requests_per_hour: int = 5
    """Reset or verification mails per address per hour; more are silently not sent."""


def reset_link(base_url: str, token: str) -> str:
    # In the fragment: never sent to a server, so it stays out of access logs and Referer.
    return f"{base_url.rstrip('/')}/reset-password#token={token}"


def verify_link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/verify-email#token={token}"


class Recovery:
    def __init__(self, accounts: Accounts, outbox: MailOutbox, policy: RecoveryPolicy) -> None:
        self._accounts = accounts
        self._db = accounts.db
        self._state = accounts.state
        self.outbox = outbox
        self.policy = policy
        outbox.compose = self.compose

    @property
    def verification(self) -> Verification:
        """The mode in force: ``off`` whatever the setting when no mail can be sent."""
        return self.policy.verification if self.outbox.enabled else "off"

    # --- asking ---------------------------------------------------------------------

    async def _within_rate(self, address: str) -> bool:
        """Count one mail for ``address``; False once it has had its hourly share."""
        key = state_keys.failures("mail", address)
        try:
            if await self._state.locked_for(key) > 0:
                return False
            await self._state.record_failure(
                key,
                forget_s=3600.0,
                threshold=self.policy.requests_per_hour,
                base_s=3600.0,
                cap_s=3600.0,
            )
        except StateError:
            return True  # an unreachable limiter must not stop recovery
        return True

    async def request_reset(self, email: str, *, base_url: str) -> None:
        """Queue a reset mail for ``email``; the same work whether or not it has an account."""
        address = normalise_email(email)
        if not self.outbox.enabled:
            log.warning("password reset asked, but no SMTP server is configured")
            return
        if await self._within_rate(address):
            await self.outbox.enqueue("password_reset", address, {"base_url": base_url})

    async def send_verification(
        self, user: User, *, base_url: str, email: str | None = None
    ) -> bool:
        """Queue a verification link to ``email`` (an address change) or the account's own."""
        if self.verification == "off":
            return False
        address = email or user.email
        if not await self._within_rate(address):
            return False
        data = {"base_url": base_url, "user_id": user.id}
        await self.outbox.enqueue("verify_email", address, data)
        return True

    # --- composing (in the mail sender, off the request path) ------------------------

    async def compose(self, kind: str, to: str, data: dict[str, Any]) -> EmailMessage | None:
        if kind == "password_reset":
            user = await self._accounts.users.by_email(to)
            if user is None or user.disabled:
                return None
            seconds = self.policy.reset_seconds
            token = await account_tokens.mint(
                self._db, user_id=user.id, purpose="reset", email=to, seconds=seconds
            )
            link = reset_link(data["base_url"], token)
            return render(
                kind, to, {"name": user.name, "link": link, "minutes": str(int(seconds // 60))}
            )
        if kind == "verify_email":
            user = await self._accounts.users.by_id(data["user_id"])
            if user is None or user.disabled:
                return None
            seconds = self.policy.verify_seconds
            token = await account_tokens.mint(
                self._db, user_id=user.id, purpose="verify", email=to, seconds=seconds
            )
            link = verify_link(data["base_url"], token)
            values = {
                "name": user.name,
                "email": to,
                "link": link,
                "hours": str(int(seconds // 3600)),
            }
            return render(kind, to, values)
        raise ValueError(f"no mail template {kind!r}")

    # --- following a link -------------------------------------------------------------

    async def confirm_reset(self, token: str, new_password: str) -> str:
        """Set the password from a reset link; returns the user id. Ends every session."""
        row = await account_tokens.peek(self._db, token, "reset")
        user = await self._accounts.users.get(row.user_id)
        check_policy(new_password, email=user.email, name=user.name)
        hashed = await self._accounts.passwords.hash(new_password)
        async with self._db.write() as conn:
            await account_tokens.spend(conn, row, "reset")
            values: dict[str, Any] = {"password_hash": hashed}
            if not user.email_verified and row.email == user.email:
                values["email_verified_ms"] = now_ms()
            await conn.execute(update(users).where(users.c.id == user.id).values(**values))
        await self._after_password_change(user)
        return user.id

    async def set_password(self, user_id: str, new_password: str) -> None:
        """An admin's or the CLI's reset: the policy applies and every session ends."""
        user = await self._accounts.users.get(user_id)
        check_policy(new_password, email=user.email, name=user.name)
        hashed = await self._accounts.passwords.hash(new_password)
        await self._accounts.users.set_fields(user.id, password_hash=hashed)
        await self._after_password_change(user)

    async def reset_link_for(self, user_id: str, *, base_url: str) -> tuple[str, float]:
        """A one-time reset link handed to an admin instead of mailed (no SMTP needed)."""
        user = await self._accounts.users.get(user_id)
        seconds = self.policy.reset_seconds
        token = await account_tokens.mint(
            self._db, user_id=user.id, purpose="reset", email=user.email, seconds=seconds
        )
        return reset_link(base_url, token), seconds

    async def _after_password_change(self, user: User) -> None:
        self._accounts.forget_user(user.id)
        await self._accounts.logout_all(user.id)
        with contextlib.suppress(StateError):  # else the lockout expires by itself
            await self._state.clear(state_keys.failures("acct", user.email))

    async def verify_email(self, token: str) -> str:
        """Confirm an address (or move the account to a new one); returns the user id."""
        row = await account_tokens.peek(self._db, token, "verify")
        user = await self._accounts.users.get(row.user_id)
        if row.email != user.email and await self._accounts.users.by_email(row.email):
            raise Conflict("that address belongs to another account now", code="email_taken")
        async with self._db.write() as conn:
            await account_tokens.spend(conn, row, "verify")
            await conn.execute(
                update(users)
                .where(users.c.id == user.id)
                .values(email=row.email, email_verified_ms=now_ms())
            )
        self._accounts.forget_user(user.id)
        return user.id

    async def change_email(
        self, auth: Authenticated, new_email: str, password: str, *, base_url: str
    ) -> bool:
        """True when a link went to the new address (the change waits for it); False when
        verification is off and the address changed at once."""
        address = normalise_email(new_email)
        user = await self._accounts.users.get(auth.user.id)
        ok, _ = await self._accounts.passwords.verify(user.password_hash, password)
        if not ok:
            raise AuthenticationFailed("current password is wrong", code="invalid_credentials")
        if address == user.email:
            return False
        if await self._accounts.users.by_email(address):
            raise Conflict("an account with that email already exists", code="email_taken")
        if self.policy.verification == "off" or not self.outbox.enabled:
            await self._accounts.users.set_fields(user.id, email=address, email_verified_ms=None)
            self._accounts.forget_user(user.id)
            return False
        await self.send_verification(user, base_url=base_url, email=address)
        return True

    def require_verified(self, user: User) -> None:
        """Chat is closed to unverified accounts when verification is required."""
        if self.policy.verification == "required" and not user.email_verified:
            raise PermissionDenied(
                "verify your email address first: follow the link we sent you "
                "(POST /auth/verify-email/resend sends a new one)",
                code="email_unverified",
            )
