"""Message content is a list of parts (``{"type": "text", "text": ...}``, later images and
tool calls); what reads it as text (history for the model, search, exports, replays)
reads it here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def text_of(parts: Iterable[dict[str, Any]]) -> str:
    """The text parts joined; other parts contribute nothing."""
    return "".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")


def text_part(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]
