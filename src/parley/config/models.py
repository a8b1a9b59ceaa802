"""The model file's schema: model groups and their deployments.

Parsed with ``extra="forbid"`` so a typo is an error naming its path, not a silent default.
Later issues add keys (routing, limits, cache) here.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from parley.config.secrets import reference_name

ProviderName = Literal["openai", "azure", "anthropic", "gemini", "openai_compatible"]

DEFAULT_API_BASES: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}
DEFAULT_AZURE_API_VERSION = "2024-10-21"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutConfig(_Strict):
    """Seconds. ``first_byte`` bounds the wait for response headers and for each stream read."""

    connect: float = Field(default=5.0, gt=0)
    first_byte: float = Field(default=60.0, gt=0)
    total: float = Field(default=600.0, gt=0)


class PriceConfig(_Strict):
    """USD per million tokens; overrides Parley's built-in table for this deployment."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    """Defaults to the input price when the provider does not discount cached tokens."""


class GroupLimits(_Strict):
    """Limits on the whole model group, summed over every caller and instance."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_parallel: int | None = Field(default=None, ge=1)


class DeploymentConfig(_Strict):
    provider: ProviderName
    model: str = Field(min_length=1)
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    azure_ad_token: str | None = None
    name: str | None = None
    timeout: TimeoutConfig = TimeoutConfig()
    max_connections: int = Field(default=100, ge=1)
    extra_headers: dict[str, str] = Field(default_factory=dict)
    allow_client_api_base: bool = False
    """SSRF guard: a request may name its own ``api_base`` only where an admin set this."""
    price: PriceConfig | None = None

    @field_validator("api_key", "azure_ad_token")
    @classmethod
    def _must_be_reference(cls, value: str | None) -> str | None:
        if value is not None:
            reference_name(value)
        return value

    @field_validator("api_base")
    @classmethod
    def _must_be_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
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
        return self

    def effective_api_base(self) -> str:
        base = self.api_base or DEFAULT_API_BASES.get(self.provider)
        assert base is not None  # guaranteed by _provider_requirements
        return base

    def label(self, group: str) -> str:
        return self.name or f"{group}/{self.provider}/{self.model}"


class ModelGroupConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[^\s/][^\s]*$")
    deployments: list[DeploymentConfig] = Field(min_length=1)
    drop_params: bool | None = None
    """Overrides the process-wide ``PARLEY_DROP_PARAMS`` for this group."""
    limits: GroupLimits = GroupLimits()


class ModelsFile(_Strict):
    models: list[ModelGroupConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> ModelsFile:
        seen: set[str] = set()
        for group in self.models:
            if group.name in seen:
                raise ValueError(f"model group {group.name!r} is defined twice")
            seen.add(group.name)
        return self
