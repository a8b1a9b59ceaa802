"""Message content is a list of parts; what reads it as text (history for the model,
search, exports, replays) reads it here, and what accepts parts from outside (imports)
checks them here.

Parts: ``{"type": "text", "text"}``, ``{"type": "image", "url"}`` (a reference, never the
bytes: ``https:``, ``data:`` or an export's own scheme such as ChatGPT's
``file-service://``), ``{"type": "tool_call", "id", "name", "arguments"}`` (arguments as
the model's JSON text) and ``{"type": "tool_result", "tool_call_id", "content"}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from parley.errors import InvalidRequest

PART_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "image": ("url",),
    "tool_call": ("id", "name", "arguments"),
    "tool_result": ("tool_call_id", "content"),
}


def text_of(parts: Iterable[dict[str, Any]]) -> str:
    """The text parts joined; other parts contribute nothing."""
    return "".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")


def text_part(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]


def checked(parts: object, where: str) -> list[dict[str, Any]]:
    """``parts`` if it is a list of known parts, each with its string fields (extra fields
    are dropped); else a 400 naming the first bad part."""
    if not isinstance(parts, list):
        raise InvalidRequest("content must be a list of parts", param=where)
    clean = []
    for index, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        fields = PART_FIELDS.get(kind) if isinstance(kind, str) else None
        if fields is None:
            raise InvalidRequest(
                f"a part's type must be one of {', '.join(PART_FIELDS)}",
                param=f"{where}[{index}].type",
            )
        assert isinstance(part, dict)
        for name in fields:
            if not isinstance(part.get(name), str):
                raise InvalidRequest(
                    f"a {kind} part needs {name} as a string", param=f"{where}[{index}].{name}"
                )
        clean.append({"type": kind, **{name: part[name] for name in fields}})
    return clean
