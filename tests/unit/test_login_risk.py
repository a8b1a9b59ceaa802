"""Risk scoring of logins with crafted addresses (real geoip2fast data) and crafted times."""

from __future__ import annotations

import asyncio

import pytest

from parley.identity.geo import Locator, Place
from parley.identity.risk import Attempt, Profile, RiskPolicy, assess, learn

PARIS = "90.80.1.1"  # Orange, France
TOKYO = "133.242.0.3"  # SAKURA Internet, Japan
HOUR = 3_600_000
DAY = 24 * HOUR
T0 = 1_780_000_000_000 - (1_780_000_000_000 % DAY) + 9 * HOUR  # 09:00 UTC


@pytest.fixture(scope="module")
def places() -> dict[str, Place]:
    locator = Locator()
    return {
        ip: asyncio.run(locator.locate(ip))
        for ip in (PARIS, TOKYO, "127.0.0.1", "10.1.2.3", "203.0.113.5")
    }


def history(place: Place, *, at_ms: int, logins: int = 10) -> Profile:
    profile = Profile()
    for i in range(logins):
        profile = learn(profile, Attempt(place, at_ms - (logins - i) * DAY, known_device=True))
    return learn(profile, Attempt(place, at_ms, known_device=True))


def test_addresses_locate_to_country_network_and_capital(places: dict[str, Place]) -> None:
    paris, tokyo = places[PARIS], places[TOKYO]
    assert paris.country == "FR"
    assert paris.network
    assert tokyo.country == "JP"
    assert tokyo.lat is not None
    assert paris.lat == pytest.approx(48.86, abs=0.1)
    for private in ("127.0.0.1", "10.1.2.3", "203.0.113.5"):
        assert not places[private].known  # no country: an unknown network, never "new"


def test_known_device_usual_network_and_hour_is_allowed(places: dict[str, Place]) -> None:
    profile = history(places[PARIS], at_ms=T0)
    verdict = assess(profile, Attempt(places[PARIS], T0 + DAY, True), RiskPolicy())
    assert verdict.band == "allow"
    assert verdict.score == 0.0


def test_new_device_and_new_country_steps_up(places: dict[str, Place]) -> None:
    """Tokyo two days after Paris is possible travel, but a new country on a new device."""
    profile = history(places[PARIS], at_ms=T0)
    verdict = assess(profile, Attempt(places[TOKYO], T0 + 2 * DAY, False), RiskPolicy())
    assert verdict.signals["new_device"] == 1.0
    assert verdict.signals["new_network"] == 1.0
    assert verdict.signals["impossible_travel"] == 0.0
    assert verdict.band == "step_up"
    assert verdict.score == pytest.approx(0.5)


def test_impossible_travel_is_denied(places: dict[str, Place]) -> None:
    """Paris to Tokyo (9,700 km) in an hour is faster than any airliner."""
    profile = history(places[PARIS], at_ms=T0)
    verdict = assess(profile, Attempt(places[TOKYO], T0 + HOUR, True), RiskPolicy())
    assert verdict.signals["impossible_travel"] == 1.0
    assert verdict.facts["travel_km"] == pytest.approx(9700, rel=0.05)
    assert verdict.band == "deny"
    # the same trip over a day is possible
    later = assess(profile, Attempt(places[TOKYO], T0 + DAY, True), RiskPolicy())
    assert later.signals["impossible_travel"] == 0.0


def test_unusual_hour_needs_a_history_and_counts_only_outside_it(
    places: dict[str, Place],
) -> None:
    profile = history(places[PARIS], at_ms=T0)  # always at 09:00 UTC
    at_3am = T0 + DAY - 6 * HOUR
    assert (
        assess(profile, Attempt(places[PARIS], at_3am, True), RiskPolicy()).signals["unusual_hour"]
        == 1.0
    )
    at_10am = T0 + DAY + HOUR
    assert (
        assess(profile, Attempt(places[PARIS], at_10am, True), RiskPolicy()).signals["unusual_hour"]
        == 0.0
    )
    young = history(places[PARIS], at_ms=T0, logins=2)
    assert (
        assess(young, Attempt(places[PARIS], at_3am, True), RiskPolicy()).signals["unusual_hour"]
        == 0.0
    )


def test_failures_and_private_addresses(places: dict[str, Place]) -> None:
    profile = history(places[PARIS], at_ms=T0)
    failed = assess(profile, Attempt(places[PARIS], T0 + DAY, True, failures=5), RiskPolicy())
    assert failed.signals["recent_failures"] == 1.0
    assert failed.band == "step_up"
    private = assess(profile, Attempt(places["10.1.2.3"], T0 + HOUR, True), RiskPolicy())
    assert private.signals["new_network"] == 0.0
    assert private.signals["impossible_travel"] == 0.0
    assert private.band == "allow"


def test_weights_and_bands_are_configuration(places: dict[str, Place]) -> None:
    profile = history(places[PARIS], at_ms=T0)
    strict = RiskPolicy(weights={"new_device": 1.0}, step_up_at=0.3, deny_at=0.9)
    verdict = assess(profile, Attempt(places[PARIS], T0 + DAY, False), strict)
    assert verdict.band == "deny"
