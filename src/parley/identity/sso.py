"""Single sign-on: a sign-in started here, finished by an OpenID provider, ending in the
same session a password login starts.

The flow's secrets (state, nonce, PKCE verifier) never sit in one instance's memory:
``begin`` seals them into a short-lived token signed with the access-token keys (shared
by every instance through the database), which the API sets as an ``HttpOnly`` cookie;
the callback, on whichever instance it lands, opens it. The cookie binds the callback to
the browser that started it (a login CSRF needs the victim's cookie), and a flag in the
shared state, taken once, makes each state usable once on every instance at once.

Accounts: the provider's ``sub`` is the link. A first sign-in links an existing account
only when the provider asserts the email is verified (``email_verified: true``); an
address the provider has not verified would let whoever registers it at the provider
take over the Parley account. With no account, one is made (``create_users``) with the
teams and roles the claim mappings give. Allowed email domains apply to every sign-in.

Authlib (``identity/oidc.py``) is imported when the first provider is used.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import insert, select, update

from parley.config.sso import OidcProvider, SsoSettings
from parley.errors import AuthenticationFailed, Conflict, InvalidRequest, NotFound
from parley.identity.accounts import Accounts
from parley.identity.keys import now_ms
from parley.identity.sessions import SessionKind
from parley.identity.users import User, normalise_email
from parley.state import keys as state_keys
from parley.store.tables import sso_identities, teams

if TYPE_CHECKING:
    from parley.identity.oidc import OidcClient

FLOW_TYP = "oidc_flow"


@dataclass(frozen=True, slots=True)
class Begun:
    url: str
    """The provider's authorization endpoint, with this sign-in's parameters."""
    flow: str
    """The sealed flow, for the browser's cookie."""


@dataclass(frozen=True, slots=True)
class Finished:
    tokens: dict[str, Any]
    user: User
    next: str
    created: bool
    linked: bool


