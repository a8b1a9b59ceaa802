"""Shared fast state: limits, budgets, revocation and lockouts (in-process or Redis)."""

from parley.state.base import (
    Absent,
    BreakerSync,
    Check,
    Invalidate,
    ResponseStore,
    Settle,
    SharedEntries,
    Slot,
    Spend,
    StateBackend,
    Verdict,
    Window,
)

__all__ = [
    "Absent",
    "BreakerSync",
    "Check",
    "Invalidate",
    "ResponseStore",
    "Settle",
    "SharedEntries",
    "Slot",
    "Spend",
    "StateBackend",
    "Verdict",
    "Window",
]
