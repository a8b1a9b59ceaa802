"""Turn a model file (or the environment, when there is none) into resolved model groups.

Two stages: the file is parsed into ``ModelsFile`` (schema errors name the path of the bad
field), then secret references are resolved against the environment (a missing variable is
an error naming the deployment). Every problem is collected, so one run shows them all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from parley.config import litellm
from parley.config.egress import (
    DIRECT,
    Egress,
    Proxy,
    ProxyConfig,
    environment_proxy,
    parse_proxy,
)
from parley.config.models import (
    DEFAULT_AZURE_API_VERSION,
    BackoffConfig,
    BudgetConfig,
    CacheConfig,
    CircuitBreakerConfig,
    DeploymentConfig,
    DowngradeConfig,
    ExperimentConfig,
    GroupLimits,
    HealthCheckConfig,
    ModelGroupConfig,
    ModelsFile,
    PriceConfig,
    ProviderName,
    QueueConfig,
    Strategy,
    StrategyWeights,
    TieredConfig,
    TimeoutConfig,
    UserTierConfig,
)
from parley.config.secrets import Secret, reference_name, resolve
from parley.config.sso import OidcProvider, OidcProviderConfig, SsoConfig, SsoSettings
from parley.errors import ConfigError


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """What SigV4 signs with: a region and a key pair, with a session token when the keys
    are temporary (STS). Its repr shows no secret (each is a ``Secret``)."""

    region: str
    access_key_id: Secret
    secret_access_key: Secret
    session_token: Secret | None = None

    def secrets(self) -> list[Secret]:
        values = [self.access_key_id, self.secret_access_key]
        return values if self.session_token is None else [*values, self.session_token]


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream endpoint, secrets resolved. Its repr never shows a secret."""

    group: str
    label: str
    provider: ProviderName
    model: str
    api_base: str
    api_key: Secret | None
    api_version: str
    azure_ad_token: Secret | None
    timeout: TimeoutConfig
    max_connections: int
    extra_headers: Mapping[str, str]
    allow_client_api_base: bool
    refused_params: frozenset[str] = frozenset()
    price: PriceConfig | None = None
    """From the config file, over Parley's price catalog field by field
    (``gateway/accounting/cost.py``)."""
    weight: float = 1.0
    order: int = 1
    max_concurrency: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_context_tokens: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    health_check: HealthCheckConfig | None = None
    aws: AwsCredentials | None = None
    """Bedrock's SigV4 credentials (``None``: Bedrock with an API key, or another family)."""
    proxy: Proxy | None = None
    """The forward proxy its requests go through (``config/egress.py``), or None."""
    budget: BudgetConfig | None = None


@dataclass(frozen=True, slots=True)
class ModelGroup:
    """A model group: its deployments and how requests are routed among them and beyond."""

    name: str
    deployments: tuple[Deployment, ...]
    drop_params: bool | None = None
    limits: GroupLimits = field(default_factory=GroupLimits)
    strategy: Strategy = "ordered"
    strategy_weights: StrategyWeights = field(default_factory=StrategyWeights)
    allow_strategy_override: bool = False
    fallbacks: tuple[str, ...] = ()
    context_window_fallbacks: tuple[str, ...] = ()
    content_policy_fallbacks: tuple[str, ...] = ()
    retries: int = 2
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    circuit_breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    max_concurrency: int | None = None
    queue: QueueConfig = field(default_factory=QueueConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    budget: BudgetConfig | None = None
    max_cost_usd: float | None = None
    downgrade: DowngradeConfig | None = None

    @property
    def concurrency(self) -> int | None:
        """The group's concurrency cap: its own, else the sum of its deployments' caps when
        every deployment has one, else none."""
        if self.max_concurrency is not None:
            return self.max_concurrency
        caps = [d.max_concurrency for d in self.deployments]
        if caps and all(c is not None for c in caps):
            return sum(c for c in caps if c is not None)
        return None


@dataclass(slots=True)
class LoadedModels:
    groups: list[ModelGroup]
    source: str
    notes: list[str] = field(default_factory=list)
    tiered: list[TieredConfig] = field(default_factory=list)
    experiments: list[ExperimentConfig] = field(default_factory=list)
    budget: BudgetConfig | None = None
    """The installation's budget (the model file's top-level ``budget``)."""
    user_tiers: list[UserTierConfig] = field(default_factory=list)
    sso: SsoSettings | None = None
    """The OpenID Connect providers (the file's ``sso`` section), secrets resolved."""

    def secrets(self) -> list[str]:
        """Every resolved secret value, so log and error scrubbing can redact them."""
        values: list[str] = [] if self.sso is None else self.sso.secrets()
        for group in self.groups:
            for dep in group.deployments:
                for secret in (dep.api_key, dep.azure_ad_token):
                    if secret is not None:
                        values.append(secret.reveal())
                if dep.aws is not None:
                    values += [secret.reveal() for secret in dep.aws.secrets()]
                if dep.proxy is not None and dep.proxy.authorization is not None:
                    values.append(dep.proxy.authorization.reveal())
        return values


def load_models(path: Path | None, environ: Mapping[str, str] | None = None) -> LoadedModels:
    env = os.environ if environ is None else environ
    if path is None:
        raw, source = default_models_from_env(env), "environment"
        notes: list[str] = []
    else:
        raw, notes = read_model_file(path)
        source = str(path)
    parsed = parse_models(raw)
    return LoadedModels(
        resolve_groups(parsed, env),
        source,
        notes,
        parsed.tiered,
        parsed.experiments,
        parsed.budget,
        parsed.user_tiers,
        resolve_sso(parsed.sso, env),
    )


def resolve_sso(config: SsoConfig | None, env: Mapping[str, str]) -> SsoSettings | None:
    """The ``sso`` section with its client secrets and proxies resolved; None when it names
    no provider. A missing variable is a ``ConfigError`` naming where, as for deployments."""
    if config is None or not config.providers:
        return None
    problems: list[str] = []
    providers = tuple(
        OidcProvider(
            provider,
            _resolve_optional(
                provider.client_secret, f"sso.providers[{i}]", "client_secret", env, problems
            ),
            _sso_egress(provider, f"sso.providers[{i}]", env, problems),
        )
        for i, provider in enumerate(config.providers)
    )
    if problems:
        raise ConfigError(problems)
    return SsoSettings(config.only, providers, config.flow_seconds)


def read_model_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from exc
    if data is None:
        return {"models": []}, []
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping"])
    if litellm.is_litellm_config(data):
        try:
            return litellm.convert(data)
        except ValueError as exc:
            raise ConfigError([str(exc)]) from exc
    return data, []


def parse_models(raw: dict[str, Any]) -> ModelsFile:
    try:
        return ModelsFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([describe_error(error, raw) for error in exc.errors()]) from None


def describe_error(error: Any, raw: dict[str, Any]) -> str:
    """``models.chat-fast.deployments[1].api_base: ...``: group names read better than indexes."""
    loc: tuple[Any, ...] = tuple(error["loc"])
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        name = None
        if isinstance(item, int) and isinstance(node, list) and item < len(node):
            child = node[item]
            if (
                parts == ["models"]
                and isinstance(child, dict)
                and isinstance(child.get("name"), str)
            ):
                name = child["name"]
            node = child
        elif isinstance(node, dict):
            node = node.get(item)
        if isinstance(item, int):
            if name is not None:
                parts.append(f".{name}")
            else:
                parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else str(item))
    path = "".join(parts) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{path}: {message}"


