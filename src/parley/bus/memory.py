"""The in-process bus (the embedded tier): one process, so delivery is a function call.

It keeps no history: in one process the running generation itself holds its frames.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from parley.bus.base import Handler, matches
from parley.observability.logging import get_logger

log = get_logger(__name__)


@dataclass(eq=False, slots=True)
class _Subscription:
    bus: MemoryBus
    pattern: str
    handler: Handler

    async def unsubscribe(self) -> None:
        if self in self.bus.subscriptions:
            self.bus.subscriptions.remove(self)


class MemoryBus:
    def __init__(self) -> None:
        self.subscriptions: list[_Subscription] = []

    async def start(self) -> None:
        return None

    async def publish(self, messages: list[tuple[str, bytes, str]]) -> None:
        for subject, data, _ in messages:
            self._deliver(subject, data)

    async def emit(self, subject: str, data: bytes) -> None:
        self._deliver(subject, data)

    def _deliver(self, subject: str, data: bytes) -> None:
        for sub in list(self.subscriptions):
            if matches(sub.pattern, subject):
                try:
                    sub.handler(subject, data)
                except Exception:  # one broken subscriber must not stop the others
                    log.exception("bus subscriber failed", subject=subject)

    async def subscribe(self, pattern: str, handler: Handler) -> _Subscription:
        sub = _Subscription(self, pattern, handler)
        self.subscriptions.append(sub)
        return sub

    def replay(self, subject: str, idle_s: float) -> AsyncIterator[bytes] | None:
        return None

    async def has(self, subject: str) -> bool:
        return False

    async def close(self) -> None:
        self.subscriptions.clear()
