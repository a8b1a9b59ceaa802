"""JSON request bodies for the framework routes, with a bound on how deeply they nest.

msgspec decodes nested arrays and objects by recursing, and past the interpreter's
recursion limit (about 1,000 levels) it raises ``RecursionError``: a 500 with a logged
traceback for one small hostile body, on unauthenticated routes too. No request Parley
accepts nests anywhere near :data:`MAX_JSON_DEPTH`, so anything deeper is a 400
``invalid_json`` before validation sees it; the bound is checked on the decoded value (an
iterative walk, so it cannot overflow the stack itself).
"""

from __future__ import annotations

from typing import Any

import msgspec

from parley.errors import InvalidRequest

MAX_JSON_DEPTH = 64
"""Levels of arrays and objects a framework route's body may nest (the top level is 1)."""


def too_deep(limit: int | None = MAX_JSON_DEPTH) -> InvalidRequest:
    """The 400 for a body nested past ``limit`` levels (``None``: past the decoder's own
    recursion limit, which ``/v1`` relies on instead of walking its hot-path bodies)."""
    bound = f" (the limit is {limit} levels)" if limit is not None else ""
    return InvalidRequest(f"request body nests JSON too deeply{bound}", code="invalid_json")


def decode_json(raw: bytes) -> Any:
    """``raw`` decoded; nesting past :data:`MAX_JSON_DEPTH` is :func:`too_deep`'s 400.
    Malformed JSON still raises ``msgspec.DecodeError`` for the caller to word."""
    try:
        value = msgspec.json.decode(raw)
    except RecursionError:
        raise too_deep() from None
    if deeper_than(value, MAX_JSON_DEPTH):
        raise too_deep()
    return value


def deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and dicts more than ``limit`` levels deep."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