def resolve_groups(parsed: ModelsFile, env: Mapping[str, str]) -> list[ModelGroup]:
    problems: list[str] = []
    groups: list[ModelGroup] = []
    for group in parsed.models:
        deployments = []
        for index, dep in enumerate(group.deployments):
            where = f"models.{group.name}.deployments[{index}]"
            api_key = _resolve_optional(dep.api_key, where, "api_key", env, problems)
            token = _resolve_optional(dep.azure_ad_token, where, "azure_ad_token", env, problems)
            aws = _aws_credentials(dep, where, env, problems)
            proxy = _proxy(dep, where, env, problems)
            if dep.enabled:  # a disabled one is checked all the same, but sent nothing
                deployments.append(_deployment(group, dep, api_key, token, aws=aws, proxy=proxy))
        groups.append(_group(group, deployments))
    if problems:
        raise ConfigError(problems)
    return groups


def _resolve_optional(
    ref: str | None, where: str, key: str, env: Mapping[str, str], problems: list[str]
) -> Secret | None:
    if ref is None:
        return None
    try:
        return resolve(ref, env)
    except KeyError:
        problems.append(f"{where}.{key}: environment variable {reference_name(ref)} is not set")
        return None


def _proxy(
    dep: DeploymentConfig, where: str, env: Mapping[str, str], problems: list[str]
) -> Proxy | None:
    """The deployment's ``proxy:``, else the environment's choice for its ``api_base``."""
    if dep.proxy is None:
        try:
            return environment_proxy(dep.effective_api_base(), env)
        except ValueError as exc:
            problems.append(f"{where}.proxy: {exc}")
            return None
    return _configured_proxy(dep.proxy, where, env, problems)


def _sso_egress(
    provider: OidcProviderConfig, where: str, env: Mapping[str, str], problems: list[str]
) -> Egress:
    """The provider's ``proxy:`` for all its requests, else the environment's variables,
    applied per request (its endpoints need not share the issuer's host). An unusable
    environment proxy is reported here, at start-up, not at the first sign-in."""
    if provider.proxy is None:
        egress = Egress.from_environment(env)
        try:
            egress.proxy_for(provider.issuer)
        except ValueError as exc:
            problems.append(f"{where}.proxy: {exc}")
        return egress
    return Egress(_configured_proxy(provider.proxy, where, env, problems))