def safe_next(value: str | None) -> str:
    """A path on this site to land on after sign-in; anything else (another host,
    ``//host``, a scheme) is ``/``: no open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    return "/" if parts.scheme or parts.netloc else value


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class SingleSignOn:
    def __init__(self, settings: SsoSettings, accounts: Accounts) -> None:
        self.settings = settings
        self._accounts = accounts
        self._clients: dict[str, OidcClient] = {}

    @property
    def only(self) -> bool:
        return self.settings.only

    def public(self) -> list[dict[str, str]]:
        return [
            {"name": p.name, "display_name": p.label, "login_url": f"/auth/oidc/{p.name}/login"}
            for p in self.settings.providers
        ]

    def provider(self, name: str) -> OidcProvider:
        found = self.settings.by_name.get(name)
        if found is None:
            raise NotFound(f"no sign-in provider named {name!r}", code="sso_unknown_provider")
        return found

    def client(self, name: str) -> OidcClient:
        provider = self.provider(name)
        client = self._clients.get(name)
        if client is None:
            from parley.identity.oidc import OidcClient  # noqa: PLC0415 - Authlib on first use

            client = self._clients[name] = OidcClient(provider)
        return client

    async def close(self) -> None:
        """Close each provider's HTTP client (its pooled connections), on app shutdown."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    # --- the flow ---------------------------------------------------------------------

    async def begin(self, name: str, *, redirect_uri: str, next_path: str | None) -> Begun:
        started = await self.client(name).begin(redirect_uri)
        seconds = self.settings.flow_seconds
        await self._accounts.state.set_flag(state_keys.sso_flow(_digest(started.state)), seconds)
        flow = await self._accounts.tokens.seal(
            {
                "prv": name,
                "st": started.state,
                "non": started.nonce,
                "cv": started.code_verifier,
                "ru": redirect_uri,
                "nxt": safe_next(next_path),
            },
            typ=FLOW_TYP,
            seconds=seconds,
        )
        return Begun(started.url, flow)

    async def finish(
        self,
        name: str,
        *,
        flow: str | None,
        params: dict[str, str],
        ip: str | None,
        user_agent: str | None,
        kind: SessionKind,
    ) -> Finished:
        """Check the callback against the flow, exchange the code, check the ID token,
        find or make the account, start the session. Every refusal is a 401 whose code
        names the check that failed (the API audits it)."""
        provider = self.provider(name)
        sealed = await self._open_flow(name, flow)
        state = params.get("state") or ""
        if not hmac.compare_digest(state.encode(), str(sealed["st"]).encode()):
            raise AuthenticationFailed(
                "this sign-in's state does not match the one it started with", code="sso_state"
            )
        if not await self._accounts.state.take_flag(state_keys.sso_flow(_digest(state))):
            raise AuthenticationFailed(
                "this sign-in was already finished or has expired; start again", code="sso_state"
            )
        if "error" in params:
            raise AuthenticationFailed(
                f"the provider refused the sign-in: {params['error'][:100]}", code="sso_denied"
            )
        issuer = params.get("iss")  # RFC 9207: the response names who sent it
        if issuer is not None and issuer.rstrip("/") != provider.config.issuer:
            raise AuthenticationFailed("the answer came from another issuer", code="sso_issuer")
        code = params.get("code")
        if not code:
            raise AuthenticationFailed("the provider sent no code", code="sso_exchange")
        claims, _ = await self.client(name).finish(
            code=code,
            redirect_uri=str(sealed["ru"]),
            code_verifier=str(sealed["cv"]),
            nonce=str(sealed["non"]),
        )
        user, created, linked = await self._account(provider, claims)
        tokens = await self._accounts.login_sso(
            user, provider=name, ip=ip, user_agent=user_agent, kind=kind
        )
        return Finished(tokens, user, safe_next(str(sealed.get("nxt") or "/")), created, linked)

    async def _open_flow(self, name: str, flow: str | None) -> dict[str, Any]:
        if not flow:
            raise AuthenticationFailed(
                "no sign-in was started in this browser (or it expired)", code="sso_state"
            )
        try:
            sealed = await self._accounts.tokens.unseal(flow, typ=FLOW_TYP)
        except AuthenticationFailed as exc:
            raise AuthenticationFailed(
                "this sign-in's cookie is invalid or expired; start again", code="sso_state"
            ) from exc
        if sealed.get("prv") != name:
            raise AuthenticationFailed(
                "this sign-in was started with another provider", code="sso_state"
            )
        return sealed

    # --- accounts ---------------------------------------------------------------------

    async def _account(
        self, provider: OidcProvider, claims: dict[str, Any]
    ) -> tuple[User, bool, bool]:
        """(the user, whether the account was just made, whether it was just linked)."""
        config = provider.config
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise AuthenticationFailed("the ID token names no subject", code="sso_id_token")
        raw_email = claims.get("email")
        try:
            email = normalise_email(raw_email) if isinstance(raw_email, str) else ""
        except InvalidRequest:
            email = ""
        if not email:
            raise AuthenticationFailed(
                "the provider sent no email address (ask for the email scope)",
                code="sso_no_email",
            )
        domains = config.allowed_email_domains
        if domains and email.rpartition("@")[2] not in domains:
            raise AuthenticationFailed(
                "this email domain may not sign in here", code="sso_domain_refused"
            )
        verified = claims.get("email_verified") is True
        users = self._accounts.users
        db = self._accounts.db
        now = now_ms()
        async with db.write() as conn:  # a linked identity: note this sign-in, find its user
            linked_id = await conn.scalar(
                update(sso_identities)
                .where(
                    sso_identities.c.provider == config.name,
                    sso_identities.c.subject == subject,
                )
                .values(email=email, last_login_ms=now)
                .returning(sso_identities.c.user_id)
            )
        if linked_id is not None:
            user = await users.get(str(linked_id))
            await self._map(user, provider, claims, created=False)
            return user, False, False
        if not verified:
            raise AuthenticationFailed(
                "the provider has not verified this email address, so it cannot be linked "
                "to an account here",
                code="sso_email_unverified",
            )
        user_or_none = await users.by_email(email)
        created = False
        if user_or_none is None:
            if not config.create_users:
                raise AuthenticationFailed(
                    "no account has this email; ask an admin", code="sso_no_account"
                )
            user_or_none = await self._create(email, claims)
            created = True
        user = user_or_none
        try:
            async with db.write() as conn:
                await conn.execute(
                    insert(sso_identities).values(
                        provider=config.name,
                        subject=subject,
                        user_id=user.id,
                        email=email,
                        created_ms=now,
                        last_login_ms=now,
                    )
                )
        except Conflict:
            pass  # the same first sign-in, finished twice at once: linked either way
        await self._map(user, provider, claims, created=created)
        return user, created, not created

    async def _create(self, email: str, claims: dict[str, Any]) -> User:
        name = next(
            (
                str(claims[k]).strip()[:200]
                for k in ("name", "preferred_username", "given_name")
                if isinstance(claims.get(k), str) and str(claims[k]).strip()
            ),
            email.partition("@")[0],
        )
        # An argon2 hash of a secret nobody knows: password sign-in for this account costs
        # the same time as any other's, and succeeds only after a reset sets a password.
        unusable = await self._accounts.passwords.hash(secrets.token_urlsafe(32))
        try:
            user = await self._accounts.users.create(email=email, name=name, password_hash=unusable)
        except Conflict:  # made meanwhile by another sign-in with this address
            found = await self._accounts.users.by_email(email)
            if found is None:
                raise
            return found
        await self._accounts.users.set_fields(user.id, email_verified_ms=now_ms())
        return await self._accounts.users.get(user.id)

    async def _map(
        self, user: User, provider: OidcProvider, claims: dict[str, Any], *, created: bool
    ) -> None:
        """Join the teams the claim mappings name. A new account gets each mapped role; an
        existing member keeps the role an admin may have changed since (only teams the
        user is not in yet are joined)."""
        current = await self._accounts.users.roles(user.id)
        for mapping in provider.config.mappings:
            value = claims.get(mapping.claim)
            matches = mapping.value in value if isinstance(value, list) else value == mapping.value
            if not matches:
                continue
            team_id = await self._team(mapping.team)
            if team_id in current and not created:
                continue
            await self._accounts.users.set_member(team_id, user.id, mapping.role)
            current[team_id] = mapping.role
        self._accounts.forget_user(user.id)

    async def _team(self, name: str) -> str:
        async with self._accounts.db.read() as conn:
            found = await conn.scalar(select(teams.c.id).where(teams.c.name == name))
        if found is not None:
            return str(found)
        try:
            return str((await self._accounts.users.create_team(name))["id"])
        except Conflict:  # made meanwhile by another sign-in
            async with self._accounts.db.read() as conn:
                return str(await conn.scalar(select(teams.c.id).where(teams.c.name == name)))

    # --- logout -----------------------------------------------------------------------

    async def logout_url(self, name: str, post_logout_redirect_uri: str) -> str | None:
        provider = self.settings.by_name.get(name)
        if provider is None:
            return None
        target = provider.config.post_logout_redirect_uri or post_logout_redirect_uri
        return await self.client(name).logout_url(target)
