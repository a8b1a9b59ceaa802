"""Shared fast state: limits, budgets, revocation and lockouts (in-process or Redis)."""

from parley.state.base import Absent, Check, Settle, Slot, Spend, StateBackend, Verdict, Window

__all__ = ["Absent", "Check", "Settle", "Slot", "Spend", "StateBackend", "Verdict", "Window"]
