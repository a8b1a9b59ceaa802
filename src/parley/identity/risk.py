"""Scoring a password login from offline signals (docs/security.md "Risk-based step-up").

Pure functions of the account's history (``Profile``), what this login looks like
(``Attempt``) and the policy: no I/O, no clock of its own, so tests feed crafted places and
times. Each signal is a value in [0, 1]; the score is their weighted sum, capped at 1, and
the bands turn it into a decision: below ``step_up_at`` allow, below ``deny_at`` ask for a
second factor, else refuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from parley.identity.geo import Place, distance_km

Band = Literal["allow", "step_up", "deny"]
SIGNALS = ("new_device", "new_network", "impossible_travel", "unusual_hour", "recent_failures")
HOUR_HISTORY = 8
"""Sign-ins an account needs before an hour of day can be unusual for it."""
UNUSUAL_SHARE = 0.05
"""An hour is unusual when fewer than this share of past sign-ins fell within an hour of it."""


@dataclass(frozen=True, slots=True)
class RiskPolicy:
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "new_device": 0.25,
            "new_network": 0.25,
            "impossible_travel": 0.8,
            "unusual_hour": 0.15,
            "recent_failures": 0.3,
        }
    )
    step_up_at: float = 0.3
    deny_at: float = 0.7
    travel_max_kmh: float = 1000.0
    max_failures: int = 5

    def band(self, score: float) -> Band:
        if score >= self.deny_at:
            return "deny"
        return "step_up" if score >= self.step_up_at else "allow"


@dataclass(frozen=True, slots=True)
class Profile:
    """What earlier completed sign-ins taught about an account (``login_profiles``)."""

    logins: int = 0
    last_ms: int | None = None
    last_country: str | None = None
    last_lat: float | None = None
    last_lon: float | None = None
    networks: tuple[str, ...] = ()
    """``country/ASN name`` of recent sign-ins, newest last."""
    hours: tuple[int, ...] = (0,) * 24
    """Sign-ins per UTC hour of day."""


@dataclass(frozen=True, slots=True)
class Attempt:
    place: Place
    at_ms: int
    known_device: bool
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Assessment:
    score: float
    band: Band
    signals: dict[str, float]
    facts: dict[str, object]
    """What the signals were computed from, for the audit log."""


def network_key(place: Place) -> str | None:
    return f"{place.country}/{place.network or '?'}" if place.known else None


def hour_of(at_ms: int) -> int:
    return (at_ms // 3_600_000) % 24


def assess(profile: Profile, attempt: Attempt, policy: RiskPolicy) -> Assessment:
    place = attempt.place
    facts: dict[str, object] = {
        "country": place.country,
        "network": place.network,
        "private_address": place.private,
        "known_device": attempt.known_device,
        "hour_utc": hour_of(attempt.at_ms),
        "failures": attempt.failures,
        "history": profile.logins,
    }
    signals = {
        "new_device": 0.0 if attempt.known_device else 1.0,
        "new_network": _new_network(profile, place),
        "impossible_travel": _travel(profile, attempt, policy, facts),
        "unusual_hour": _unusual_hour(profile, attempt.at_ms),
        "recent_failures": min(1.0, attempt.failures / max(1, policy.max_failures)),
    }
    total = sum(policy.weights.get(name, 0.0) * value for name, value in signals.items())
    score = round(min(1.0, total), 4)
    return Assessment(score, policy.band(score), signals, facts)


def _new_network(profile: Profile, place: Place) -> float:
    """1 for a country the account never signed in from, 0.5 for a new network in a known
    one. Nothing to compare with (no history yet, or an address with no country: a
    private network, loopback, or one the database does not list) is 0: such addresses
    are where an unconfigured proxy puts everyone, so they prove nothing either way."""
    key = network_key(place)
    if key is None or not profile.networks:
        return 0.0
    if key in profile.networks:
        return 0.0
    countries = {n.partition("/")[0] for n in profile.networks}
    return 0.5 if place.country in countries else 1.0


def _travel(
    profile: Profile, attempt: Attempt, policy: RiskPolicy, facts: dict[str, object]
) -> float:
    """1 when getting from the last sign-in's country to this one's would need more than
    ``travel_max_kmh``; same country, unknown places or no previous sign-in: 0."""
    place = attempt.place
    if (
        profile.last_ms is None
        or profile.last_lat is None
        or profile.last_lon is None
        or place.lat is None
        or place.lon is None
        or place.country == profile.last_country
    ):
        return 0.0
    km = distance_km(profile.last_lat, profile.last_lon, place.lat, place.lon)
    hours = max(attempt.at_ms - profile.last_ms, 60_000) / 3_600_000  # at least a minute
    speed = km / hours
    facts["travel_km"] = round(km)
    facts["travel_kmh"] = round(speed)
    facts["last_country"] = profile.last_country
    return 1.0 if speed > policy.travel_max_kmh else 0.0


def _unusual_hour(profile: Profile, at_ms: int) -> float:
    total = sum(profile.hours)
    if total < HOUR_HISTORY:
        return 0.0
    hour = hour_of(at_ms)
    near = sum(profile.hours[(hour + d) % 24] for d in (-1, 0, 1))
    return 1.0 if near / total < UNUSUAL_SHARE else 0.0


def learn(profile: Profile, attempt: Attempt, keep_networks: int = 32) -> Profile:
    """The profile after this sign-in completed (allowed, or stepped up and verified)."""
    place = attempt.place
    networks = list(profile.networks)
    key = network_key(place)
    if key is not None:
        if key in networks:
            networks.remove(key)
        networks.append(key)
    hours = list(profile.hours)
    if sum(hours) >= 1000:  # old habits fade: halve the counts now and then
        hours = [h // 2 for h in hours]
    hours[hour_of(attempt.at_ms)] += 1
    located = place.lat is not None
    return Profile(
        logins=profile.logins + 1,
        last_ms=attempt.at_ms if located else profile.last_ms,
        last_country=place.country if located else profile.last_country,
        last_lat=place.lat if located else profile.last_lat,
        last_lon=place.lon if located else profile.last_lon,
        networks=tuple(networks[-keep_networks:]),
        hours=tuple(hours),
    )
