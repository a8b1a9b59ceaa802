"""Answers from OpenAI-compatible servers that leave out what OpenAI always sends.

Several servers omit a completion's ``id``, ``created`` or ``model``, or a choice's
``index`` (in chunks too). Parley's types require them, so such answers used to become
protocol errors. The typed decode stays the only work for a complete answer; only when it
fails is the body read generically, the missing fields filled (a stream's id, time and
model once per stream, so every chunk agrees; an index from the choice's position), and
the result validated again. Anything still wrong is the caller's protocol error.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


class Fallback:
    """What to fill in: drawn on first use, then the same for every chunk of a stream."""

    __slots__ = ("_created", "_id", "model")

    def __init__(self, model: str) -> None:
        self.model = model
        self._id: str | None = None
        self._created: int | None = None

    @property
    def id(self) -> str:
        if self._id is None:
            self._id = "chatcmpl-" + uuid.uuid4().hex[:24]
        return self._id

    @property
    def created(self) -> int:
        if self._created is None:
            self._created = int(time.time())
        return self._created


def decode_filled(
    raw: bytes | str, decoder: msgspec.json.Decoder[T], kind: type[T], fallback: Fallback
) -> T:
    """Decode an answer, filling what the upstream left out. Raises msgspec's error (the
    first one, from the typed decode) when filling does not make it valid."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        first = exc
    data = msgspec.json.decode(raw)
    if not _fill(data, fallback):
        raise first
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError:
        raise first from None


def _fill(data: Any, fallback: Fallback) -> bool:
    """Fill in place; False when there was nothing to fill (the answer is just wrong)."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        return False
    filled = False
    for name in ("id", "created", "model"):
        if data.get(name) is None:
            data[name] = getattr(fallback, name)
            filled = True
    for position, choice in enumerate(data["choices"]):
        if isinstance(choice, dict) and choice.get("index") is None:
            choice["index"] = position
            filled = True
    return filled
