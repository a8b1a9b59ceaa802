"""Process settings: the ``PARLEY_*`` environment, read once in the app factory or CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything about how this process runs; which models exist lives in the config file."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    config: Path | None = None
    """YAML file of model groups (Parley's format or a LiteLLM proxy config)."""

    drop_params: bool = False
    """When a provider cannot honour a parameter: drop it and warn (true) or refuse with 400."""

    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    stream_keepalive_seconds: float = Field(default=15.0, gt=0)
    drain_timeout_seconds: float = Field(default=30.0, ge=0)

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"
