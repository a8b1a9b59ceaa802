"""Which request parameters a provider cannot honour, and what to do about them.

With ``drop_params`` they are removed and reported in a response header; without it the
request is refused with a 400 naming the first such parameter, so nobody believes a
``seed`` or ``n`` was honoured when it was not.
"""

from __future__ import annotations

from typing import Any

import msgspec

from parley.errors import UnsupportedParameter
from parley.gateway.types import ChatRequest

# Values that ask for nothing beyond the default, so any provider honours them.
_HARMLESS: dict[str, Any] = {"n": 1, "parallel_tool_calls": True, "logprobs": False}


def unsupported_in(request: ChatRequest, unsupported: frozenset[str]) -> list[str]:
    found = []
    for name in sorted(unsupported):
        value = getattr(request, name, None)
        if value is None or (name in _HARMLESS and value == _HARMLESS[name]):
            continue
        found.append(name)
    return found


def apply_drop_params(
    request: ChatRequest, unsupported: frozenset[str], *, drop: bool, deployment: str
) -> tuple[ChatRequest, list[str]]:
    names = unsupported_in(request, unsupported)
    if not names:
        return request, []
    if not drop:
        raise UnsupportedParameter(
            f"parameter {names[0]!r} is not supported by {deployment}; remove it or enable "
            "drop_params to have Parley drop it",
            param=names[0],
        )
    cleared = dict.fromkeys(names)
    return msgspec.structs.replace(request, **cleared), names
