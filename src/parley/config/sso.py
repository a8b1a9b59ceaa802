"""Single sign-on in the config file: the ``sso`` section, parsed and resolved.

```yaml
sso:
  only: false                # true: passwords are off (login, registration, reset)
  providers:
    - name: corp             # the URL slug: /auth/oidc/corp/login
      display_name: Acme ID  # the login page's "Sign in with Acme ID"
      issuer: https://id.example.com
      client_id: parley
      client_secret: os.environ/PARLEY_OIDC_SECRET
      scopes: [openid, email, profile]
      allowed_email_domains: [example.com]
      mappings:
        - {claim: groups, value: parley-admins, team: Engineering, role: admin}
      # proxy: unset, the environment's HTTPS_PROXY/HTTP_PROXY/NO_PROXY decide per request
      # proxy: direct            # ignore them
      # proxy: {url: http://proxy.internal:3128, username: parley,
      #         password: os.environ/SSO_PROXY_PASSWORD}
```

The secrets are references, as every secret in the file; nothing here does I/O (discovery
runs on first use, in ``identity/oidc.py``). ``proxy:`` has the form and meaning of a
deployment's (``config/egress.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from parley.config.egress import Egress, ProxyConfig
from parley.config.secrets import Secret, reference_name

TeamRole = Literal["owner", "admin", "member", "viewer"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClaimMapping(_Strict):
    """A user whose ID token's ``claim`` equals ``value`` (or, for a list claim such as
    ``groups``, contains it) joins ``team`` (by name; made if missing) with ``role``."""

    claim: str = Field(min_length=1, max_length=100)
    value: str = Field(min_length=1, max_length=200)
    team: str = Field(min_length=1, max_length=200)
    role: TeamRole = "member"


class OidcProviderConfig(_Strict):
    name: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    display_name: str | None = Field(default=None, max_length=100)
    issuer: str = Field(min_length=1)
    """The issuer URL; its ``/.well-known/openid-configuration`` is read on first use."""
    client_id: str = Field(min_length=1)
    client_secret: str | None = None
    """A reference, ``os.environ/NAME``. Unset: a public client (PKCE alone)."""
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post", "none"] = (
        "client_secret_basic"  # noqa: S105 - a method's name, not a secret
    )
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    allowed_email_domains: list[str] = Field(default_factory=list)
    """Empty: any domain. Otherwise the email's domain must be one of these (exactly)."""
    mappings: list[ClaimMapping] = Field(default_factory=list)
    create_users: bool = True
    """Just-in-time accounts for people who have none yet; false: only existing accounts
    (linked by verified email) may sign in this way."""
    post_logout_redirect_uri: str | None = None
    """Where the provider sends the browser after logout; default ``<public url>/login``."""
    timeout_seconds: float = Field(default=10.0, gt=0)
    """Bounds each phase of a request to the provider (writing, reading, waiting for a
    pooled connection; connecting, at most five seconds of it)."""
    proxy: str | ProxyConfig | None = None
    """The forward proxy for discovery, keys and the code exchange (a URL, or the object
    form with its password a reference); ``direct`` ignores ``HTTPS_PROXY``/``HTTP_PROXY``.
    Unset: the environment decides, request by request (``NO_PROXY`` included)."""

    @field_validator("issuer")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("an issuer has no query or fragment")
        return value.rstrip("/")

    @field_validator("client_secret")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is not None:
            reference_name(value)
        return value

    @field_validator("scopes")
    @classmethod
    def _openid(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("must include openid")
        return value

    @field_validator("allowed_email_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        return [d.strip().lower().lstrip("@") for d in value if d.strip()]

    @model_validator(mode="after")
    def _secret_or_public(self) -> OidcProviderConfig:
        public = self.token_endpoint_auth_method == "none"  # noqa: S105 - a method's name
        if not public and self.client_secret is None:
            raise ValueError("client_secret is required unless token_endpoint_auth_method: none")
        return self


class SsoConfig(_Strict):
    only: bool = False
    """SSO only: password sign-in, registration and password reset are refused."""
    providers: list[OidcProviderConfig] = Field(default_factory=list)
    flow_seconds: int = Field(default=600, ge=30, le=3600)
    """How long a started sign-in may take at the provider."""

    @model_validator(mode="after")
    def _unique(self) -> SsoConfig:
        names = [p.name for p in self.providers]
        if len(set(names)) != len(names):
            raise ValueError("a provider name appears twice")
        if self.only and not self.providers:
            raise ValueError("only: true needs at least one provider")
        return self


@dataclass(frozen=True, slots=True)
class OidcProvider:
    """A provider with its secret resolved; the repr shows no secret."""

    config: OidcProviderConfig
    client_secret: Secret | None
    egress: Egress = field(default_factory=Egress)
    """Which proxy each request to the provider goes through (``config/egress.py``)."""

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def label(self) -> str:
        return self.config.display_name or self.config.name


@dataclass(frozen=True, slots=True)
class SsoSettings:
    """The ``sso`` section with its secrets resolved (``config/loader.py``)."""

    only: bool = False
    providers: tuple[OidcProvider, ...] = ()
    flow_seconds: int = 600

    @property
    def by_name(self) -> Mapping[str, OidcProvider]:
        return {p.name: p for p in self.providers}

    def secrets(self) -> list[str]:
        """The client secrets and proxy credentials, for log and error redaction."""
        values = [p.client_secret.reveal() for p in self.providers if p.client_secret]
        return values + [a.reveal() for p in self.providers for a in p.egress.authorizations()]
