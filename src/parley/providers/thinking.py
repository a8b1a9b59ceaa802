"""Claude's extended thinking, as a request asks for it: ``thinking`` as sent, or
``reasoning_effort`` as a budget, and the ``max_tokens`` the budget needs.

One table for every route to a Claude model: Anthropic's own API takes the object as
``thinking``, Bedrock's Converse API in ``additionalModelRequestFields.thinking`` (it hands
model-specific fields to the model unread), so both adapters ask here and the two cannot
drift apart. docs/api.md has the table.
"""

from __future__ import annotations

from typing import Any

import msgspec

from parley.errors import InvalidRequest
from parley.schema.chat import ChatRequest

DEFAULT_MAX_TOKENS = 4096
"""The cap sent when the client set none (Anthropic requires one)."""
REASONING_BUDGETS = {"minimal": 0, "low": 1024, "medium": 4096, "high": 16384}
"""``reasoning_effort`` as a thinking budget (0: no thinking)."""
MIN_BUDGET = 1024
"""Claude's smallest thinking budget."""


def claude_thinking(request: ChatRequest) -> tuple[dict[str, Any] | None, int]:
    """(``thinking`` to send or None, ``max_tokens`` to send with it).

    A budget must stay below ``max_tokens``. Only Parley's own default cap is raised above
    the budget (to budget + ``DEFAULT_MAX_TOKENS``); a client's ``max_tokens`` goes as
    sent, and a ``reasoning_effort`` budget is cut to fit under it (no thinking when that
    leaves less than ``MIN_BUDGET``). An explicit ``thinking`` goes as sent: what the
    model answers to a budget above the client's cap is the client's to see."""
    explicit = request.output_limit is not None
    cap = request.output_limit or DEFAULT_MAX_TOKENS
    thinking = _thinking(request, cap, explicit=explicit)
    if thinking is not None and not explicit:
        budget = thinking.get("budget_tokens") or 0
        if cap <= budget:
            cap = budget + DEFAULT_MAX_TOKENS
    return thinking, cap


def _thinking(request: ChatRequest, max_tokens: int, *, explicit: bool) -> dict[str, Any] | None:
    if request.thinking is not None:
        return msgspec.to_builtins(request.thinking)  # type: ignore[no-any-return]
    if request.reasoning_effort is None:
        return None
    budget = REASONING_BUDGETS.get(request.reasoning_effort)
    if budget is None:
        raise InvalidRequest(
            f"reasoning_effort must be one of {', '.join(REASONING_BUDGETS)}",
            param="reasoning_effort",
        )
    if explicit and budget >= max_tokens:
        budget = max_tokens - 1
    if budget < MIN_BUDGET:
        return None
    return {"type": "enabled", "budget_tokens": budget}
