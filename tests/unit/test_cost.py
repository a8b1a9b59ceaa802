"""Cost per provider family against figures worked out by hand from the catalog's list
prices, from each provider's documented usage object (decoded by Parley's own decoders
where they already carry the breakdown, counted explicitly where they do not yet)."""

from __future__ import annotations

from typing import Any

import pytest

from parley.gateway.accounting.cost import (
    TokenCounts,
    catalog,
    catalog_entry,
    group_ceiling,
    price_of,
)
from parley.providers import anthropic, gemini
from parley.providers.bedrock_convert import usage_from
from parley.schema.chat import Usage
from parley.testing.servers import models_from


def deployment(provider: str, model: str, **extra: Any) -> Any:
    spec: dict[str, Any] = {"provider": provider, "model": model, **extra}
    if provider in ("openai", "anthropic", "gemini"):
        spec["api_key"] = "os.environ/PARLEY_TEST_FAKE_KEY"
    if provider == "azure":
        spec |= {
            "api_base": "https://x.openai.azure.com",
            "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
        }
    if provider == "bedrock":
        spec |= {"aws_region": "us-east-1", "api_key": "os.environ/PARLEY_TEST_FAKE_KEY"}
    return models_from([{"name": "g", "deployments": [spec]}]).groups[0].deployments[0]


def price(provider: str, model: str, **extra: Any) -> Any:
    found = price_of(deployment(provider, model, **extra))
    assert found is not None
    return found


def test_openai_cached_prompt_from_the_documented_usage_object() -> None:
    # platform.openai.com's chat completion usage: cached tokens are part of prompt_tokens.
    usage = Usage(2006, 300, 2306, {"cached_tokens": 1920}, {"reasoning_tokens": 0})
    # 86 x $2.50 + 1920 x $1.25 + 300 x $10.00, per million
    assert price("openai", "gpt-4o-2024-08-06").cost(usage) == 5_615_000


def test_openai_reasoning_tokens_are_output() -> None:
    usage = Usage(1000, 500, 1500, {"cached_tokens": 0}, {"reasoning_tokens": 384})
    counts = TokenCounts.from_usage(usage)
    assert counts.reasoning == 384
    # 1000 x $1.10 + 500 x $4.40 (reasoning billed as output)
    assert price("openai", "o4-mini").charge(counts) == 3_300_000


def test_openai_batch_is_half() -> None:
    counts = TokenCounts(prompt=1000, output=100)
    assert price("openai", "gpt-4o").charge(counts, batch=True) == 1_750_000


def test_azure_uses_its_own_rows() -> None:
    assert catalog_entry("azure", "gpt-4.1") is not None
    assert price("azure", "gpt-4.1").cost(Usage(1000, 100, 1100)) == 2_800_000


def test_anthropic_plain_through_the_decoder() -> None:
    usage = anthropic.anthropic_usage({"input_tokens": 1000, "output_tokens": 200})
    # 1000 x $3 + 200 x $15
    assert price("anthropic", "claude-sonnet-4-5-20250929").cost(usage) == 6_000_000


def test_anthropic_cache_writes_and_reads_through_the_decoder() -> None:
    """Anthropic's own usage object, through its decoder: a write at the 5-minute price,
    then the same prompt read back at the cached price."""
    sonnet = price("anthropic", "claude-sonnet-4-5-20250929")
    written = anthropic.anthropic_usage(
        {"input_tokens": 100, "cache_creation_input_tokens": 2000, "output_tokens": 50}
    )
    read = anthropic.anthropic_usage(
        {"input_tokens": 100, "cache_read_input_tokens": 2000, "output_tokens": 50}
    )
    assert sonnet.cost(written) == 8_550_000  # 100 x 3 + 2000 x 3.75 + 50 x 15
    assert sonnet.cost(read) == 1_650_000  # 100 x 3 + 2000 x 0.30 + 50 x 15


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # input 100, cache_creation 2000 (5 min), output 50: 100x3 + 2000x3.75 + 50x15
        (TokenCounts(prompt=2100, output=50, cache_write_5m=2000), 8_550_000),
        # the same prompt read back: 100x3 + 2000x0.30 + 50x15
        (TokenCounts(prompt=2100, output=50, cached_read=2000), 1_650_000),
        # written with the 1-hour TTL: 100x3 + 2000x6 + 50x15
        (TokenCounts(prompt=2100, output=50, cache_write_1h=2000), 13_050_000),
        # past 200k prompt tokens the whole request is at the long-context rates: 6 and 22.50
        (TokenCounts(prompt=250_000, output=1000), 1_522_500_000),
    ],
)
def test_anthropic_cache_writes_reads_and_long_context(counts: TokenCounts, expected: int) -> None:
    assert price("anthropic", "claude-sonnet-4-5").charge(counts) == expected


