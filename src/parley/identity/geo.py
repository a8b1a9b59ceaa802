"""Where a client address is, at country level, from offline data shipped on PyPI.

``geoip2fast`` (MaxMind GeoLite2-derived, IPv4 and IPv6, with ASN names) says the country
and the network; ``countryinfo`` says where the country's capital is, which stands in for
the client's position when measuring travel. Both are read from the installed wheels:
nothing is fetched at run time. The position is the capital's, so two places in one large
country are 0 km apart and a border crossing can look like a long trip (docs/security.md).

The database costs about 0.4 s and 120 MiB to load, so it is loaded once, on the first
lookup, in a worker thread (the event loop keeps serving meanwhile).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
from dataclasses import dataclass
from typing import Any

_EARTH_KM = 6371.0088


@dataclass(frozen=True, slots=True)
class Place:
    """What is known of an address: ``country`` (ISO alpha-2) and ``network`` (the ASN's
    name) are None for private, loopback and unlisted addresses; ``lat``/``lon`` are the
    country's capital."""

    country: str | None = None
    network: str | None = None
    lat: float | None = None
    lon: float | None = None
    private: bool = False

    @property
    def known(self) -> bool:
        return self.country is not None


UNKNOWN = Place()


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


class Locator:
    """Country, network and capital coordinates of an address; loaded on first use."""

    def __init__(self) -> None:
        self._db: Any = None
        self._capitals: dict[str, tuple[float, float]] = {}
        self._loading: asyncio.Lock | None = None

    @property
    def loaded(self) -> bool:
        return self._db is not None

    async def load(self) -> None:
        if self._db is not None:
            return
        if self._loading is None:
            self._loading = asyncio.Lock()
        async with self._loading:
            if self._db is None:
                self._db, self._capitals = await asyncio.to_thread(_load)

    async def locate(self, ip: str | None) -> Place:
        if not ip:
            return UNKNOWN
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return UNKNOWN
        if not address.is_global:  # loopback, private, link-local, documentation ranges
            return Place(private=True)
        await self.load()
        return self.place(str(address))

    def place(self, ip: str) -> Place:
        found = self._db.lookup(ip)
        country = found.country_code if len(found.country_code or "") == 2 else None
        if country is None or found.is_private:
            return Place(private=bool(found.is_private))
        lat, lon = self._capitals.get(country, (None, None))
        return Place(country=country, network=found.asn_name or None, lat=lat, lon=lon)


def _load() -> tuple[Any, dict[str, tuple[float, float]]]:
    from countryinfo import CountryInfo  # noqa: PLC0415 - loaded with the database only
    from geoip2fast import GeoIP2Fast  # type: ignore[import-untyped]  # noqa: PLC0415 - untyped; 120 MiB, loaded only when risk is on

    db = GeoIP2Fast(geoip2fast_data_file="geoip2fast-asn-ipv6.dat.gz", verbose=False)
    capitals: dict[str, tuple[float, float]] = {}
    for info in CountryInfo.all().values():
        code = (info.get("ISO") or {}).get("alpha2")
        where = info.get("capital_latlng") or info.get("latlng") or []
        if code and len(where) == 2:
            capitals[str(code).upper()] = (float(where[0]), float(where[1]))
    return db, capitals