def _configured_proxy(
    configured: str | ProxyConfig, where: str, env: Mapping[str, str], problems: list[str]
) -> Proxy | None:
    """A ``proxy:`` from the file (a URL, ``direct``, or the object form whose password is
    a reference), the same for deployments and SSO providers."""
    try:
        if isinstance(configured, str):
            return None if configured == DIRECT else parse_proxy(configured)
        if urlsplit(configured.url).password is not None:
            problems.append(f"{where}.proxy.url: put the password in proxy.password as a reference")
            return None
        password = _resolve_optional(
            configured.password, f"{where}.proxy", "password", env, problems
        )
        if configured.password is not None and password is None:
            return None
        return parse_proxy(configured.url, configured.username, password)
    except ValueError as exc:
        problems.append(f"{where}.proxy: {exc}")
        return None


def _aws_credentials(
    dep: DeploymentConfig, where: str, env: Mapping[str, str], problems: list[str]
) -> AwsCredentials | None:
    if dep.aws_region is None or dep.aws_access_key_id is None:
        return None
    key_id = _resolve_optional(dep.aws_access_key_id, where, "aws_access_key_id", env, problems)
    secret = _resolve_optional(
        dep.aws_secret_access_key, where, "aws_secret_access_key", env, problems
    )
    token = _resolve_optional(dep.aws_session_token, where, "aws_session_token", env, problems)
    if key_id is None or secret is None:
        return None  # the problem is recorded; start-up fails with it
    return AwsCredentials(dep.aws_region, key_id, secret, token)


def _group(group: ModelGroupConfig, deployments: list[Deployment]) -> ModelGroup:
    return ModelGroup(
        name=group.name,
        deployments=tuple(deployments),
        drop_params=group.drop_params,
        limits=group.limits,
        strategy=group.strategy,
        strategy_weights=group.strategy_weights,
        allow_strategy_override=group.allow_strategy_override,
        fallbacks=tuple(group.fallbacks),
        context_window_fallbacks=tuple(group.context_window_fallbacks),
        content_policy_fallbacks=tuple(group.content_policy_fallbacks),
        retries=group.retries,
        backoff=group.backoff,
        circuit_breaker=group.circuit_breaker,
        max_concurrency=group.max_concurrency,
        queue=group.queue,
        cache=group.cache,
        budget=group.budget,
        max_cost_usd=group.max_cost_usd,
        downgrade=group.downgrade,
    )


def _deployment(
    group_config: ModelGroupConfig,
    dep: DeploymentConfig,
    api_key: Secret | None,
    token: Secret | None,
    *,
    aws: AwsCredentials | None = None,
    proxy: Proxy | None = None,
) -> Deployment:
    group = group_config.name
    timeout = dep.timeout
    if "timeout" not in dep.model_fields_set and group_config.timeout is not None:
        timeout = group_config.timeout
    return Deployment(
        group=group,
        label=dep.label(group),
        provider=dep.provider,
        model=dep.model,
        api_base=dep.effective_api_base(),
        api_key=api_key,
        api_version=dep.api_version or DEFAULT_AZURE_API_VERSION,
        azure_ad_token=token,
        timeout=timeout,
        max_connections=dep.max_connections,
        extra_headers=dict(dep.extra_headers),
        allow_client_api_base=dep.allow_client_api_base,
        refused_params=frozenset(dep.refused_params),
        price=dep.price,
        weight=dep.weight,
        order=dep.order,
        max_concurrency=dep.max_concurrency,
        rpm=dep.rpm,
        tpm=dep.tpm,
        max_context_tokens=dep.max_context_tokens,
        tags=dict(dep.tags),
        health_check=dep.health_check,
        aws=aws,
        proxy=proxy,
        budget=dep.budget,
    )


# Model ids registered when no config file is given. Deliberately few: a team that needs
# more writes a config file.
_ENV_DEFAULTS: dict[str, tuple[ProviderName, list[str]]] = {
    "OPENAI_API_KEY": ("openai", ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]),
    "ANTHROPIC_API_KEY": ("anthropic", ["claude-sonnet-4-5", "claude-haiku-4-5"]),
    "GEMINI_API_KEY": ("gemini", ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-embedding-001"]),
}


def default_models_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """One group per well-known model for each provider whose standard key variable is set."""
    groups: list[dict[str, Any]] = []
    for variable, (provider, models) in _ENV_DEFAULTS.items():
        if not env.get(variable):
            continue
        base_var = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}.get(provider)
        for model in models:
            dep: dict[str, Any] = {
                "provider": provider,
                "model": model,
                "api_key": f"os.environ/{variable}",
            }
            if base_var and env.get(base_var):
                dep["api_base"] = env[base_var]
            groups.append({"name": model, "deployments": [dep]})
    if env.get("AZURE_OPENAI_API_KEY") and env.get("AZURE_OPENAI_ENDPOINT"):
        deployment = env.get("AZURE_OPENAI_DEPLOYMENT", "gpt-4o-mini")
        groups.append(
            {
                "name": f"azure/{deployment}"
                if any(g["name"] == deployment for g in groups)
                else deployment,
                "deployments": [
                    {
                        "provider": "azure",
                        "model": deployment,
                        "api_base": env["AZURE_OPENAI_ENDPOINT"],
                        "api_key": "os.environ/AZURE_OPENAI_API_KEY",
                        "api_version": env.get("OPENAI_API_VERSION", DEFAULT_AZURE_API_VERSION),
                    }
                ],
            }
        )
    return {"models": groups}
