"""Accounts: registration, login (with lockout and MFA), token refresh, logout, password
and MFA management. Every refusal of a login says the same thing and costs the same
time, whether or not the account exists."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, update

from parley.errors import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
    StateError,
    TooManyAttempts,
)
from parley.identity import mfa
from parley.identity.invitations import Invitations
from parley.identity.keys import now_ms
from parley.identity.login_risk import LoginRisk, Verdict
from parley.identity.passkeys import Passkeys, RelyingParty
from parley.identity.passwords import Passwords, check_policy
from parley.identity.sessions import SessionInfo, SessionKind, Sessions
from parley.identity.tokens import AccessClaims, TokenSigner
from parley.identity.users import User, Users, normalise_email
from parley.state import StateBackend
from parley.state import keys as state_keys
from parley.store.db import Database
from parley.store.tables import recovery_codes

_BAD_LOGIN = "invalid email or password"
_USER_CACHE_S = 10.0
"""How long a verified token's user row is reused. Disabling a user revokes their sessions
(immediate everywhere), so the cache can only delay role changes, by at most this long."""
REAUTH_SSO_SECONDS = 600
"""How recent a single sign-on must be to stand for a password before deleting the account."""


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    max_failures: int = 5
    base_s: float = 60.0
    cap_s: float = 900.0
    forget_s: float = 12 * 3600.0


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """How long a session may sit unused (``idle_s``) and live at all (``absolute_s``);
    None: no such limit (the refresh token's own lifetime)."""

    idle_s: float | None = None
    absolute_s: float | None = None


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    web: SessionLimits = SessionLimits(idle_s=1800.0, absolute_s=36000.0)
    api: SessionLimits = SessionLimits()

    def of(self, kind: SessionKind) -> SessionLimits:
        return self.web if kind == "web" else self.api


RevocationHook = Callable[[str, list[str]], Awaitable[None]]
"""Called with (user id, session ids) once sessions are revoked everywhere."""


@dataclass(frozen=True, slots=True)
class Authenticated:
    claims: AccessClaims
    user: User


class Accounts:
    def __init__(
        self,
        db: Database,
        state: StateBackend,
        *,
        tokens: TokenSigner,
        passwords: Passwords,
        sessions: Sessions,
        lockout: LockoutPolicy,
        passkey_challenge_seconds: int = 300,
        session_policy: SessionPolicy | None = None,
    ) -> None:
        self._db = db
        self._state = state
        self.users = Users(db)
        self.invitations = Invitations(db)
        self.tokens = tokens
        self.passwords = passwords
        self.sessions = sessions
        self.passkeys = Passkeys(db, state, challenge_seconds=passkey_challenge_seconds)
        self._lockout = lockout
        self.session_policy = session_policy or SessionPolicy()
        self._user_cache: dict[str, tuple[User, float]] = {}
        self._first = asyncio.Lock()  # one first account, even when two register at once
        self.revoked: list[RevocationHook] = []
        """Told of every revoked session (the live hub closes their sockets)."""
        self.risk: LoginRisk | None = None
        """Risk-based step-up of password logins, when ``risk_enabled`` (set by services)."""

    @property
    def db(self) -> Database:
        return self._db

    @property
    def state(self) -> StateBackend:
        return self._state

    def forget_user(self, user_id: str) -> None:
        """Drop this instance's cached row after a change to it (others expire theirs)."""
        self._user_cache.pop(user_id, None)

    # --- registration and login -------------------------------------------------------

    async def register(
        self,
        *,
        email: str,
        password: str,
        name: str,
        is_admin: bool = False,
        admin_if_first: bool = False,
    ) -> User:
        """``admin_if_first``: the embedded tier's first run, where whoever registers first
        owns the install. Decided under an in-process lock: the embedded tier is one
        process (the shared tiers never pass it; their first admin is made with the admin
        key)."""
        email = normalise_email(email)
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidRequest("name must be 1 to 200 characters", param="name")
        check_policy(password, email=email, name=name)
        hashed = await self.passwords.hash(password)
        if not admin_if_first:
            return await self.users.create(
                email=email, name=name, password_hash=hashed, is_admin=is_admin
            )
        async with self._first:
            first = not await self.users.any_exist()
            return await self.users.create(
                email=email, name=name, password_hash=hashed, is_admin=is_admin or first
            )

    async def login(
        self,
        email: str,
        password: str,
        *,
        ip: str | None,
        user_agent: str | None,
        kind: SessionKind = "api",
        device: str | None = None,
    ) -> dict[str, Any]:
        """``device``: the browser's device cookie (risk scoring's "new device" signal)."""
        subjects = [state_keys.failures("acct", email.strip().lower())]
        if ip:
            subjects.append(state_keys.failures("ip", ip))
        await self._refuse_if_locked(subjects)
        try:
            address = normalise_email(email)
        except InvalidRequest:
            address = ""
        user = await self.users.by_email(address) if address else None
        ok, rehash = await self.passwords.verify(user.password_hash if user else None, password)
        if user is None or not ok or user.disabled:
            await self._failed(subjects)
            raise AuthenticationFailed(_BAD_LOGIN, code="invalid_credentials")
        failures = await self._failure_count(subjects[0])
        await self._state.clear(subjects[0])
        if rehash is not None:
            await self.users.set_fields(user.id, password_hash=rehash)
        methods = self._second_factors(user, await self.passkeys.has_any(user.id))
        verdict = None
        if self.risk is not None:
            verdict = await self.risk.assess(user, ip=ip, device=device, failures=failures)
            band = verdict.assessment.band
            if band == "deny":
                await self._deny(user, verdict, ip)
            if band == "step_up" and not methods:
                return await self._step_up_by_email(user, verdict, ip, kind)
            outcome = "mfa" if methods else "allow"
            await self.risk.decided(user, verdict, outcome, ip)
        if methods:
            # the session's kind rides in the challenge's sid (it has no session yet)
            challenge, lifetime = await self.tokens.issue(
                sub=user.id, sid=kind, auth_time=int(time.time()), amr=["pwd"], typ="mfa"
            )
            return {
                "mfa_required": True,
                "mfa_token": challenge,
                "expires_in": lifetime,
                "mfa_methods": methods,
                "step_up": verdict is not None and verdict.assessment.band == "step_up",
            }
        return await self._start(
            user, ["pwd"], ip=ip, user_agent=user_agent, kind=kind, device=device, verdict=verdict
        )

    async def _failure_count(self, subject: str) -> int:
        if self.risk is None:
            return 0
        try:
            return await self._state.failure_count(subject)
        except StateError as exc:
            raise ServiceUnavailable("login is unavailable right now; retry shortly") from exc

    async def _deny(self, user: User, verdict: Verdict, ip: str | None) -> None:
        assert self.risk is not None
        notified = await self.risk.notify_denied(user, verdict, ip)
        await self.risk.decided(user, verdict, "deny_notified" if notified else "deny", ip)
        raise PermissionDenied(
            "this sign-in was refused because it looks risky (for example, too far from the "
            "last sign-in too soon); the account's owner has been told by email. If it was "
            "you, try again later from a device or network you have used before, or ask an "
            "admin",
            code="login_denied",
        )

    async def _step_up_by_email(
        self, user: User, verdict: Verdict, ip: str | None, kind: SessionKind
    ) -> dict[str, Any]:
        """A second check for an account with no second factor: a code by email."""
        assert self.risk is not None
        if not self.risk.outbox.enabled:
            await self.risk.decided(user, verdict, "step_up_unavailable", ip)
            raise PermissionDenied(
                "this sign-in needs a second check, but no second factor is set up and this "
                "server cannot send email; ask an admin",
                code="step_up_unavailable",
            )
        token, lifetime = await self.risk.challenge(user, kind)
        await self.risk.decided(user, verdict, "step_up_email", ip)
        return {
            "step_up_required": True,
            "step_up_token": token,
            "step_up_methods": ["email"],
            "expires_in": lifetime,
        }

    async def login_step_up(
        self,
        step_up_token: str,
        code: str,
        *,
        ip: str | None,
        user_agent: str | None,
        device: str | None = None,
    ) -> dict[str, Any]:
        """Finish a stepped-up login with the code mailed for it."""
        if self.risk is None:
            raise AuthenticationFailed("invalid or expired token", code="invalid_token")
        claims = await self.tokens.unseal(step_up_token, typ="stepup")
        user = await self.users.get(str(claims.get("sub", "")))
        subjects = [state_keys.failures("acct", user.email)]
        if ip:
            subjects.append(state_keys.failures("ip", ip))
        await self._refuse_if_locked(subjects)
        try:
            user_id, kind = await self.risk.redeem(step_up_token, code)
        except AuthenticationFailed:
            await self._failed(subjects)
            raise
        await self._state.clear(subjects[0])
        if user.disabled or user_id != user.id:
            raise AuthenticationFailed(_BAD_LOGIN, code="invalid_credentials")
        session_kind: SessionKind = "web" if kind == "web" else "api"
        return await self._start(
            user, ["pwd", "mail"], ip=ip, user_agent=user_agent, kind=session_kind, device=device
        )

    @staticmethod
    def _second_factors(user: User, has_passkey: bool) -> list[str]:
        """What may follow a password: a passkey is a second factor as good as TOTP,
        so holding one makes a password alone insufficient."""
        return (["totp"] if user.mfa_enabled else []) + (["passkey"] if has_passkey else [])

    async def passkey_mfa_options(self, mfa_token: str, rp: RelyingParty) -> dict[str, Any]:
        claims = await self.tokens.verify(mfa_token, typ="mfa")
        return await self.passkeys.assertion_options(rp, "mfa", claims.sub)

    async def login_passkey(
        self,
        rp: RelyingParty,
        credential: dict[str, Any],
        *,
        mfa_token: str | None,
        ip: str | None,
        user_agent: str | None,
        kind: SessionKind = "api",
    ) -> dict[str, Any]:
        """A passkey sign-in: alone (a discoverable credential, user verification
        required), or after a password (``mfa_token``). Either yields the session a
        password and second factor would: the refresh family, the access token, ``amr``
        naming the key (RFC 8176 ``hwk``, ``user``)."""
        subjects = [state_keys.failures("ip", ip)] if ip else []
        user_id = None
        if mfa_token is not None:
            mfa_claims = await self.tokens.verify(mfa_token, typ="mfa")
            user_id = mfa_claims.sub
            kind = "web" if mfa_claims.sid == "web" else "api"  # as the password step was
            subjects.append(state_keys.failures("acct", (await self.users.get(user_id)).email))
        if subjects:
            await self._refuse_if_locked(subjects)
        try:
            asserted = await self.passkeys.verify(
                rp, credential, "mfa" if user_id else "login", user_id
            )
        except AuthenticationFailed:
            if subjects:
                await self._failed(subjects)
            raise
        user = await self.users.get(asserted.user_id)
        if user.disabled:
            raise AuthenticationFailed(_BAD_LOGIN, code="invalid_credentials")
        amr = (["pwd"] if user_id else []) + ["hwk", "user"]
        return await self._start(user, amr, ip=ip, user_agent=user_agent, kind=kind)

    async def login_mfa(
        self,
        mfa_token: str,
        *,
        code: str | None,
        recovery_code: str | None,
        ip: str | None,
        user_agent: str | None,
        device: str | None = None,
    ) -> dict[str, Any]:
        claims = await self.tokens.verify(mfa_token, typ="mfa")
        user = await self.users.get(claims.sub)
        subjects = [state_keys.failures("acct", user.email)]
        if ip:
            subjects.append(state_keys.failures("ip", ip))
        await self._refuse_if_locked(subjects)
        if code is not None and user.mfa_secret:
            ok = await mfa.verify_once(self._state, user.id, user.mfa_secret, code)
            amr = ["pwd", "otp"]
        elif recovery_code is not None:
            ok = await self._use_recovery_code(user.id, recovery_code)
            amr = ["pwd", "otp", "rec"]
        else:
            raise InvalidRequest("send code or recovery_code", param="code")
        if not ok:
            await self._failed(subjects)
            raise AuthenticationFailed("invalid code", code="invalid_mfa_code")
        await self._state.clear(subjects[0])
        kind: SessionKind = "web" if claims.sid == "web" else "api"
        return await self._start(user, amr, ip=ip, user_agent=user_agent, kind=kind, device=device)

    async def _refuse_if_locked(self, subjects: list[str]) -> None:
        waits = [await self._locked_for(s) for s in subjects]
        if max(waits) > 0:
            raise TooManyAttempts(
                "too many failed attempts; try again later",
                code="too_many_attempts",
                retry_after=max(waits),
            )

    async def _locked_for(self, subject: str) -> float:
        try:
            return await self._state.locked_for(subject)
        except StateError as exc:
            raise ServiceUnavailable("login is unavailable right now; retry shortly") from exc

    async def _failed(self, subjects: list[str]) -> None:
        policy = self._lockout
        for subject in subjects:
            await self._state.record_failure(
                subject,
                forget_s=policy.forget_s,
                threshold=policy.max_failures,
                base_s=policy.base_s,
                cap_s=policy.cap_s,
            )

    async def login_sso(
        self,
        user: User,
        *,
        provider: str,
        ip: str | None,
        user_agent: str | None,
        kind: SessionKind,
    ) -> dict[str, Any]:
        """The session a password login would start, for a user an OpenID provider
        vouched for (``identity/sso.py`` has checked the ID token and the account). The
        provider did the authenticating, so Parley asks for no second factor of its own."""
        if user.disabled:
            raise AuthenticationFailed("this account is disabled", code="account_disabled")
        return await self._start(
            user, ["oidc"], ip=ip, user_agent=user_agent, kind=kind, sso_provider=provider
        )

    async def _start(
        self,
        user: User,
        amr: list[str],
        *,
        ip: str | None,
        user_agent: str | None,
        kind: SessionKind,
        sso_provider: str | None = None,
        device: str | None = None,
        verdict: Verdict | None = None,
    ) -> dict[str, Any]:
        """``device`` / ``verdict``: a password sign-in's, whose place, time and device the
        risk history learns once the session exists (``verdict``: already located)."""
        limits = self.session_policy.of(kind)
        session, refresh = await self.sessions.start(
            user.id,
            amr=amr,
            ip=ip,
            user_agent=user_agent,
            kind=kind,
            absolute_s=limits.absolute_s,
            sso_provider=sso_provider,
        )
        if limits.idle_s is not None:
            await self._state.set_flag(state_keys.session_idle(session.id), limits.idle_s)
        access, lifetime = await self._access_token(session)
        if self.risk is not None and "pwd" in amr:
            seen = verdict.attempt if verdict is not None else None
            if seen is None:
                seen = await self.risk.attempt(user.id, ip=ip, device=device)
            await self.risk.record(user.id, seen, device)
        body: dict[str, Any] = {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": lifetime,
        }
        second = user.mfa_enabled or "hwk" in amr or await self.passkeys.has_any(user.id)
        if not second and await self.users.teams_requiring_mfa(user.id):
            body["mfa_enrollment_required"] = True
        return body

    async def _access_token(self, session: SessionInfo) -> tuple[str, int]:
        """An access token that dies with the session: never past its absolute end, and
        carrying its idle timeout (``idl``) for ``authenticate`` to enforce."""
        idle = self.session_policy.of(session.kind).idle_s
        left = (session.expires_ms - int(time.time() * 1000)) // 1000
        if left < 1:
            raise AuthenticationFailed("session expired; sign in again", code="session_expired")
        return await self.tokens.issue(
            sub=session.user_id,
            sid=session.id,
            auth_time=session.auth_time_ms // 1000,
            amr=session.amr,
            seconds=min(self.tokens.access_seconds, left),
            idle=max(1, int(idle)) if idle is not None else 0,
        )

    async def _still_active(self, user_id: str, session_id: str, idle_s: float) -> None:
        """Extend an idle-limited session by one more period of inactivity, or end it (on
        every instance) if that period has already run out.

        The shared state's flag is the session's clock. A missing flag is either a period
        run out or a flag lost with the state (the embedded tier's state is the process's
        memory, so every restart would otherwise sign every browser out; a Redis flushed or
        failed over without persistence loses them too). The database tells them apart: it
        records the sign-in and each refresh, never later than the real last use, so a
        session it saw within ``idle_s`` is alive and gets its flag back, and nothing is
        kept alive longer than the limit allows."""
        key = state_keys.session_idle(session_id)
        try:
            alive = await self._state.touch(key, idle_s)
        except StateError as exc:
            raise ServiceUnavailable("sessions cannot be checked right now; retry") from exc
        if alive:
            return
        last_used_ms = await self.sessions.last_used_ms(session_id)
        if last_used_ms is not None and time.time() * 1000 - last_used_ms < idle_s * 1000:
            try:
                await self._state.set_flag(key, idle_s)
            except StateError as exc:
                raise ServiceUnavailable("sessions cannot be checked right now; retry") from exc
            return
        with contextlib.suppress(NotFound):
            await self.sessions.revoke(session_id)
        await self._flag_sessions(user_id, [session_id])
        raise AuthenticationFailed(
            "session expired after inactivity; sign in again", code="session_expired"
        )

    async def refresh(self, token: str) -> dict[str, Any]:
        session, following = await self.sessions.rotate(token)
        if following is None:
            await self._flag_sessions(session.user_id, [session.id])
            raise AuthenticationFailed(
                "refresh token reused: the session has been revoked", code="token_reused"
            )
        idle = self.session_policy.of(session.kind).idle_s
        if idle is not None:
            await self._still_active(session.user_id, session.id, idle)
        access, lifetime = await self._access_token(session)
        return {
            "access_token": access,
            "refresh_token": following,
            "token_type": "bearer",
            "expires_in": lifetime,
        }

    # --- per-request authentication ---------------------------------------------------

    async def authenticate(self, token: str) -> Authenticated:
        claims = await self.tokens.verify(token)
        if await self.is_revoked(claims.sid):
            raise AuthenticationFailed("session revoked", code="invalid_token")
        if claims.idle:
            await self._still_active(claims.sub, claims.sid, claims.idle)
        user = await self._cached_user(claims.sub)
        if user.disabled:
            raise AuthenticationFailed("account disabled", code="invalid_token")
        return Authenticated(claims, user)

    async def _cached_user(self, user_id: str) -> User:
        now = time.monotonic()
        hit = self._user_cache.get(user_id)
        if hit is not None and now - hit[1] < _USER_CACHE_S:
            return hit[0]
        user = await self.users.get(user_id)
        if len(self._user_cache) > 50_000:
            self._user_cache.clear()
        self._user_cache[user_id] = (user, now)
        return user

    async def _flag_sessions(self, user_id: str, session_ids: list[str]) -> None:
        """Every way a session ends comes here: requests with its tokens are refused on
        every instance (the shared flag), and its open sockets are closed (the hooks)."""
        ttl = self.tokens.access_seconds + 60  # outlives every access token of the session
        for session_id in session_ids:
            await self._state.set_flag(state_keys.revoked("session", session_id), ttl)
        for hook in self.revoked:
            await hook(user_id, session_ids)

    async def is_revoked(self, session_id: str) -> bool:
        try:
            return await self._state.has_flag(state_keys.revoked("session", session_id))
        except StateError as exc:
            raise ServiceUnavailable("sessions cannot be checked right now; retry") from exc

    async def logout(self, auth: Authenticated) -> None:
        await self.sessions.revoke(auth.claims.sid)
        await self._flag_sessions(auth.user.id, [auth.claims.sid])

    async def revoke_session(self, auth: Authenticated, session_id: str) -> None:
        await self.sessions.revoke(session_id, user_id=auth.user.id)
        await self._flag_sessions(auth.user.id, [session_id])

    async def logout_all(self, user_id: str) -> int:
        ids = await self.sessions.revoke_all(user_id)
        await self._flag_sessions(user_id, ids)
        return len(ids)

    async def reauthenticate(
        self,
        auth: Authenticated,
        *,
        password: str | None,
        credential: dict[str, Any] | None,
        rp: RelyingParty | None,
        ip: str | None,
    ) -> str:
        """Prove, again, that the person at the keyboard owns the account (before it is
        deleted): its password, or one of its passkeys (a ``reauth`` challenge). Failures
        count toward the account's lockout like a login's. Returns the method used."""
        user = await self.users.get(auth.user.id)  # never a cached hash
        subjects = [state_keys.failures("acct", user.email)]
        if ip:
            subjects.append(state_keys.failures("ip", ip))
        await self._refuse_if_locked(subjects)
        if credential is None and not password and "oidc" in auth.claims.amr:
            return self._recent_sso(auth)
        try:
            if credential is not None and rp is not None:
                await self.passkeys.verify(rp, credential, "reauth", user.id)
                return "passkey"
            if password is None:
                raise InvalidRequest("send password or credential", param="password")
            ok, _ = await self.passwords.verify(user.password_hash, password)
            if not ok:
                raise AuthenticationFailed("password is wrong", code="invalid_credentials")
            return "password"
        except AuthenticationFailed:
            await self._failed(subjects)
            raise

    @staticmethod
    def _recent_sso(auth: Authenticated) -> str:
        """A single sign-on account may have no password Parley knows (and no passkey):
        its proof is a sign-in at the provider within ``REAUTH_SSO_SECONDS``, the time the
        session began (``auth_time``, kept across refreshes)."""
        if time.time() - auth.claims.auth_time <= REAUTH_SSO_SECONDS:
            return "recent_sso"
        raise AuthenticationFailed(
            f"sign out and sign in again with your provider, then confirm within "
            f"{REAUTH_SSO_SECONDS // 60} minutes (or enter your password)",
            code="reauthentication_required",
        )

    # --- password and MFA -------------------------------------------------------------

    async def change_password(self, auth: Authenticated, current: str, new: str) -> None:
        user = await self.users.get(auth.user.id)  # never a cached hash
        ok, _ = await self.passwords.verify(user.password_hash, current)
        if not ok:
            raise AuthenticationFailed("current password is wrong", code="invalid_credentials")
        check_policy(new, email=auth.user.email, name=auth.user.name)
        await self.users.set_fields(auth.user.id, password_hash=await self.passwords.hash(new))
        self._user_cache.pop(auth.user.id, None)
        # other sessions may belong to whoever knew the old password
        others = await self.sessions.revoke_all(auth.user.id, keep=auth.claims.sid)
        await self._flag_sessions(auth.user.id, others)

    async def mfa_enroll(self, auth: Authenticated) -> dict[str, str]:
        if auth.user.mfa_enabled:
            raise InvalidRequest("MFA is already enabled; disable it first", code="mfa_enabled")
        secret = mfa.new_secret()
        await self.users.set_fields(auth.user.id, mfa_secret=secret)
        return {"secret": secret, "otpauth_uri": mfa.provisioning_uri(secret, auth.user.email)}

    async def mfa_verify(self, auth: Authenticated, code: str) -> list[str]:
        user = await self.users.get(auth.user.id)
        if user.mfa_enabled or not user.mfa_secret:
            raise InvalidRequest("start with POST /auth/mfa/enroll", code="mfa_not_enrolling")
        if not await mfa.verify_once(self._state, user.id, user.mfa_secret, code):
            raise InvalidRequest("invalid code", param="code", code="invalid_mfa_code")
        codes = mfa.new_recovery_codes()
        async with self._db.write() as conn:
            await conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user.id))
            await conn.execute(
                recovery_codes.insert(),
                [{"user_id": user.id, "code_hash": mfa.hash_code(c)} for c in codes],
            )
        await self.users.set_fields(user.id, mfa_enabled=True)
        self._user_cache.pop(user.id, None)
        return codes

    async def mfa_disable(self, auth: Authenticated, code: str) -> None:
        user = await self.users.get(auth.user.id)
        if not user.mfa_enabled or not user.mfa_secret:
            raise InvalidRequest("MFA is not enabled", code="mfa_not_enabled")
        if not await mfa.verify_once(self._state, user.id, user.mfa_secret, code):
            raise InvalidRequest("invalid code", param="code", code="invalid_mfa_code")
        async with self._db.write() as conn:
            await conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user.id))
        await self.users.set_fields(user.id, mfa_enabled=False, mfa_secret=None)
        self._user_cache.pop(user.id, None)

    async def mfa_reset(self, user_id: str) -> bool:
        """An admin's reset for a user locked out of their authenticator: TOTP and its
        recovery codes are dropped and every session ends, so the next sign-in is by
        password alone (and the user may enrol again). Passkeys stay: they are sign-in
        credentials of their own, removed by the user or with the account. Returns whether
        TOTP was on."""
        user = await self.users.get(user_id)
        async with self._db.write() as conn:
            await conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
        await self.users.set_fields(user_id, mfa_enabled=False, mfa_secret=None)
        self.forget_user(user_id)
        await self.logout_all(user_id)
        return user.mfa_enabled

    async def _use_recovery_code(self, user_id: str, code: str) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(
                update(recovery_codes)
                .where(
                    recovery_codes.c.user_id == user_id,
                    recovery_codes.c.code_hash == mfa.hash_code(code),
                    recovery_codes.c.used_ms.is_(None),
                )
                .values(used_ms=now_ms())
            )
        return bool(result.rowcount)
