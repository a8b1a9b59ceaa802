"""Which request parameters a provider cannot honour, and what to do about them.

With ``drop_params`` they are removed and reported in a response header; without it the
request is refused with a 400 naming the first such parameter, so nobody believes a
``seed`` or ``n`` was honoured when it was not.

Three sources: the typed parameters an adapter cannot translate (``unsupported``), the
top-level fields Parley has no type for (``ChatRequest.extra``: forwarded only where the
adapter passes them through, i.e. ``openai_compatible``; OpenAI itself answers 400 for
them), and what a deployment's configuration lists as ``refused_params``.

Content parts an adapter cannot send (``RefusedPart``: a document Bedrock cannot take) go
the same way (``apply_drop_parts``): a 400 naming the part (``messages[2].content[1]``),
or, with ``drop_params``, the part removed and its path reported with the parameters.
"""

from __future__ import annotations

from typing import Any

import msgspec

from parley.errors import UnsupportedParameter
from parley.providers.base import RefusedPart
from parley.schema.chat import ChatRequest, Message, UserMessage

# Values that ask for nothing beyond the default, so any provider honours them.
_HARMLESS: dict[str, Any] = {
    "n": 1,
    "parallel_tool_calls": True,
    "logprobs": False,
    "store": False,
    "modalities": ["text"],
}


def unsupported_in(
    request: ChatRequest,
    unsupported: frozenset[str],
    *,
    refused: frozenset[str] = frozenset(),
    forwards_extra: bool = False,
) -> list[str]:
    """The parameters this request sets that the target cannot honour, typed ones first."""
    found = []
    for name in sorted(unsupported | refused):
        value = getattr(request, name, None)
        if value is None or (name in _HARMLESS and value == _HARMLESS[name]):
            continue
        found.append(name)
    if request.extra:
        found += sorted(n for n in request.extra if not forwards_extra or n in refused)
    return found


def apply_drop_params(
    request: ChatRequest,
    unsupported: frozenset[str],
    *,
    drop: bool,
    deployment: str,
    refused: frozenset[str] = frozenset(),
    forwards_extra: bool = False,
) -> tuple[ChatRequest, list[str]]:
    names = unsupported_in(request, unsupported, refused=refused, forwards_extra=forwards_extra)
    if not names:
        return request, []
    if not drop:
        raise UnsupportedParameter(
            f"parameter {names[0]!r} is not supported by {deployment}; remove it or enable "
            "drop_params to have Parley drop it",
            param=names[0],
        )
    extra = request.extra or {}
    cleared: dict[str, Any] = {name: None for name in names if name not in extra}
    if extra:
        kept = {name: value for name, value in extra.items() if name not in names}
        cleared["extra"] = kept or None
    return msgspec.structs.replace(request, **cleared), names


def apply_drop_parts(
    request: ChatRequest, refused: list[RefusedPart], *, drop: bool, deployment: str
) -> tuple[ChatRequest, list[str]]:
    """Refuse the first part ``deployment`` cannot take, or (``drop``) remove every such
    part and return their paths. A user message left with no part stays, empty: adapters
    send no turn for it."""
    if not refused:
        return request, []
    if not drop:
        first = refused[0]
        raise UnsupportedParameter(
            f"{first.reason}; {deployment} cannot take this content part: remove it or "
            "enable drop_params to have Parley drop it",
            param=first.param,
        )
    gone: dict[int, set[int]] = {}
    for part in refused:
        gone.setdefault(part.message, set()).add(part.part)
    messages: list[Message] = list(request.messages)
    for index, positions in gone.items():
        message = messages[index]
        if isinstance(message, UserMessage) and isinstance(message.content, list):
            kept = [p for at, p in enumerate(message.content) if at not in positions]
            messages[index] = msgspec.structs.replace(message, content=kept)
    return msgspec.structs.replace(request, messages=messages), [p.param for p in refused]
