"""Synthetic usage history with injected anomalies, for ``bench/anomaly.py`` and the
anomaly detection tests.

Keys follow one of four habits: office hours in their own time zone (bursty sessions,
weekdays), a service busy around the clock (requests spread over every minute, varied
prompts), a nightly batch job (hundreds of same-shaped prompts at one hour: regular, but
its own routine), and light occasional use. Some keys also have a legitimately busy last
day. On the last day, anomalies are injected into chosen keys' hours:

- ``leaked``: the key hammers expensive models from many new addresses, often off-hours;
- ``scraping``: a steady request every minute, one prompt shape, from one new address.

Every request is a row in ``USAGE_COLUMNS`` order; ``labels`` names the (key, window end)
pairs holding an injection.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from parley.gateway.accounting.usage import USAGE_COLUMNS, UsageRecord

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
PRICES = {  # nano-dollars per token: input, output
    "chat-mini": (150, 600),
    "chat-haiku": (800, 4000),
    "chat-large": (2500, 10000),
    "chat-opus": (15000, 75000),
}
USUAL = ("chat-mini", "chat-haiku")
EXPENSIVE = ("chat-large", "chat-opus")


@dataclass(slots=True)
class Traffic:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    labels: set[tuple[str, int]] = field(default_factory=set)
    """(key id, window end ms) of each hour with an injected anomaly."""
    kinds: dict[tuple[str, int], str] = field(default_factory=dict)
    test_ends: list[int] = field(default_factory=list)
    """The last day's hourly window ends: what is scored."""


@dataclass(slots=True)
class _Key:
    id: str
    habit: str
    rate: float
    tz: int
    hour: int
    models: tuple[str, ...]
    addresses: tuple[str, ...]
    prompt_log: float
    prompt_sigma: float
    busy_last_day: bool


def generate(
    seed: int, *, keys: int = 100, days: int = 8, end_ms: int, anomalies: int = 16
) -> Traffic:
    """``days`` of history ending at ``end_ms`` (aligned to an hour); the last day holds
    ``anomalies`` injected windows, half of each kind."""
    rng = random.Random(seed)
    traffic = Traffic()
    start = end_ms - days * DAY_MS
    population = [_key(rng, n) for n in range(keys)]
    seq = 0

    def emit(key: _Key, at: int, model: str, tokens: tuple[int, int], ip: str) -> None:
        nonlocal seq
        seq += 1
        prompt, completion = tokens
        status = 200 if rng.random() > 0.015 else rng.choice((429, 500))
        inp, out = PRICES[model]
        record = UsageRecord(
            request_id=f"s{seed}-{seq}",
            time_ms=at,
            model_group=model,
            status=status,
            key_id=key.id,
            prompt_tokens=prompt,
            completion_tokens=completion if status == 200 else 0,
            cost_nusd=prompt * inp + (completion * out if status == 200 else 0),
            latency_ms=400,
            client_ip=ip,
        )
        traffic.rows.append(tuple(getattr(record, c) for c in USAGE_COLUMNS))

    last_day = end_ms - DAY_MS
    for hour_start in range(start, end_ms, HOUR_MS):
        for key in population:
            boost = 2.5 if key.busy_last_day and hour_start >= last_day else 1.0
            for at in _normal_times(rng, key, hour_start, boost):
                prompt = max(5, int(rng.lognormvariate(key.prompt_log, key.prompt_sigma)))
                completion = max(1, int(rng.lognormvariate(5.0, 0.7)))
                emit(
                    key, at, rng.choice(key.models), (prompt, completion), rng.choice(key.addresses)
                )
    traffic.test_ends = list(range(last_day + HOUR_MS, end_ms + 1, HOUR_MS))
    chosen = rng.sample([k for k in population if k.habit != "light"], anomalies)
    for n, key in enumerate(chosen):
        kind = "leaked" if n % 2 == 0 else "scraping"
        hour_start = last_day + rng.randrange(24) * HOUR_MS
        if kind == "leaked":
            _leak(rng, key, hour_start, emit)
        else:
            _scrape(rng, key, hour_start, emit)
        traffic.labels.add((key.id, hour_start + HOUR_MS))
        traffic.kinds[(key.id, hour_start + HOUR_MS)] = kind
    return traffic


