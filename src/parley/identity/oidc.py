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

The HTTP: every request goes through the provider's one long-lived client
(``identity/oidc_http.py``: pooled connections, Parley's egress proxy rules), made on first
use and closed with the app. Authlib supplies the protocol's pieces (the authorization
URL, the token request's body, client authentication) but not its per-call clients, which
would each open their own connections and hold a user's token between calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import httpx
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidClaimError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet, KeySetSerialization
from joserfc.jws import JWSRegistry

from parley.config.sso import OidcProvider
from parley.errors import AuthenticationFailed, ServiceUnavailable
from parley.identity.oidc_http import provider_client

_ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
_LEEWAY_S = 60
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True, slots=True)
class Started:
    url: str
    state: str
    nonce: str
    code_verifier: str


class OidcClient:
    """One provider: its cached metadata and keys, and its one HTTP client."""

    def __init__(
        self, provider: OidcProvider, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        config = provider.config
        self.provider = provider
        self.client_id = config.client_id
        secret = provider.client_secret.reveal() if provider.client_secret else None
        self._auth = ClientAuth(config.client_id, secret, config.token_endpoint_auth_method)
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._metadata: dict[str, Any] | None = None
        self._jwks: KeySetSerialization | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """The provider's client, made on first use (no I/O at start-up)."""
        if self._http is None:
            config = self.provider.config
            self._http = provider_client(
                self.provider.egress, config.timeout_seconds, transport=self._transport
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @contextlib.contextmanager
    def _reaching(self, what: str) -> Iterator[None]:
        """httpx's failures as the sign-in's 503, the proxy's named apart (the message
        carries httpx's status line at most, never a URL with credentials)."""
        label = self.provider.label
        try:
            yield
        except httpx.ProxyError as exc:
            raise ServiceUnavailable(
                f"the sign-in provider {label!r} cannot be reached: the egress proxy refused "
                f"the request ({str(exc)[:100]}); check the proxy settings",
                code="sso_unavailable",
            ) from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise ServiceUnavailable(
                f"the sign-in provider {label!r} cannot be reached ({what}); retry shortly",
                code="sso_unavailable",
            ) from exc

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        with self._reaching(what):
            response = await self.http.get(url)
            response.raise_for_status()
            found = response.json()
            if not isinstance(found, dict):
                raise ValueError("not a JSON object")
        return found

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is not None:
            return self._metadata
        url = f"{self.provider.config.issuer}/.well-known/openid-configuration"
        found = await self._get_json(url, "discovery")
        if str(found.get("issuer", "")).rstrip("/") != self.provider.config.issuer:
            raise ServiceUnavailable(
                f"the sign-in provider {self.provider.label!r} announces another issuer",
                code="sso_misconfigured",
            )
        self._metadata = found
        return found

    def _endpoint(self, metadata: dict[str, Any], key: str) -> str:
        value = metadata.get(key)
        if not isinstance(value, str) or not value:
            raise ServiceUnavailable(
                f"the sign-in provider {self.provider.label!r} announces no {key}",
                code="sso_misconfigured",
            )
        return value

    async def _keys(self, *, force: bool = False) -> KeySetSerialization:
        """The provider's JWKS (a JSON object; joserfc checks its keys on import)."""
        if self._jwks is None or force:
            uri = self._endpoint(await self.metadata(), "jwks_uri")
            self._jwks = cast("KeySetSerialization", await self._get_json(uri, "keys"))
        return self._jwks

    async def begin(self, redirect_uri: str) -> Started:
        endpoint = self._endpoint(await self.metadata(), "authorization_endpoint")
        nonce, state, verifier = generate_token(32), generate_token(30), generate_token(64)
        url = prepare_grant_uri(
            endpoint,
            client_id=self.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=" ".join(self.provider.config.scopes),
            state=state,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
            nonce=nonce,
        )
        return Started(url, state, nonce, verifier)

    async def finish(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the verified ID token's claims, the token response), or 401 naming what failed:
        ``sso_exchange`` (the provider refused the code), ``sso_nonce``, ``sso_id_token``."""
        metadata = await self.metadata()
        endpoint = self._endpoint(metadata, "token_endpoint")
        body = prepare_token_request(
            "authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
        )
        # client authentication (Basic, in the body, or the client id alone) as Authlib does it
        url, headers, body = self._auth.prepare("POST", endpoint, dict(_FORM), body)
        with self._reaching("token endpoint"):
            response = await self.http.post(url, content=body, headers=headers)
        token = _token(response)
        raw = token.get("id_token")
        if not isinstance(raw, str):
            raise AuthenticationFailed("the provider sent no ID token", code="sso_id_token")
        claims = await self._id_token(raw, token, metadata, nonce)
        return claims, token

    async def _id_token(
        self, raw: str, token: dict[str, Any], metadata: dict[str, Any], nonce: str
    ) -> dict[str, Any]:
        announced = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in announced if a in _ASYMMETRIC]
        registry = JWSRegistry(algorithms=algorithms or ["RS256"])
        jwks = await self._keys()
        try:
            try:
                decoded = jwt.decode(raw, KeySet.import_key_set(jwks), registry=registry)
            except InvalidKeyIdError:  # the provider rotated its keys since we fetched them
                keys = KeySet.import_key_set(await self._keys(force=True))
                decoded = jwt.decode(raw, keys, registry=registry)
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {
                    "iss": {"essential": True, "values": [metadata["issuer"]]},
                    "aud": {"essential": True, "values": [self.client_id]},
                },
                {
                    "nonce": nonce,
                    "client_id": self.client_id,
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
        return dict(claims)

    async def logout_url(self, post_logout_redirect_uri: str) -> str | None:
        """RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the provider's
        ``end_session_endpoint`` with our client id and where to come back; None when the
        provider has no such endpoint."""
        endpoint = (await self.metadata()).get("end_session_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            return None
        params = [
            ("post_logout_redirect_uri", post_logout_redirect_uri),
            ("state", generate_token(20)),
            ("client_id", self.client_id),
        ]
        url: str = add_params_to_uri(endpoint, params)
        return url


def _token(response: httpx.Response) -> dict[str, Any]:
    """The token endpoint's answer as a dict, or why not: the provider's OAuth ``error``
    (401 ``sso_exchange``), its own failure (503), or anything else it refused with."""
    try:
        found = response.json()
    except ValueError:
        found = None
    if isinstance(found, dict) and "error" in found:
        raise AuthenticationFailed(
            f"the provider refused the sign-in: {str(found['error'])[:100]}", code="sso_exchange"
        )
    if response.status_code >= 500:
        raise ServiceUnavailable(
            f"the sign-in provider's token endpoint failed ({response.status_code}); retry shortly",
            code="sso_unavailable",
        )
    if not response.is_success or not isinstance(found, dict):
        raise AuthenticationFailed(
            f"the provider refused the sign-in ({response.status_code}, no token)",
            code="sso_exchange",
        )
    return found
