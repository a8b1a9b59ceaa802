"""What a call costs, in integer nano-dollars (1e-9 USD), so spend sums never drift.

Prices come from Parley's price catalog (``data/prices.json``: list prices per provider
and model, each row dated and naming its source page), overridden field by field by the
deployment's ``price:`` in the config file. A model found nowhere costs 0; start-up and
``parley prices`` name it.

The formula (docs/costs.md), per request, with every count a part of what the provider
reported::

    uncached input x input + cached reads x cached_read
      + 5-minute cache writes x cache_write_5m + 1-hour cache writes x cache_write_1h
      + (output - reasoning) x output + reasoning x reasoning_output

all at the long-context prices when the prompt exceeds the model's threshold, and times
``batch_factor`` for batch-API calls; rounded once, at the end.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from parley.config.loader import Deployment, ModelGroup
from parley.config.models import LongContextPrice, PriceConfig
from parley.schema.chat import Usage

_NUSD_PER_USD_PER_MTOK = 1000.0  # $1 per 1e6 tokens = 1e9 nUSD / 1e6 tokens
_BEDROCK_PROFILES = ("global.", "us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov.")
"""Cross-region inference profiles prefix the model id; they bill as the model."""


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """A request's usage, broken down the way providers bill it. ``prompt`` and ``output``
    are totals; the other counts are parts of them (Parley's canonical usage counts cache
    reads and writes inside ``prompt_tokens`` and reasoning inside ``completion_tokens``).
    Counts a decoder does not report yet default to 0."""

    prompt: int = 0
    output: int = 0
    cached_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    reasoning: int = 0

    @property
    def uncached_input(self) -> int:
        return max(0, self.prompt - self.cached_read - self.cache_write_5m - self.cache_write_1h)

    @classmethod
    def from_usage(
        cls,
        usage: Usage,
        *,
        cached_read: int | None = None,
        cache_write_5m: int | None = None,
        cache_write_1h: int | None = None,
        reasoning: int | None = None,
    ) -> TokenCounts:
        """From the canonical usage. Explicit counts win; otherwise the details every
        decoder fills (``prompt_tokens_details.cached_tokens`` and
        ``cache_creation_tokens``, ``completion_tokens_details.reasoning_tokens``), and
        anything else counts 0."""
        prompt_details = _details(usage.prompt_tokens_details)
        completion_details = _details(usage.completion_tokens_details)
        if cached_read is None:
            cached_read = _int(prompt_details.get("cached_tokens"))
        if cache_write_5m is None:
            # Anthropic's writes arrive as ``cache_creation_tokens``, at its default 5-minute
            # TTL unless the provider reported the split.
            cache_write_5m = _int(
                prompt_details.get(
                    "cache_write_5m_tokens", prompt_details.get("cache_creation_tokens")
                )
            )
        if cache_write_1h is None:
            cache_write_1h = _int(prompt_details.get("cache_write_1h_tokens"))
        if reasoning is None:
            reasoning = _int(completion_details.get("reasoning_tokens"))
        prompt = usage.prompt_tokens
        return cls(
            prompt=prompt,
            output=usage.completion_tokens,
            cached_read=min(cached_read, prompt),
            cache_write_5m=min(cache_write_5m, prompt),
            cache_write_1h=min(cache_write_1h, prompt),
            reasoning=min(reasoning, usage.completion_tokens),
        )


def _details(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: object) -> int:
    return value if isinstance(value, int) and value > 0 else 0


@dataclass(frozen=True, slots=True)
class Rates:
    """nano-dollars per token, for one context tier."""

    input: float
    output: float
    cached_read: float
    cache_write_5m: float
    cache_write_1h: float
    reasoning_output: float


@dataclass(frozen=True, slots=True)
class Price:
    """A deployment's prices: base rates, an optional long-context tier, the batch factor."""

    base: Rates
    long_context: Rates | None = None
    long_context_threshold: int | None = None
    batch_factor: float = 1.0
    source: str = "catalog"
    """Where the prices came from: ``catalog``, ``config``, ``catalog+config`` or ``none``."""

    @property
    def input(self) -> float:
        return self.base.input

    @property
    def output(self) -> float:
        return self.base.output

    def rates_for(self, prompt_tokens: int) -> Rates:
        threshold = self.long_context_threshold
        if self.long_context is not None and threshold is not None and prompt_tokens > threshold:
            return self.long_context
        return self.base

    def charge(self, counts: TokenCounts, *, batch: bool = False) -> int:
        """Nano-dollars for ``counts``, by the formula in the module docstring."""
        r = self.rates_for(counts.prompt)
        total = (
            counts.uncached_input * r.input
            + counts.cached_read * r.cached_read
            + counts.cache_write_5m * r.cache_write_5m
            + counts.cache_write_1h * r.cache_write_1h
            + (counts.output - counts.reasoning) * r.output
            + counts.reasoning * r.reasoning_output
        )
        if batch:
            total *= self.batch_factor
        return round(total)

    def cost(self, usage: Usage, cached_tokens: int | None = None) -> int:
        """The canonical usage's cost (see ``TokenCounts.from_usage``)."""
        return self.charge(TokenCounts.from_usage(usage, cached_read=cached_tokens))

    def estimate(self, prompt_tokens: int, max_completion: int) -> int:
        """A reservation: every prompt token uncached, every completion token billed as
        output (the dearer of output and reasoning), at the tier the prompt falls in."""
        r = self.rates_for(prompt_tokens)
        return round(prompt_tokens * r.input + max_completion * max(r.output, r.reasoning_output))


