"""Request bodies shared by the JSON routers: a strict base (unknown fields are a 400,
not silently dropped) and the chat settings conversations and presets both carry."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatSettings(Body):
    """What a conversation (or a preset) sends with every message."""

    system_prompt: str | None = Field(default=None, max_length=100_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)


def settings_dict(settings: ChatSettings | None) -> dict[str, Any] | None:
    return None if settings is None else settings.model_dump(exclude_none=True)