def test_gemini_thinking_through_the_decoder() -> None:
    usage = gemini._usage(
        {
            "promptTokenCount": 1000,
            "candidatesTokenCount": 200,
            "thoughtsTokenCount": 800,
            "totalTokenCount": 2000,
        }
    )
    assert usage is not None
    # 1000 x $0.30 + (200 + 800) x $2.50
    assert price("gemini", "gemini-2.5-flash").cost(usage) == 2_800_000


def test_gemini_cached_content_and_long_context() -> None:
    flash = price("gemini", "gemini-2.5-flash")
    # cachedContentTokenCount 600 of 1000: 400 x 0.30 + 600 x 0.03 + 1000 x 2.50
    assert flash.charge(TokenCounts(prompt=1000, output=1000, cached_read=600)) == 2_638_000
    pro = price("gemini", "gemini-2.5-pro")
    # 300k prompt: 300000 x 2.50 + 1000 x 15.00
    assert pro.charge(TokenCounts(prompt=300_000, output=1000)) == 765_000_000


def test_bedrock_cache_reads_and_writes_through_the_decoder() -> None:
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    p = price("bedrock", model, aws_region="us-east-1")
    usage = usage_from({"inputTokens": 100, "cacheReadInputTokens": 2000, "outputTokens": 50})
    # the us. profile at the in-region price: 100 x 3.30 + 2000 x 0.33 + 50 x 16.50
    assert p.cost(usage) == 1_815_000
    # with 500 written to the cache too: + 500 x 4.125
    counts = TokenCounts(prompt=2600, output=50, cached_read=2000, cache_write_5m=500)
    assert p.charge(counts) == 3_877_500
    # the global. profile is 10% cheaper: 100 x 3 + 2000 x 0.30 + 50 x 15
    cross_region = price("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert cross_region.cost(usage) == 1_650_000
    # ... as the decoder reports Bedrock's cacheWriteInputTokens
    written = usage_from(
        {
            "inputTokens": 100,
            "cacheReadInputTokens": 2000,
            "cacheWriteInputTokens": 500,
            "outputTokens": 50,
        }
    )
    assert written.prompt_tokens == 2600
    assert p.cost(written) == 3_877_500


def test_config_price_overrides_field_by_field() -> None:
    p = price("openai", "gpt-4o", price={"output_per_mtok": 20.0})
    assert p.source == "catalog+config"
    # input keeps the catalog's $2.50; output is the config's $20
    assert p.cost(Usage(1000, 100, 1100)) == 4_500_000
    assert price_of(deployment("openai", "no-such-model")) is None


def test_counts_are_clamped_and_unknown_fields_default_to_zero() -> None:
    counts = TokenCounts.from_usage(Usage(10, 5, 15, {"cached_tokens": 99}))
    assert counts.cached_read == 10
    assert counts.uncached_input == 0
    assert TokenCounts.from_usage(Usage(10, 5, 15)).cache_write_1h == 0


def test_reservation_prices_the_dearest_deployment_and_its_long_context() -> None:
    g = models_from(
        [
            {
                "name": "g",
                "deployments": [
                    {
                        "provider": "gemini",
                        "model": "gemini-2.5-flash",
                        "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
                    },
                    {
                        "provider": "gemini",
                        "model": "gemini-2.5-pro",
                        "api_key": "os.environ/PARLEY_TEST_FAKE_KEY",
                    },
                ],
            }
        ]
    ).groups[0]
    ceiling = group_ceiling(g)
    assert ceiling.estimate(1000, 100) == 1000 * 1250 + 100 * 10_000
    assert ceiling.estimate(300_000, 100) == 300_000 * 2500 + 100 * 15_000


def test_every_catalog_row_is_dated_and_sourced() -> None:
    date, rows = catalog()
    assert date
    providers = {row.provider for row in rows}
    assert providers >= {"openai", "azure", "anthropic", "gemini", "bedrock"}
    for row in rows:
        assert row.source.startswith("https://")
        assert len(row.as_of) == 10


# Rows added on 2026-12-02 (see the catalog's notes): each new model resolves to its own row,
# not to the older family its name starts with (``gpt-5.2`` used to price as ``gpt-5``,
# ``claude-opus-4-6`` as ``claude-opus-4`` at three times the price).
NEW_ROWS = [
    *(
        ("openai", m)
        for m in (
            "gpt-5.1",
            "gpt-5.1-codex",
            "gpt-5.1-codex-max",
            "gpt-5.1-codex-mini",
            "gpt-5.2",
            "gpt-5.2-codex",
            "gpt-5.2-pro",
            "gpt-5.3-codex",
            "gpt-5.3-chat-latest",
            "gpt-5.4",
            "gpt-5.4-mini",
            "gpt-5.4-nano",
            "gpt-5.4-pro",
            "gpt-5.5",
            "gpt-5.5-pro",
            "gpt-5-pro",
            "gpt-5.6",
            "gpt-5.6-sol",
            "gpt-5.6-terra",
            "gpt-5.6-luna",
            "gpt-6-sol",
            "gpt-6-luna",
            "gpt-6.1-terra",
        )
    ),
    *(
        ("azure", m)
        for m in (
            "gpt-5.1",
            "gpt-5.1-codex",
            "gpt-5.1-codex-max",
            "gpt-5.1-codex-mini",
            "gpt-5.2",
            "gpt-5.2-codex",
            "gpt-5.2-pro",
            "gpt-5.3-codex",
            "gpt-5.3-chat",
            "gpt-5.4",
            "gpt-5.4-mini",
            "gpt-5.4-nano",
            "gpt-5.4-pro",
            "gpt-5.5",
            "gpt-5.5-pro",
            "gpt-5-pro",
        )
    ),
    *(
        ("anthropic", m)
        for m in (
            "claude-opus-4-6",
            "claude-opus-4-7",
            "claude-opus-4-8",
            "claude-opus-5",
            "claude-opus-5-5",
            "claude-sonnet-4-6",
            "claude-sonnet-5",
            "claude-sonnet-5-5",
            "claude-haiku-5-5",
            "claude-fable-5",
            "claude-fable-5-1",
            "claude-fable-5-2",
        )
    ),
    *(
        ("gemini", m)
        for m in (
            "gemini-3.1-pro-preview",
            "gemini-3-flash-preview",
            "gemini-3.1-flash-lite",
            "gemini-3.5-flash",
            "gemini-3.5-flash-lite",
            "gemini-3.6-flash",
        )
    ),
    *(
        ("bedrock", prefix + m)
        for prefix in ("", "global.")
        for m in (
            "anthropic.claude-opus-4-6",
            "anthropic.claude-opus-4-7",
            "anthropic.claude-opus-4-8",
            "anthropic.claude-opus-5",
            "anthropic.claude-sonnet-4-6",
            "anthropic.claude-sonnet-5",
        )
    ),
]


@pytest.mark.parametrize(("provider", "model"), NEW_ROWS)
def test_newer_models_have_rows_of_their_own(provider: str, model: str) -> None:
    entry = catalog_entry(provider, model)
    assert entry is not None
    assert entry.model == model


def test_gpt_5_2_cached_prompt_at_its_own_prices() -> None:
    usage = Usage(2006, 300, 2306, {"cached_tokens": 1920}, {"reasoning_tokens": 0})
    # 86 x $1.75 + 1920 x $0.175 + 300 x $14.00 per million (gpt-5's rates gave 3_347_500)
    assert price("openai", "gpt-5.2-2025-12-11").cost(usage) == 4_686_500


def test_gpt_5_4_long_context_past_272k() -> None:
    p = price("openai", "gpt-5.4")
    # 200k prompt: 200000 x $2.50 + 1000 x $15.00
    assert p.charge(TokenCounts(prompt=200_000, output=1000)) == 515_000_000
    # 300k prompt, the whole request at the long tier: 300000 x $5.00 + 1000 x $22.50
    assert p.charge(TokenCounts(prompt=300_000, output=1000)) == 1_522_500_000


def test_claude_opus_4_6_cache_write_through_the_decoder() -> None:
    usage = anthropic.anthropic_usage(
        {"input_tokens": 100, "cache_creation_input_tokens": 2000, "output_tokens": 50}
    )
    # 100 x $5 + 2000 x $6.25 + 50 x $25 (claude-opus-4's $15 / $18.75 / $75 gave 42_750_000)
    assert price("anthropic", "claude-opus-4-6-20260205").cost(usage) == 14_250_000


def test_claude_haiku_5_5_prices_by_prompt_length() -> None:
    haiku = price("anthropic", "claude-haiku-5-5")
    # 50k prompt, 40k of it read from the cache: 10000 x 0.10 + 40000 x 0.01 + 1000 x 0.50
    assert haiku.charge(TokenCounts(prompt=50_000, output=1000, cached_read=40_000)) == 1_900_000
    # 150k prompt (100k cache reads, 10k 1-hour writes), all at the over-100k prices:
    # 40000 x 0.50 + 100000 x 0.05 + 10000 x 1.00 + 1000 x 2.50
    long = TokenCounts(prompt=150_000, output=1000, cached_read=100_000, cache_write_1h=10_000)
    assert haiku.charge(long) == 37_500_000


def test_gemini_3_1_pro_long_context_with_cached_content() -> None:
    pro = price("gemini", "gemini-3.1-pro-preview")
    # 250k prompt, 50k cached: 200000 x $4 + 50000 x $0.40 + 2000 x $18
    counts = TokenCounts(prompt=250_000, output=2000, cached_read=50_000)
    assert pro.charge(counts) == 856_000_000


def test_bedrock_claude_opus_4_6_in_region_and_global() -> None:
    usage = usage_from({"inputTokens": 100, "cacheReadInputTokens": 2000, "outputTokens": 50})
    # us. profile, in-region price: 100 x 5.50 + 2000 x 0.55 + 50 x 27.50
    assert price("bedrock", "us.anthropic.claude-opus-4-6-v1").cost(usage) == 3_025_000
    # global. profile: 100 x 5 + 2000 x 0.50 + 50 x 25
    assert price("bedrock", "global.anthropic.claude-opus-4-6-v1").cost(usage) == 2_750_000


def test_gpt_6_sol_cached_and_past_272k() -> None:
    sol = price("openai", "gpt-6-sol")
    usage = Usage(10_000, 1000, 11_000, {"cached_tokens": 8000}, {"reasoning_tokens": 600})
    # 2000 x $2 + 8000 x $0.20 + 1000 x $10 (reasoning is part of the 1000, billed as output)
    assert sol.cost(usage) == 15_600_000
    # past 272K input tokens: input and cache double, output is 1.5x
    counts = TokenCounts(prompt=300_000, output=1000, cached_read=100_000)
    # 200000 x $4 + 100000 x $0.40 + 1000 x $15
    assert sol.charge(counts) == 855_000_000
