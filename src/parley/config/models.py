"""The model file's schema: model groups and their deployments.

Parsed with ``extra="forbid"`` so a typo is an error naming its path, not a silent default.
Later issues add keys (routing, limits, cache) here.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from parley.config.egress import ProxyConfig
from parley.config.secrets import reference_name
from parley.config.sso import SsoConfig

ProviderName = Literal["openai", "azure", "anthropic", "gemini", "openai_compatible", "bedrock"]

DEFAULT_API_BASES: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}
DEFAULT_AZURE_API_VERSION = "2024-10-21"
AWS_REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"
"""``us-east-1``, ``eu-central-2``, ``us-gov-west-1``: what goes into a SigV4 scope."""


def bedrock_runtime_url(region: str) -> str:
    return f"https://bedrock-runtime.{region}.amazonaws.com"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutConfig(_Strict):
    """Seconds. ``first_byte`` bounds the wait for response headers and for each stream read."""

    connect: float = Field(default=5.0, gt=0)
    first_byte: float = Field(default=60.0, gt=0)
    total: float = Field(default=600.0, gt=0)


class HealthCheckConfig(_Strict):
    """An active probe: a one-token completion (``ping``, ``max_tokens: 1``) every
    ``interval`` seconds, so a deployment that fails while no traffic reaches it has its
    breaker opened before a user's request finds out, and an open one is tried again."""

    interval: float = Field(default=30.0, gt=0)
    timeout: float = Field(default=10.0, gt=0)