def _key(rng: random.Random, n: int) -> _Key:
    habit = rng.choices(("office", "service", "batch", "light"), (0.45, 0.2, 0.1, 0.25))[0]
    rate = {
        "office": rng.uniform(5, 40),
        "service": rng.uniform(20, 90),
        "batch": rng.uniform(100, 300),
        "light": rng.uniform(0.5, 3),
    }[habit]
    addresses = tuple(f"10.{n % 250}.{i}.{rng.randrange(1, 250)}" for i in range(rng.randint(1, 3)))
    return _Key(
        id=f"key{n:04d}",
        habit=habit,
        rate=rate,
        tz=rng.randint(-8, 9),
        hour=rng.randrange(24),
        models=tuple(rng.sample(USUAL, rng.randint(1, 2))),
        addresses=addresses,
        prompt_log=rng.uniform(4.0, 7.0),
        prompt_sigma=0.06 if habit == "batch" else rng.uniform(0.5, 1.0),
        busy_last_day=habit in ("office", "service") and rng.random() < 0.15,
    )


def _normal_times(rng: random.Random, key: _Key, hour_start: int, boost: float) -> list[int]:
    hour = (hour_start // HOUR_MS) % 24
    weekday = (hour_start // DAY_MS + 3) % 7 < 5  # 1970-01-01 was a Thursday
    if key.habit == "office":
        local = (hour + key.tz) % 24
        if not (weekday and 9 <= local < 18):
            return []
        count = _poisson(rng, key.rate * boost)
        sessions = [rng.randrange(60) for _ in range(rng.randint(1, 3))]
        return [
            hour_start
            + min(59, max(0, rng.choice(sessions) + rng.randint(-4, 4))) * 60_000
            + rng.randrange(60_000)
            for _ in range(count)
        ]
    if key.habit == "service":
        daily = 0.6 + 0.4 * math.sin((hour + key.tz) / 24 * 2 * math.pi)
        count = _poisson(rng, key.rate * daily * boost)
        return [hour_start + rng.randrange(HOUR_MS) for _ in range(count)]
    if key.habit == "batch":
        if hour != key.hour:
            return []
        count = _poisson(rng, key.rate)
        return [hour_start + int(i * HOUR_MS / max(1, count)) for i in range(count)]
    if rng.random() < 0.12:  # light
        return [hour_start + rng.randrange(HOUR_MS) for _ in range(_poisson(rng, key.rate))]
    return []


def _leak(rng: random.Random, key: _Key, hour_start: int, emit: Any) -> None:
    count = int(max(150, key.rate * rng.uniform(8, 20)))
    addresses = [
        f"203.0.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(rng.randint(8, 40))
    ]
    models = rng.sample(EXPENSIVE, rng.randint(1, 2))
    for _ in range(count):
        prompt = max(5, int(rng.lognormvariate(7.5, 0.5)))
        emit(
            key,
            hour_start + rng.randrange(HOUR_MS),
            rng.choice(models),
            (prompt, max(1, int(rng.lognormvariate(6.5, 0.4)))),
            rng.choice(addresses),
        )


def _scrape(rng: random.Random, key: _Key, hour_start: int, emit: Any) -> None:
    per_minute = max(2, int(key.rate * rng.uniform(3, 6) / 60))
    prompt = int(math.exp(key.prompt_log))
    address = f"198.51.100.{rng.randrange(1, 255)}"
    for minute in range(60):
        for i in range(per_minute):
            at = hour_start + minute * 60_000 + i * (60_000 // per_minute)
            emit(key, at, key.models[0], (prompt + rng.randint(-3, 3), 60), address)


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method for small means, a normal approximation past 30."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
