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