class LongContextPrice(_Strict):
    """Prices for a whole request whose prompt exceeds ``threshold_tokens`` (Gemini 2.5 Pro
    and Claude Sonnet 4.x past 200k tokens); a field left out keeps the base price."""

    threshold_tokens: int = Field(ge=1)
    input_per_mtok: float | None = Field(default=None, ge=0)
    output_per_mtok: float | None = Field(default=None, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    cache_write_per_mtok: float | None = Field(default=None, ge=0)
    cache_write_1h_per_mtok: float | None = Field(default=None, ge=0)


class PriceConfig(_Strict):
    """USD per million tokens. Overrides Parley's price catalog
    (``gateway/accounting/data/prices.json``) field by field: a field left out keeps the
    catalog's value for the deployment's model (or 0 for a model the catalog lacks)."""

    input_per_mtok: float | None = Field(default=None, ge=0)
    output_per_mtok: float | None = Field(default=None, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    """Cached input reads; defaults to the input price when the provider does not discount."""
    cache_write_per_mtok: float | None = Field(default=None, ge=0)
    """Writing the prompt cache (Anthropic's 5-minute TTL); defaults to the input price."""
    cache_write_1h_per_mtok: float | None = Field(default=None, ge=0)
    """Anthropic's 1-hour cache writes; defaults to ``cache_write_per_mtok``."""
    reasoning_output_per_mtok: float | None = Field(default=None, ge=0)
    """Reasoning/thinking output where priced apart; defaults to the output price."""
    batch_factor: float | None = Field(default=None, ge=0, le=1)
    """Multiplier for the provider's asynchronous batch API (0.5 at every listed provider)."""
    long_context: LongContextPrice | None = None


BudgetPeriodName = Literal["daily", "weekly", "monthly", "total"]


class BudgetConfig(_Strict):
    """A spend cap on the whole installation, a model group, a deployment or a user tier
    (per member). ``usd`` refuses (or downgrades) past it; ``soft_usd`` only warns."""

    usd: float | None = Field(default=None, ge=0)
    soft_usd: float | None = Field(default=None, ge=0)
    period: BudgetPeriodName = "monthly"
    timezone: str = "UTC"
    """IANA name (``Europe/Paris``): where a daily, weekly or monthly period begins."""
    alert_thresholds: list[float] = Field(default_factory=list)
    """Percentages of ``usd`` (e.g. ``[50, 80, 100]``) at which the alert webhook fires."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        import zoneinfo  # noqa: PLC0415 - only when a budget names a zone

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _some_amount(self) -> BudgetConfig:
        if self.usd is None and self.soft_usd is None:
            raise ValueError("a budget needs usd or soft_usd")
        if self.alert_thresholds and self.usd is None:
            raise ValueError("alert_thresholds are percentages of usd: set usd")
        return self


class DowngradeConfig(_Strict):
    """Serve from a cheaper group instead of refusing when a budget would refuse this
    group's request, or once a budget is ``at_percent`` spent."""

    to: str = Field(min_length=1)
    at_percent: float | None = Field(default=None, gt=0, le=100)


class UserTierConfig(_Strict):
    """A named class of users (a user's ``tier`` names it): limits that apply to each
    member separately, not shared by all of them."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    budget: BudgetConfig | None = None
    max_cost_usd: float | None = Field(default=None, gt=0)
    """The most one request may cost a member (its reservation, priced before the call)."""


class GroupLimits(_Strict):
    """Limits on the whole model group, summed over every caller and instance."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_parallel: int | None = Field(default=None, ge=1)


Strategy = Literal[
    "ordered", "weighted", "least_inflight", "latency", "cost", "headroom", "balanced"
]


class CircuitBreakerConfig(_Strict):
    """Open after ``failure_rate`` of at least ``min_requests`` calls in ``window`` seconds
    failed; after ``cooldown`` seconds let ``half_open_probes`` calls through to test it."""

    failure_rate: float = Field(default=0.5, gt=0, le=1)
    window: float = Field(default=30.0, gt=0)
    min_requests: int = Field(default=5, ge=1)
    cooldown: float = Field(default=10.0, gt=0)
    half_open_probes: int = Field(default=1, ge=1)


class QueueConfig(_Strict):
    """Requests beyond the group's concurrency wait here, at most ``timeout`` seconds."""

    max_size: int = Field(default=100, ge=0)
    timeout: float = Field(default=5.0, gt=0)


class BackoffConfig(_Strict):
    """Full-jitter exponential backoff between retries: random(0, min(max, base * 2**n))."""

    base: float = Field(default=0.1, ge=0)
    max: float = Field(default=5.0, ge=0)


class StrategyWeights(_Strict):
    """The ``balanced`` score's weights (the seed design's 0.3/0.3/0.3/0.1 by default)."""

    latency: float = Field(default=0.3, ge=0)
    load: float = Field(default=0.3, ge=0)
    success: float = Field(default=0.3, ge=0)
    cost: float = Field(default=0.1, ge=0)


class DeploymentConfig(_Strict):
    provider: ProviderName
    model: str = Field(min_length=1)
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    azure_ad_token: str | None = None
    aws_region: str | None = None
    """Bedrock: the region requests are signed for (and, without ``api_base``, sent to)."""
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    """Bedrock: temporary credentials (STS) come with a session token."""
    name: str | None = None
    timeout: TimeoutConfig = TimeoutConfig()
    max_connections: int = Field(default=100, ge=1)
    extra_headers: dict[str, str] = Field(default_factory=dict)
    proxy: str | ProxyConfig | None = None
    """This deployment's forward proxy (a URL, or the object form with credentials);
    ``direct`` ignores ``HTTPS_PROXY``/``HTTP_PROXY``. Unset: the environment decides."""
    allow_client_api_base: bool = False
    """SSRF guard: a request may name its own ``api_base`` only where an admin set this."""
    refused_params: list[str] = Field(default_factory=list)
    """Request parameters this deployment must not be sent (e.g. an ``openai_compatible``
    server that chokes on ``min_p``): refused with 400, or dropped under ``drop_params``."""
    price: PriceConfig | None = None
    weight: float = Field(default=1.0, ge=0)
    order: int = 1
    """``ordered`` strategy: lower first; equal orders keep file order."""
    max_concurrency: int | None = Field(default=None, ge=1)
    rpm: int | None = Field(default=None, ge=1)
    """Capacity, for the ``headroom`` strategy (not a limit Parley enforces on callers)."""
    tpm: int | None = Field(default=None, ge=1)
    max_context_tokens: int | None = Field(default=None, ge=1)
    """Prompts estimated above this skip the deployment (``cost`` strategy and all others)."""
    tags: dict[str, str] = Field(default_factory=dict)
    health_check: HealthCheckConfig | None = None
    budget: BudgetConfig | None = None
    """Spend on this deployment by everyone. Reserved when the router picks it; one with no
    budget left is passed over for the group's others (``gateway/routing/resilience.py``)."""
    """Off by default: passive health (real traffic) always applies."""
    enabled: bool = True
    """``false``: kept in the group but sent no traffic (``/admin/models/.../disable``)."""

    @field_validator(
        "api_key",
        "azure_ad_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
    )
    @classmethod
    def _must_be_reference(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A file holds references only. Groups stored through ``/admin/models`` may hold
        literal secrets (validated with ``{"literal_secrets": True}``): they are encrypted
        before they are stored (``config/stored.py``)."""
        if value is not None and not (info.context or {}).get("literal_secrets"):
            reference_name(value)
        return value

    @field_validator("aws_region")
    @classmethod
    def _aws_region(cls, value: str | None) -> str | None:
        """Checked here, not by a ``pattern``: pydantic's message would show the regex."""
        if value is not None and not re.fullmatch(AWS_REGION_PATTERN, value):
            raise ValueError(f"must be an AWS region such as us-east-1, got {value[:40]!r}")
        return value

    @field_validator("refused_params")
    @classmethod
    def _not_the_request_itself(cls, value: list[str]) -> list[str]:
        essential = {"model", "messages", "stream"} & set(value)
        if essential:
            raise ValueError(f"cannot refuse {sorted(essential)[0]!r}: every request has it")
        return value

    @field_validator("api_base")
    @classmethod
    def _must_be_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        try:
            port = parts.port
        except ValueError:  # not a number from 0 to 65535
            port = 0
        if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials; use api_key")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _provider_requirements(self) -> DeploymentConfig:
        if self.provider in ("azure", "openai_compatible") and self.api_base is None:
            raise ValueError(f"provider {self.provider!r} needs api_base")
        if self.provider == "azure" and self.api_key is None and self.azure_ad_token is None:
            raise ValueError("provider 'azure' needs api_key or azure_ad_token")
        if self.provider in ("openai", "anthropic", "gemini") and self.api_key is None:
            raise ValueError(f"provider {self.provider!r} needs api_key")
        if self.azure_ad_token is not None and self.provider != "azure":
            raise ValueError("azure_ad_token applies to provider 'azure' only")
        self._bedrock_requirements()
        return self

    def _bedrock_requirements(self) -> None:
        aws = {
            "aws_region": self.aws_region,
            "aws_access_key_id": self.aws_access_key_id,
            "aws_secret_access_key": self.aws_secret_access_key,
            "aws_session_token": self.aws_session_token,
        }
        if self.provider != "bedrock":
            given = [name for name, value in aws.items() if value is not None]
            if given:
                raise ValueError(f"{given[0]} applies to provider 'bedrock' only")
            return
        if self.aws_region is None:
            raise ValueError("provider 'bedrock' needs aws_region")
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError("aws_access_key_id and aws_secret_access_key go together")
        if self.aws_session_token is not None and self.aws_access_key_id is None:
            raise ValueError("aws_session_token needs aws_access_key_id and aws_secret_access_key")
        if self.aws_access_key_id is None and self.api_key is None:
            raise ValueError(
                "provider 'bedrock' needs aws_access_key_id and aws_secret_access_key "
                "(SigV4), or api_key (a Bedrock API key)"
            )

    def effective_api_base(self) -> str:
        if self.api_base is None and self.provider == "bedrock":
            assert self.aws_region is not None  # guaranteed by _bedrock_requirements
            return bedrock_runtime_url(self.aws_region)
        base = self.api_base or DEFAULT_API_BASES.get(self.provider)
        assert base is not None  # guaranteed by _provider_requirements
        return base

    def label(self, group: str) -> str:
        return self.name or f"{group}/{self.provider}/{self.model}"


class CacheConfig(_Strict):
    """Response caching for a model group (``gateway/cache/store.py``). Off unless enabled."""

    enabled: bool = False
    ttl: float = Field(default=3600.0, gt=0)
    """Seconds an answer is served from the cache."""
    max_temperature: float | None = Field(default=None, ge=0)
    """Requests sampling hotter than this are not cached (null: any temperature)."""
    namespace: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """A namespace shared by every caller of this group. Unset (the default), each team
    (else each API key) has its own, so no answer crosses tenants."""
    semantic: bool = False
    """Also answer near-identical final user turns (``gateway/cache/semantic.py``)."""
    threshold: float = Field(default=0.98, gt=0, le=1)
    """Cosine similarity a semantic hit needs. The default is the lowest at which the local
    embedder kept precision at 0.95 on Quora question pairs (docs/benchmarks.md); lower
    it for traffic of near-verbatim repeats, where recall matters more."""
    embedder: str = "local"
    """``local`` (all-MiniLM-L6-v2, ``parley[semantic]``) or an embeddings model group."""


class ModelGroupConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[^\s/][^\s]*$")
    deployments: list[DeploymentConfig] = Field(min_length=1)
    drop_params: bool | None = None
    """Overrides the process-wide ``PARLEY_DROP_PARAMS`` for this group."""
    limits: GroupLimits = GroupLimits()
    strategy: Strategy = "ordered"
    strategy_weights: StrategyWeights = StrategyWeights()
    allow_strategy_override: bool = False
    """Let a request pick the strategy with ``x-parley-strategy`` (admin opt-in)."""
    fallbacks: list[str] = Field(default_factory=list)
    """Groups tried in order after every deployment of this one failed."""
    context_window_fallbacks: list[str] = Field(default_factory=list)
    """Groups tried when an upstream says the prompt is too long."""
    content_policy_fallbacks: list[str] = Field(default_factory=list)
    """Groups tried when an upstream refuses the content on policy grounds."""
    retries: int = Field(default=2, ge=0, le=10)
    """Further attempts within the group after the first (other deployments first)."""
    backoff: BackoffConfig = BackoffConfig()
    timeout: TimeoutConfig | None = None
    """Default for deployments that set no ``timeout`` of their own."""
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    max_concurrency: int | None = Field(default=None, ge=1)
    """Concurrent requests for the whole group; default: the sum of its deployments'
    ``max_concurrency`` when every deployment sets one, else unbounded."""
    queue: QueueConfig = QueueConfig()
    cache: CacheConfig = CacheConfig()
    budget: BudgetConfig | None = None
    """Spend on this group by everyone, checked in the same admission as keys' budgets."""
    max_cost_usd: float | None = Field(default=None, gt=0)
    """The most one request to this group may cost (its reservation)."""
    downgrade: DowngradeConfig | None = None


Tier = Literal["fast", "balanced", "premium"]
TIER_ORDER: tuple[Tier, ...] = ("fast", "balanced", "premium")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TierWindow(_Strict):
    """Between ``start`` and ``end`` (UTC, HH:MM) on ``days``, cap the tier at ``max_tier``
    (e.g. the cheaper tier at peak hours)."""

    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    end: str = Field(pattern=r"^([01][0-9]|2[0-4]):[0-5][0-9]$")
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS))
    max_tier: Tier


class TieredConfig(_Strict):
    """A virtual model (``auto``): each request is classified fast / balanced / premium and
    served by the group configured for its tier."""

    name: str = Field(min_length=1, pattern=r"^[^\s/][^\s]*$")
    tiers: dict[Tier, str]
    classifier: str = "heuristic"
    """``heuristic``, or ``package.module:function`` taking the request, returning a tier."""
    balanced_tokens: int = Field(default=500, ge=1)
    premium_tokens: int = Field(default=4000, ge=1)
    schedule: list[TierWindow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _all_tiers(self) -> TieredConfig:
        missing = [t for t in TIER_ORDER if t not in self.tiers]
        if missing:
            raise ValueError(f"tiers needs a group for {', '.join(missing)}")
        return self


class Variant(_Strict):
    group: str
    weight: float = Field(default=1.0, gt=0)


class ExperimentConfig(_Strict):
    """A virtual model split between variant groups by weight, sticky per user."""

    name: str = Field(min_length=1, pattern=r"^[^\s/][^\s]*$")
    variants: list[Variant] = Field(min_length=2)


class ModelsFile(_Strict):
    models: list[ModelGroupConfig] = Field(default_factory=list)
    budget: BudgetConfig | None = None
    """The whole installation's spend, every caller and group together."""
    user_tiers: list[UserTierConfig] = Field(default_factory=list)
    tiered: list[TieredConfig] = Field(default_factory=list)
    experiments: list[ExperimentConfig] = Field(default_factory=list)
    sso: SsoConfig | None = None
    """Single sign-on: OpenID Connect providers (``config/sso.py``)."""

    @model_validator(mode="after")
    def _unique_names(self) -> ModelsFile:
        seen: set[str] = set()
        for group in self.models:
            if group.name in seen:
                raise ValueError(f"model group {group.name!r} is defined twice")
            seen.add(group.name)
        labels: set[str] = set()
        for group in self.models:
            for dep in group.deployments:
                label = dep.label(group.name)
                if label in labels:
                    raise ValueError(
                        f"deployment {label!r} appears twice: give each a distinct `name`"
                    )
                labels.add(label)
        for name in [t.name for t in self.tiered] + [e.name for e in self.experiments]:
            if name in seen:
                raise ValueError(f"model name {name!r} is defined twice")
            seen.add(name)
        groups = {g.name for g in self.models}
        for tiered in self.tiered:
            for tier, target in tiered.tiers.items():
                if target not in groups:
                    raise ValueError(
                        f"tiered {tiered.name!r}: tier {tier} names unknown group {target!r}"
                    )
        for experiment in self.experiments:
            for variant in experiment.variants:
                if variant.group not in groups:
                    raise ValueError(
                        f"experiment {experiment.name!r}: "
                        f"variant names unknown group {variant.group!r}"
                    )
        tier_names = [t.name for t in self.user_tiers]
        if len(set(tier_names)) != len(tier_names):
            raise ValueError("user_tiers: a tier name appears twice")
        for group in self.models:
            if group.downgrade is not None:
                if group.downgrade.to not in groups:
                    raise ValueError(
                        f"model group {group.name!r}: downgrade names unknown group "
                        f"{group.downgrade.to!r}"
                    )
                if group.downgrade.to == group.name:
                    raise ValueError(f"model group {group.name!r} downgrades to itself")
        for group in self.models:
            for kind in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
                for target in getattr(group, kind):
                    if target not in groups:
                        raise ValueError(
                            f"model group {group.name!r}: {kind} names unknown group {target!r}"
                        )
                    if target == group.name:
                        raise ValueError(f"model group {group.name!r} falls back to itself")
        return self
