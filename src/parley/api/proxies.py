"""Which address a request came from when Parley sits behind reverse proxies.

The client address keys the per-address login lockout and rate limits and is recorded in
sessions and the audit log, so a header must not be able to choose it. By default nothing
is trusted and the address is the socket's peer; ``X-Forwarded-For`` is ignored (uvicorn's
own proxy-header rewriting, which believes any loopback peer, is switched off in
``api/server.py`` and ``parley serve``). With ``PARLEY_TRUSTED_PROXIES`` set, a request
whose peer is one of those proxies is attributed to the right-most ``X-Forwarded-For``
entry that is not itself a trusted proxy: each proxy appends the address it saw, so
everything left of that entry was written by the client and proves nothing. Such a peer's
``X-Forwarded-Proto`` also sets the scheme (HSTS is sent over HTTPS only).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An address (``10.0.0.7``) or a CIDR network (``10.0.0.0/8``, ``fd00::/8``)."""
    return ipaddress.ip_network(entry.strip(), strict=False)


class TrustedProxies:
    """The proxies whose forwarding headers are believed; empty trusts nobody."""

    __slots__ = ("_networks",)

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self._networks = tuple(parse_network(entry) for entry in entries)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: Address) -> bool:
        return any(address in network for network in self._networks)

    def apply(self, scope: Scope) -> None:
        """Set ``scope["client"]`` (and ``scope["scheme"]``) from the forwarding headers
        when the peer is a trusted proxy; leave the scope alone otherwise."""
        peer = scope.get("client")
        address = _address(peer[0]) if peer else None
        if address is None or not self.trusts(address):
            return
        hops: list[str] = []
        proto = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                hops.extend(value.decode("latin-1").split(","))
            elif name == b"x-forwarded-proto":
                proto = value.decode("latin-1").rpartition(",")[2].strip().lower()
        client = address
        for hop in reversed(hops):
            forwarded = _address(hop)
            if forwarded is None:
                break  # not an address: written by the client side, so stop at the proxy
            client = forwarded
            if not self.trusts(forwarded):
                break
        scope["client"] = (str(client), 0)
        if proto in ("http", "https"):
            scope["scheme"] = proto


def _address(text: str) -> Address | None:
    """An address from a peer or an ``X-Forwarded-For`` entry (``1.2.3.4``, ``::1``, with
    a port as some proxies write it: ``1.2.3.4:5678``, ``[::1]:80``); IPv4-mapped IPv6
    addresses as IPv4. ``None`` for anything else."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
