"""Risk-based step-up around a password login: locate the address, score the attempt
(``identity/risk.py``), audit the decision with its signals, and carry it out.

- ``step_up`` for an account with no second factor: a six-digit code is mailed; the
  challenge (a signed ``stepup`` token) names a random id, and the table keeps only
  SHA-256(id:code), so neither a copy of the database nor the token alone gives the code.
  Single use (the ``UPDATE ... WHERE used_ms IS NULL`` that wins), expiring, and wrong
  codes count toward the account's lockout.
- ``deny``: refused, and the owner told by email (rate-limited per account).

The code is made when the mail is composed (in the outbox's sender, off the request path),
so it is never stored in the outbox row.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from sqlalchemy import update

from parley.errors import AuthenticationFailed, StateError
from parley.identity.audit import audit
from parley.identity.geo import Locator
from parley.identity.keys import now_ms
from parley.identity.login_history import LoginHistory
from parley.identity.risk import Assessment, Attempt, RiskPolicy, assess
from parley.identity.tokens import TokenSigner
from parley.identity.users import User, Users
from parley.mail.outbox import MailOutbox
from parley.mail.templates import render
from parley.observability.logging import get_logger
from parley.state import StateBackend
from parley.state import keys as state_keys
from parley.store.db import Database
from parley.store.tables import account_tokens

log = get_logger(__name__)

DEVICE_COOKIE = "parley_device"
DEVICE_PREFIX = "pd_"
MAILS = ("login_code", "login_denied")
PURPOSE = "login"
MAILS_PER_HOUR = 10
_INVALID = "this code is invalid, already used or expired; sign in again for a new one"


def new_device_id() -> str:
    return DEVICE_PREFIX + secrets.token_urlsafe(24)


def valid_device(value: str | None) -> str | None:
    """A device cookie Parley could have made, else None (a new device)."""
    if value and value.startswith(DEVICE_PREFIX) and 20 <= len(value) <= 64:
        return value
    return None


def _code_hash(challenge: str, code: str) -> str:
    return hashlib.sha256(f"{challenge}:{code}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Verdict:
    assessment: Assessment
    attempt: Attempt
    device: str | None


class LoginRisk:
    def __init__(
        self,
        db: Database,
        state: StateBackend,
        *,
        tokens: TokenSigner,
        outbox: MailOutbox,
        policy: RiskPolicy,
        code_seconds: float = 600.0,
        notify_on_deny: bool = True,
        clock: Callable[[], float] = time.time,
        locator: Locator | None = None,
    ) -> None:
        self._db = db
        self._state = state
        self._tokens = tokens
        self._users = Users(db)
        self.outbox = outbox
        self.policy = policy
        self.code_seconds = code_seconds
        self.notify_on_deny = notify_on_deny
        self.clock = clock
        """Seconds since the epoch; tests pass a crafted one."""
        self.locator = locator or Locator()
        self.history = LoginHistory(db)

    # --- scoring ---------------------------------------------------------------------

    async def attempt(self, user_id: str, *, ip: str | None, device: str | None) -> Attempt:
        place = await self.locator.locate(ip)
        known = await self.history.knows(user_id, device)
        return Attempt(place, at_ms=int(self.clock() * 1000), known_device=known)

    async def assess(
        self, user: User, *, ip: str | None, device: str | None, failures: int
    ) -> Verdict:
        seen = await self.attempt(user.id, ip=ip, device=device)
        attempt = Attempt(seen.place, seen.at_ms, seen.known_device, failures)
        profile, _ = await self.history.profile(user.id)
        return Verdict(assess(profile, attempt, self.policy), attempt, device)

    async def decided(self, user: User, verdict: Verdict, outcome: str, ip: str | None) -> None:
        """The audit entry of every scored login: score, band, signals and their inputs."""
        a = verdict.assessment
        await audit(
            self._db,
            actor=user.id,
            action="auth.risk",
            target=user.id,
            ip=ip,
            detail={
                "score": a.score,
                "band": a.band,
                "outcome": outcome,
                "signals": a.signals,
                "weights": {k: self.policy.weights.get(k, 0.0) for k in a.signals},
                "facts": a.facts,
            },
        )

    async def record(self, user_id: str, attempt: Attempt, device: str | None) -> None:
        await self.history.record(user_id, attempt, device)

    # --- step-up by email --------------------------------------------------------------

    async def challenge(self, user: User, kind: str) -> tuple[str, int]:
        """A ``stepup`` token for ``user`` and the code mailed for it; (token, seconds)."""
        challenge = secrets.token_hex(16)
        seconds = int(self.code_seconds)
        token = await self._tokens.seal(
            {"sub": user.id, "cid": challenge, "knd": kind}, typ="stepup", seconds=seconds
        )
        if await self._within_rate(user.id):
            await self.outbox.enqueue(
                "login_code", user.email, {"user_id": user.id, "challenge": challenge}
            )
        return token, seconds

    async def redeem(self, token: str, code: str) -> tuple[str, str]:
        """Spend the code of a ``stepup`` token; (user id, session kind). 401 when the code
        is wrong, used or expired (the caller counts it toward the lockout)."""
        claims = await self._tokens.unseal(token, typ="stepup")
        user_id, challenge = str(claims.get("sub", "")), str(claims.get("cid", ""))
        code = code.strip().replace(" ", "")
        if not (user_id and challenge and len(code) == 6 and code.isdigit()):
            raise AuthenticationFailed(_INVALID, code="invalid_step_up_code")
        c, now = account_tokens.c, now_ms()
        async with self._db.write() as conn:
            won = await conn.execute(
                update(account_tokens)
                .where(
                    c.token_hash == _code_hash(challenge, code),
                    c.user_id == user_id,
                    c.purpose == PURPOSE,
                    c.used_ms.is_(None),
                    c.expires_ms > now,
                )
                .values(used_ms=now)
            )
            if won.rowcount != 1:
                raise AuthenticationFailed(_INVALID, code="invalid_step_up_code")
            await conn.execute(  # every other live code of the account dies with it
                update(account_tokens)
                .where(c.user_id == user_id, c.purpose == PURPOSE, c.used_ms.is_(None))
                .values(used_ms=now)
            )
        return user_id, "web" if claims.get("knd") == "web" else "api"

    # --- refusal -----------------------------------------------------------------------

    async def notify_denied(self, user: User, verdict: Verdict, ip: str | None) -> bool:
        if not self.notify_on_deny or not self.outbox.enabled:
            return False
        if not await self._within_rate(user.id):
            return False
        facts = verdict.assessment.facts
        data = {
            "user_id": user.id,
            "at_ms": verdict.attempt.at_ms,
            "ip": ip or "unknown",
            "country": facts.get("country") or "unknown",
            "network": facts.get("network") or "unknown",
        }
        await self.outbox.enqueue("login_denied", user.email, data)
        return True

    async def _within_rate(self, user_id: str) -> bool:
        key = state_keys.failures("riskmail", user_id)
        try:
            if await self._state.locked_for(key) > 0:
                return False
            await self._state.record_failure(
                key, forget_s=3600.0, threshold=MAILS_PER_HOUR, base_s=3600.0, cap_s=3600.0
            )
        except StateError:
            return True
        return True

    # --- composing (in the mail sender) ----------------------------------------------

    async def compose(self, kind: str, to: str, data: dict[str, Any]) -> EmailMessage | None:
        user = await self._users.by_id(str(data["user_id"]))
        if user is None or user.disabled or user.email != to:
            return None
        if kind == "login_code":
            code = f"{secrets.randbelow(1_000_000):06d}"
            now = now_ms()
            async with self._db.write() as conn:
                await conn.execute(
                    account_tokens.insert().values(
                        token_hash=_code_hash(str(data["challenge"]), code),
                        user_id=user.id,
                        purpose=PURPOSE,
                        email=to,
                        created_ms=now,
                        expires_ms=now + int(self.code_seconds * 1000),
                    )
                )
            minutes = str(max(1, int(self.code_seconds // 60)))
            return render(kind, to, {"name": user.name, "code": code, "minutes": minutes})
        if kind == "login_denied":
            at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(int(data["at_ms"]) / 1000))
            values = {
                "name": user.name,
                "time": at,
                "ip": str(data["ip"]),
                "country": str(data["country"]),
                "network": str(data["network"]),
            }
            return render(kind, to, values)
        raise ValueError(f"no mail template {kind!r}")
