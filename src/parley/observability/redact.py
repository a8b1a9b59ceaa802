"""Keep secrets out of logs and error bodies.

Two nets: every configured secret value (registered at startup) is replaced wherever it
appears, and common credential shapes (bearer tokens, provider key prefixes) are masked
even when Parley never saw them configured (an upstream echoing a client's key, say).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

MASK = "***"
_PATTERNS = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(sk-(?:proj-|ant-)?[A-Za-z0-9_-]{8,})"
    r"|\b(pk-[A-Za-z0-9_-]{8,})"
    r"|\b(AIza[0-9A-Za-z_-]{20,})"
)


def _may_hold_key(text: str) -> bool:
    """Whether ``_PATTERNS`` can match: each of its shapes starts with one of these words.
    Checking first is what makes scrubbing cheap: the case-insensitive pattern, tried at
    every position of every logged value, was most of the cost of a log line."""
    folded = text.casefold()
    return "bearer" in folded or "sk-" in folded or "pk-" in folded or "aiza" in folded


class Redactor:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._literal: re.Pattern[str] | None = None

    def register(self, values: Iterable[str]) -> None:
        # Very short values would mask ordinary words; real keys are long. A value is also
        # known by its JSON spelling, since JSON log lines are scrubbed after rendering.
        for value in values:
            if len(value) >= 6:
                self._secrets.add(value)
                self._secrets.add(_json_spelling(value))
        if self._secrets:
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._literal = re.compile("|".join(re.escape(v) for v in ordered))

    def scrub(self, text: str) -> str:
        if self._literal is not None:
            text = self._literal.sub(MASK, text)
        if _may_hold_key(text):
            return _PATTERNS.sub(_mask_match, text)
        return text

    def scrub_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub_value(v) for v in value)
        return value


def _json_spelling(value: str) -> str:
    return msgspec.json.encode(value).decode()[1:-1]


def _mask_match(match: re.Match[str]) -> str:
    if match.group(1):
        return match.group(1) + MASK
    return MASK


# One per process: structlog's configuration is process-wide too.
redactor = Redactor()
