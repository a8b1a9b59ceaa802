"""Waiting for something another thread, process or instance does (a background flush,
pub/sub delivery, a model loading): poll a bounded number of times, never a clock
threshold on the thing measured."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


def eventually(check: Callable[[], bool], attempts: int = 200, pause: float = 0.05) -> None:
    """Return once ``check()`` holds; fail after ``attempts`` tries."""
    for _ in range(attempts):
        if check():
            return
        time.sleep(pause)
    raise AssertionError("condition never held")


async def eventually_async(
    check: Callable[[], bool | Awaitable[bool]], attempts: int = 200, pause: float = 0.05
) -> None:
    """``eventually`` inside an event loop (``check`` may be a coroutine function)."""
    for _ in range(attempts):
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return
        await asyncio.sleep(pause)
    raise AssertionError("condition never held")
