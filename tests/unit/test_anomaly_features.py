"""A usage window's features: relative to its subject's own habits, and damped when the
window holds too few requests to say anything."""

from __future__ import annotations

from typing import Any

import pytest

from parley.identity.anomaly import FEATURES, Profile, measures, profiles, vector

HOUR_MS = 3_600_000


def _row(requests: int, **kw: Any) -> dict[str, Any]:
    return {
        "subject": "k",
        "requests": requests,
        "tokens": requests * 300,
        "cost_nusd": requests * 1_000_000,
        "models": 1,
        "errors": 0,
        "active_minutes": min(60, requests // 2),
        "prompt_mean": 200.0,
        "prompt_square": 200.0**2 + 100.0**2,
        "addresses": 2,
        **kw,
    }


def _feature(values: list[float], name: str) -> float:
    return values[FEATURES.index(name)]


def test_a_window_like_its_subjects_usual_ones_has_no_relative_deviation() -> None:
    history = [{**_row(40), "bucket": b} for b in range(48)]
    (profile,) = profiles(history, 60).values()
    values = vector(_row(40), profile, 60, 25 * HOUR_MS)
    for name in FEATURES:
        if name.startswith("relative_"):
            assert _feature(values, name) == pytest.approx(0.0), name
    assert _feature(values, "unusual_hour") == 0.0  # every hour is usual for it
    assert _feature(values, "log_requests") > 0  # absolute features stay


def test_a_quiet_key_turned_loud_from_new_addresses_deviates() -> None:
    history = [{**_row(10), "bucket": b} for b in range(48)]
    (profile,) = profiles(history, 60).values()
    values = vector(_row(400, addresses=30, models=2), profile, 60, 25 * HOUR_MS)
    assert _feature(values, "relative_rate") > 3
    assert _feature(values, "relative_addresses") > 2
    assert _feature(values, "relative_models") > 0.9


def test_a_few_requests_say_little_so_their_deviations_are_damped() -> None:
    profile = Profile(medians=measures(_row(10), 60))
    few = vector(_row(2, addresses=12), profile, 60, 0)
    many = vector(_row(200, addresses=12), profile, 60, 0)
    assert _feature(few, "relative_addresses") < _feature(many, "relative_addresses") / 5


def test_an_hour_the_subject_never_used_is_unusual_and_a_new_subject_is_not() -> None:
    history = [{**_row(40), "bucket": b} for b in range(48) if b % 24 < 12]
    (profile,) = profiles(history, 60).values()
    assert _feature(vector(_row(40), profile, 60, 20 * HOUR_MS), "unusual_hour") < -1
    assert _feature(vector(_row(40), profile, 60, 5 * HOUR_MS), "unusual_hour") == 0.0
    assert _feature(vector(_row(40), None, 60, 20 * HOUR_MS), "unusual_hour") == 0.0
