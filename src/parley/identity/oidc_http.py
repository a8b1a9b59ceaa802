"""The HTTP client an OpenID provider is reached with: one per provider, kept for the
process's life, its requests leaving by Parley's egress rules (``config/egress.py``).

One long-lived client, not one per fetch: discovery, the JWKS and the code exchange of a
sign-in (and of the next ones) share pooled connections instead of paying a TCP and TLS
handshake each. Each request picks its route from the provider's ``Egress`` (the
provider's endpoints may live on different hosts, and ``NO_PROXY`` is matched host by
host): direct, or through a forward proxy (``CONNECT`` for ``https://``, forwarded for
``http://``), one pool per route.

The proxy's credentials travel as a ``Proxy-Authorization`` header and never in a URL,
so no httpx error or log line can carry them. A proxy that refuses them is an
``httpx.ProxyError`` whichever the scheme (httpx raises one for a refused ``CONNECT``;
this module turns a forwarded request's 407 into one), so the sign-in says the proxy is
at fault rather than the provider.
"""

from __future__ import annotations

import httpx

from parley.config.egress import Egress, Proxy

# The provider is asked a handful of things per sign-in; connections idle between
# sign-ins are worth keeping a while (servers close theirs sooner, and httpx then simply
# opens a new one).
_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=5, keepalive_expiry=30)
_CONNECT_CAP_S = 5.0


class EgressTransport(httpx.AsyncBaseTransport):
    """Routes each request direct or through its proxy, by ``Egress.proxy_for``."""

    def __init__(self, egress: Egress, *, limits: httpx.Limits = _LIMITS) -> None:
        self._egress = egress
        self._limits = limits
        self._direct = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
        self._proxied: dict[Proxy, httpx.AsyncHTTPTransport] = {}

    def _through(self, proxy: Proxy) -> httpx.AsyncHTTPTransport:
        transport = self._proxied.get(proxy)
        if transport is None:
            headers = (
                {"Proxy-Authorization": proxy.authorization.reveal()}
                if proxy.authorization is not None
                else None
            )
            transport = self._proxied[proxy] = httpx.AsyncHTTPTransport(
                proxy=httpx.Proxy(f"http://{proxy.address}", headers=headers),
                limits=self._limits,
                trust_env=False,
            )
        return transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            proxy = self._egress.proxy_for(str(request.url))
        except ValueError as exc:  # checked at start-up for the issuer; another host's URL
            raise httpx.ProxyError(str(exc), request=request) from exc
        if proxy is None:
            return await self._direct.handle_async_request(request)
        response = await self._through(proxy).handle_async_request(request)
        if response.status_code == 407 and request.url.scheme == "http":
            # forwarded, so the 407 is the proxy's (a provider has no use for one)
            await response.aclose()
            raise httpx.ProxyError("407 Proxy Authentication Required", request=request)
        return response

    async def aclose(self) -> None:
        for transport in [self._direct, *self._proxied.values()]:
            await transport.aclose()
        self._proxied.clear()


def provider_client(
    egress: Egress, timeout_s: float, *, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The provider's client: ``timeout_s`` for each phase of a request (connecting at most
    five seconds of it), no redirects (metadata and keys are fetched from where the
    provider names them), and nothing read from the environment but through ``egress``
    (``trust_env=False``: no ``.netrc``, no second reading of the proxy variables).
    ``transport`` replaces the routing one in tests."""
    return httpx.AsyncClient(
        transport=transport or EgressTransport(egress),
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, _CONNECT_CAP_S)),
        follow_redirects=False,
        trust_env=False,
        headers={"Accept": "application/json"},
    )
