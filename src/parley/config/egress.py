"""Which forward proxy, if any, an upstream's requests go through.

A deployment's own ``proxy:`` wins; ``proxy: direct`` bypasses the environment. Otherwise
the conventional variables apply: ``HTTPS_PROXY`` for ``https://`` upstreams, ``HTTP_PROXY``
for ``http://`` ones (lower-case spellings first, as curl and urllib read them), except for
hosts ``NO_PROXY`` names. ``https://`` upstreams are reached through a ``CONNECT`` tunnel (TLS
end to end, the proxy sees only the host name); ``http://`` ones are forwarded, the request
line in absolute form. Credentials come from the proxy URL's user part (the environment's
convention) or, in the model file, from ``password: os.environ/NAME`` (never inline), and are
sent as ``Proxy-Authorization: Basic``.

A client that talks to several hosts (an OpenID provider's discovery, keys and token
endpoints may each live elsewhere) carries an ``Egress``: the same rules, decided per
request URL rather than once for an ``api_base``.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from parley.config.secrets import Secret

DIRECT = "direct"
_VARIABLES = ("http_proxy", "https_proxy", "no_proxy")


class ProxyConfig(BaseModel):
    """A forward proxy in the config file (a deployment's or an SSO provider's
    ``proxy:``), with credentials from the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1)
    """``http://host:port``; no credentials in it (they go below)."""
    username: str | None = None
    password: str | None = None
    """A reference, ``os.environ/NAME``."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """A forward proxy: where to connect, and the ``Proxy-Authorization`` value to send."""

    host: str
    port: int
    authorization: Secret | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_proxy(url: str, username: str | None = None, password: Secret | None = None) -> Proxy:
    """``http://[user:pass@]host[:port]``; ValueError for anything else (a TLS connection
    to the proxy itself is not supported: the tunnel inside is TLS already)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"a proxy must be an http:// URL with a host, not {_shown(url)!r}")
    port = parts.port or 80
    user = username if username is not None else unquote(parts.username or "")
    secret = password
    if secret is None and parts.password is not None:
        secret = Secret(unquote(parts.password))
    authorization = None
    if user or secret is not None:
        pair = f"{user}:{secret.reveal() if secret is not None else ''}"
        authorization = Secret("Basic " + base64.b64encode(pair.encode()).decode("ascii"))
    return Proxy(parts.hostname, port, authorization)


def _shown(url: str) -> str:
    """The URL without its credentials, for error messages."""
    parts = urlsplit(url)
    return url if parts.password is None else url.replace(parts.password, "***")


def environment_proxy(api_base: str, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy the environment names for ``api_base``, or None (none set, or bypassed)."""
    parts = urlsplit(api_base)
    scheme = parts.scheme
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    url = _variable(environ, f"{scheme}_proxy")
    if not url:
        return None
    port = parts.port or (443 if scheme == "https" else 80)
    if bypassed(parts.hostname, port, _variable(environ, "no_proxy")):
        return None
    return parse_proxy(url)


@dataclass(frozen=True, slots=True)
class Egress:
    """How a client reaching more than one host picks its proxy for each request.

    ``environ`` None: every request goes through ``fixed`` (its config's ``proxy:``, which
    wins over ``NO_PROXY`` as a deployment's does), or direct when that is None
    (``proxy: direct``). Otherwise the environment's variables decide per URL, through
    ``environment_proxy``, so ``NO_PROXY`` applies host by host. Only the proxy variables
    are kept, not the whole environment."""

    fixed: Proxy | None = None
    environ: Mapping[str, str] | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Egress:
        kept = {
            name: environ[name]
            for variable in _VARIABLES
            for name in (variable, variable.upper())
            if environ.get(name)
        }
        return cls(None, kept)

    def proxy_for(self, url: str) -> Proxy | None:
        """The proxy for a request to ``url``, or None (direct). ValueError when the
        environment's proxy URL is not usable (the message shows no credentials)."""
        if self.environ is None:
            return self.fixed
        return environment_proxy(url, self.environ)

    def authorizations(self) -> list[Secret]:
        """Every ``Proxy-Authorization`` value this may send, for log redaction."""
        if self.environ is None:
            return (
                []
                if self.fixed is None or self.fixed.authorization is None
                else [self.fixed.authorization]
            )
        found: list[Secret] = []
        for scheme in ("http", "https"):
            url = _variable(self.environ, f"{scheme}_proxy")
            try:
                proxy = parse_proxy(url) if url else None
            except ValueError:
                continue
            if proxy is not None and proxy.authorization is not None:
                found.append(proxy.authorization)
        return found


def _variable(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name) or environ.get(name.upper()) or ""


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` names this host: ``*``; a domain (``example.com`` and
    ``.example.com`` both match it and its subdomains); an address or CIDR block; any of
    them with ``:port`` to match that port only."""
    host = host.lower().strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        domain = entry.lstrip(".")
        if host == domain or host.endswith("." + domain):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [::1]:8080
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None
