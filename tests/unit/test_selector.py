"""Tiered routing decisions and sticky experiment variants."""

from __future__ import annotations

import collections
import datetime as dt
import math

import msgspec
import pytest

from parley.config.models import ExperimentConfig, TieredConfig
from parley.errors import ConfigError
from parley.gateway.accounting import tokens
from parley.gateway.accounting.caller import Caller
from parley.gateway.routing.selector import Selector, heuristic
from parley.observability.metrics import Metrics
from parley.schema.chat import ChatRequest, decode_chat_request

TIERS = {"fast": "g-fast", "balanced": "g-mid", "premium": "g-big"}


def chat(text: str, **extra: object) -> ChatRequest:
    body = {"model": "auto", "messages": [{"role": "user", "content": text}], **extra}
    return decode_chat_request(msgspec.json.encode(body))


@pytest.mark.parametrize(
    ("text", "extra", "tier"),
    [
        ("what's the capital of France?", {}, "fast"),
        ("hi " * 600, {}, "balanced"),
        ("fix this: ```def f(x): return x +```", {}, "balanced"),
        ("explain why the sky is blue", {}, "balanced"),
        ("analyze the trade-offs and design a plan for the migration", {}, "premium"),
        ("compare these: ```SELECT a FROM b```", {}, "premium"),
        ("hi " * 5000, {}, "premium"),
        ("short question", {"max_tokens": 4000}, "premium"),
    ],
)
def test_heuristic(text: str, extra: dict[str, object], tier: str) -> None:
    tokens.encoding()  # the real tokenizer, not the estimate used until it has loaded
    classify = heuristic(balanced_tokens=500, premium_tokens=4000)
    request = chat(text, **extra)
    assert classify(request, tokens.count_prompt(request)) == tier


def selector(**config: object) -> Selector:
    tiered = TieredConfig.model_validate({"name": "auto", "tiers": TIERS, **config})
    return Selector(
        [tiered], [], Metrics(), clock=lambda: dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)
    )


def test_key_tier_caps_the_classification() -> None:
    request = chat("analyze the trade-offs and design a plan")
    plain = selector().select(request, Caller())
    assert plain is not None
    assert plain.tier == "premium"
    capped = selector().select(request, Caller(tier="balanced"))
    assert capped is not None
    assert (capped.group, capped.tier) == ("g-mid", "balanced")
    assert "key capped at balanced" in capped.reason


def test_schedule_window_caps_the_tier_at_peak_hours() -> None:
    peak = {"start": "09:00", "end": "17:00", "days": ["mon"], "max_tier": "fast"}
    request = chat("analyze the trade-offs and design a plan")
    inside = selector(schedule=[peak]).select(request, Caller())  # Monday 12:00 UTC
    assert inside is not None
    assert inside.tier == "fast"
    off_day = selector(schedule=[{**peak, "days": ["sat"]}]).select(request, Caller())
    assert off_day is not None
    assert off_day.tier == "premium"


def test_pluggable_classifier_must_import() -> None:
    with pytest.raises(ConfigError, match="cannot import"):
        selector(classifier="nowhere.module:classify")
    plugged = selector(classifier="tests.unit.test_selector:always_fast")
    result = plugged.select(chat("analyze and design and prove"), Caller())
    assert result is not None
    assert result.tier == "fast"


def always_fast(request: ChatRequest, prompt_tokens: int) -> str:
    return "fast"


def test_experiment_is_sticky_per_user_and_split_by_weight() -> None:
    experiment = ExperimentConfig.model_validate(
        {"name": "ab", "variants": [{"group": "a", "weight": 3}, {"group": "b", "weight": 1}]}
    )
    select = Selector([], [experiment], Metrics())
    request = decode_chat_request(
        msgspec.json.encode({"model": "ab", "messages": [{"role": "user", "content": "x"}]})
    )
    counts: collections.Counter[str] = collections.Counter()
    for user in range(4000):
        first = select.select(request, Caller(key_id=f"key-{user}"))
        again = select.select(request, Caller(key_id=f"key-{user}"))
        assert first is not None
        assert again is not None
        assert first.group == again.group  # sticky
        counts[first.group] += 1
    spread = 4 * math.sqrt(4000 * 0.75 * 0.25)
    assert abs(counts["a"] - 3000) <= spread