_ZERO = Rates(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
FREE = Price(_ZERO, source="none")


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One row of ``data/prices.json``, in USD per million tokens."""

    provider: str
    model: str
    prices: PriceConfig
    as_of: str
    source: str


@cache
def catalog() -> tuple[str, tuple[CatalogEntry, ...]]:
    """The shipped catalog: its date and its rows (read once per process)."""
    text = resources.files("parley.gateway.accounting").joinpath("data/prices.json").read_text()
    raw = json.loads(text)
    entries: list[CatalogEntry] = []
    for row in raw["models"]:
        long = row.get("long_context")
        prices = PriceConfig(
            input_per_mtok=row["input"],
            output_per_mtok=row["output"],
            cached_input_per_mtok=row.get("cached_read"),
            cache_write_per_mtok=row.get("cache_write_5m"),
            cache_write_1h_per_mtok=row.get("cache_write_1h"),
            reasoning_output_per_mtok=row.get("reasoning_output"),
            batch_factor=row.get("batch_factor"),
            long_context=None
            if long is None
            else LongContextPrice(
                threshold_tokens=long["threshold_tokens"],
                input_per_mtok=long.get("input"),
                output_per_mtok=long.get("output"),
                cached_input_per_mtok=long.get("cached_read"),
                cache_write_per_mtok=long.get("cache_write_5m"),
                cache_write_1h_per_mtok=long.get("cache_write_1h"),
            ),
        )
        entries.append(
            CatalogEntry(row["provider"], row["model"], prices, row["as_of"], row["source"])
        )
    return raw["catalog_date"], tuple(entries)


def catalog_entry(provider: str, model: str) -> CatalogEntry | None:
    """The exact model, else the longest catalogued name the model starts with (dated
    snapshots such as ``gpt-4o-2024-08-06`` price like their family). On Bedrock a
    ``global.`` profile has rows of its own where AWS prices it apart (Claude 4.5 costs 10%
    less through it); other profile prefixes (``us.``, ``eu.``) price as in-region."""
    rows = [e for e in catalog()[1] if e.provider == provider]
    names = [model]
    if provider == "bedrock":
        for prefix in _BEDROCK_PROFILES:
            if model.startswith(prefix):
                names.append(model[len(prefix) :])
                break
    for name in names:
        for entry in rows:
            if entry.model == name:
                return entry
        matches = [e for e in rows if name.startswith(e.model)]
        if matches:
            return max(matches, key=lambda e: len(e.model))
    return None


def merge(base: PriceConfig | None, override: PriceConfig | None) -> PriceConfig | None:
    """``override``'s set fields over ``base``'s (the config over the catalog)."""
    if base is None or override is None:
        return override or base
    fields = {
        name: getattr(override, name)
        for name in PriceConfig.model_fields
        if getattr(override, name) is not None
    }
    return base.model_copy(update=fields)


def price_of(deployment: Deployment) -> Price | None:
    """The deployment's price, or None when neither the config nor the catalog knows it."""
    entry = catalog_entry(deployment.provider, deployment.model)
    merged = merge(entry.prices if entry else None, deployment.price)
    if merged is None:
        return None
    source = "catalog" if deployment.price is None else "config"
    if entry is not None and deployment.price is not None:
        source = "catalog+config"
    return to_price(merged, source)


def to_price(p: PriceConfig, source: str = "config") -> Price:
    """USD per million tokens into nano-dollars per token, with the documented defaults."""
    base = _rates(p.input_per_mtok, p.output_per_mtok, p)
    long = p.long_context
    long_rates = None
    if long is not None:
        long_rates = _rates(
            long.input_per_mtok if long.input_per_mtok is not None else p.input_per_mtok,
            long.output_per_mtok if long.output_per_mtok is not None else p.output_per_mtok,
            long,
        )
    return Price(
        base,
        long_rates,
        long.threshold_tokens if long is not None else None,
        p.batch_factor if p.batch_factor is not None else 1.0,
        source,
    )


def _rates(
    input_usd: float | None, output_usd: float | None, p: PriceConfig | LongContextPrice
) -> Rates:
    k = _NUSD_PER_USD_PER_MTOK
    inp = (input_usd or 0.0) * k
    out = (output_usd or 0.0) * k
    read = p.cached_input_per_mtok
    write = p.cache_write_per_mtok
    write_1h = p.cache_write_1h_per_mtok if p.cache_write_1h_per_mtok is not None else write
    reasoning = getattr(p, "reasoning_output_per_mtok", None)
    return Rates(
        input=inp,
        output=out,
        cached_read=read * k if read is not None else inp,
        cache_write_5m=write * k if write is not None else inp,
        cache_write_1h=write_1h * k if write_1h is not None else inp,
        reasoning_output=reasoning * k if reasoning is not None else out,
    )


@dataclass(frozen=True, slots=True)
class Ceiling:
    """A group's reservation price: the dearest deployment's estimate for each request
    (long-context tiers included), since the router has not picked yet."""

    prices: tuple[Price, ...]

    def estimate(self, prompt_tokens: int, max_completion: int) -> int:
        return max((p.estimate(prompt_tokens, max_completion) for p in self.prices), default=0)


def group_ceiling(group: ModelGroup) -> Ceiling:
    return Ceiling(tuple(price_of(d) or FREE for d in group.deployments))


def usd(nusd: int) -> float:
    return nusd / 1e9


def nusd(usd_amount: float) -> int:
    return round(usd_amount * 1e9)
