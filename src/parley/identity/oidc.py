"""The OpenID Connect relying party, on Authlib: discovery, the authorization request
(code flow, PKCE S256, state, nonce), the code exchange and the ID token's checks.

Imported only when the config file names a provider (``identity/sso.py`` imports it
lazily): Authlib and httpx stay out of every other process's start-up.

What is checked, and by whom: the provider's metadata comes from
``<issuer>/.well-known/openid-configuration`` and must name the same issuer (OpenID
Discovery §4.3). The ID token's signature is verified by joserfc against the provider's
JWKS (fetched once, fetched again when a token names a key not in it: rotation), with
only the asymmetric algorithms the provider announces (never ``none`` or an HMAC keyed
by the client secret). Authlib's ``CodeIDToken`` then checks ``iss`` (the issuer),
``aud`` (contains the client id), ``azp``, ``exp`` and ``iat`` (one minute of clock
leeway), ``nonce`` (equal to the one sent) and ``at_hash``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.integrations.base_client import BaseApp, FrameworkIntegration
from authlib.integrations.base_client.async_app import AsyncOAuth2Mixin
from authlib.integrations.base_client.async_openid import AsyncOpenIDMixin
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidClaimError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from parley.config.sso import OidcProvider
from parley.errors import AuthenticationFailed, ServiceUnavailable

_ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
_LEEWAY_S = 60


@dataclass(frozen=True, slots=True)
class Started:
    url: str
    state: str
    nonce: str
    code_verifier: str


class _App(AsyncOAuth2Mixin, AsyncOpenIDMixin, BaseApp):  # type: ignore[misc]  # untyped bases
    """Authlib's OAuth 2 + OpenID app without a web framework: Parley keeps the flow's
    state itself (a signed cookie and a shared-state flag, ``identity/sso.py``)."""

    client_cls = AsyncOAuth2Client


class OidcClient:
    def __init__(self, provider: OidcProvider) -> None:
        config = provider.config
        self.provider = provider
        secret = provider.client_secret.reveal() if provider.client_secret else None
        self._app = _App(
            FrameworkIntegration(config.name),
            name=config.name,
            client_id=config.client_id,
            client_secret=secret,
            server_metadata_url=f"{config.issuer}/.well-known/openid-configuration",
            client_kwargs={
                "scope": " ".join(config.scopes),
                "code_challenge_method": "S256",
                "token_endpoint_auth_method": config.token_endpoint_auth_method,
                "timeout": config.timeout_seconds,
                "trust_env": False,
            },
        )

    async def metadata(self) -> dict[str, Any]:
        try:
            found: dict[str, Any] = await self._app.load_server_metadata()
        except (httpx.HTTPError, ValueError) as exc:
            self._app.server_metadata.clear()
            raise ServiceUnavailable(
                f"the sign-in provider {self.provider.label!r} cannot be reached; retry shortly",
                code="sso_unavailable",
            ) from exc
        if found.get("issuer", "").rstrip("/") != self.provider.config.issuer:
            self._app.server_metadata.clear()
            raise ServiceUnavailable(
                f"the sign-in provider {self.provider.label!r} announces another issuer",
                code="sso_misconfigured",
            )
        return found

    async def begin(self, redirect_uri: str) -> Started:
        await self.metadata()
        nonce = generate_token(32)
        created = await self._app.create_authorization_url(
            redirect_uri, nonce=nonce, code_verifier=generate_token(64)
        )
        return Started(created["url"], created["state"], nonce, created["code_verifier"])

    async def finish(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the verified ID token's claims, the token response), or 401 naming what failed:
        ``sso_exchange`` (the provider refused the code), ``sso_nonce``, ``sso_id_token``."""
        metadata = await self.metadata()
        try:
            token = await self._app.fetch_access_token(
                redirect_uri=redirect_uri, code=code, code_verifier=code_verifier
            )
        except AuthlibBaseError as exc:
            raise AuthenticationFailed(
                f"the provider refused the sign-in: {exc.error}", code="sso_exchange"
            ) from exc
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                "the sign-in provider cannot be reached; retry shortly", code="sso_unavailable"
            ) from exc
        raw = token.get("id_token")
        if not isinstance(raw, str):
            raise AuthenticationFailed("the provider sent no ID token", code="sso_id_token")
        claims = await self._id_token(raw, token, metadata, nonce)
        return claims, dict(token)

    async def _id_token(
        self, raw: str, token: dict[str, Any], metadata: dict[str, Any], nonce: str
    ) -> dict[str, Any]:
        announced = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in announced if a in _ASYMMETRIC]
        registry = JWSRegistry(algorithms=algorithms or ["RS256"])
        try:
            try:
                decoded = jwt.decode(
                    raw, KeySet.import_key_set(await self._app.fetch_jwk_set()), registry=registry
                )
            except InvalidKeyIdError:  # the provider rotated its keys since we fetched them
                keys = KeySet.import_key_set(await self._app.fetch_jwk_set(force=True))
                decoded = jwt.decode(raw, keys, registry=registry)
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {
                    "iss": {"essential": True, "values": [metadata["issuer"]]},
                    "aud": {"essential": True, "values": [self._app.client_id]},
                },
                {
                    "nonce": nonce,
                    "client_id": self._app.client_id,
                    "access_token": token.get("access_token"),
                },
            )
            claims.validate(leeway=_LEEWAY_S)
        except InvalidClaimError as exc:
            if exc.claim == "nonce":
                raise AuthenticationFailed(
                    "the ID token's nonce is not the one this sign-in sent", code="sso_nonce"
                ) from exc
            raise AuthenticationFailed(
                f"the ID token was refused: {exc.description}", code="sso_id_token"
            ) from exc
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise AuthenticationFailed(
                "the ID token was refused: its signature or claims do not check out",
                code="sso_id_token",
            ) from exc
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                "the sign-in provider's keys cannot be fetched; retry shortly",
                code="sso_unavailable",
            ) from exc
        return dict(claims)

    async def logout_url(self, post_logout_redirect_uri: str) -> str | None:
        """RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the provider's
        ``end_session_endpoint`` with our client id and where to come back; None when the
        provider has no such endpoint."""
        metadata = await self.metadata()
        if not metadata.get("end_session_endpoint"):
            return None
        made = await self._app.create_logout_url(
            post_logout_redirect_uri=post_logout_redirect_uri, client_id=self._app.client_id
        )
        url: str = made["url"]
        return url
