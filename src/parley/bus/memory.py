"""The in-process bus (the embedded tier): one process, so delivery is a function call.

Subscriptions are filed under the literal tokens before their first wildcard, so a
message (every answer delta is one) looks up the few subscriptions whose prefix it has,
not every connected user's. It keeps no history: in one process the running generation
itself holds its frames.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from parley.bus.base import Handler, matches
from parley.observability.logging import get_logger

log = get_logger(__name__)


@dataclass(eq=False, slots=True)
class _Subscription:
    bus: MemoryBus
    pattern: str
    handler: Handler

    @property
    def prefix(self) -> tuple[str, ...]:
        tokens = self.pattern.split(".")
        literal = next((i for i, t in enumerate(tokens) if t in ("*", ">")), len(tokens))
        return tuple(tokens[:literal])

    async def unsubscribe(self) -> None:
        filed = self.bus.subscriptions.get(self.prefix, [])
        if self in filed:
            filed.remove(self)
            if not filed:
                del self.bus.subscriptions[self.prefix]


class MemoryBus:
    keeps_history = False

    def __init__(self) -> None:
        self.subscriptions: dict[tuple[str, ...], list[_Subscription]] = {}
        """By the literal tokens before each pattern's first wildcard."""
        self.reconnected: list[Callable[[], None]] = []
        """Never called: an in-process bus has no connection to lose."""

    async def start(self) -> None:
        return None

    async def publish(self, messages: list[tuple[str, bytes, str]]) -> None:
        for subject, data, _ in messages:
            self._deliver(subject, data)

    async def emit(self, subject: str, data: bytes) -> None:
        self._deliver(subject, data)

    def _deliver(self, subject: str, data: bytes) -> None:
        tokens = tuple(subject.split("."))
        for end in range(len(tokens) + 1):
            for sub in list(self.subscriptions.get(tokens[:end], ())):
                if matches(sub.pattern, subject):
                    try:
                        sub.handler(subject, data)
                    except Exception:  # one broken subscriber must not stop the others
                        log.exception("bus subscriber failed", subject=subject)

    async def subscribe(self, pattern: str, handler: Handler) -> _Subscription:
        sub = _Subscription(self, pattern, handler)
        self.subscriptions.setdefault(sub.prefix, []).append(sub)
        return sub

    def replay(self, subject: str, idle_s: float) -> AsyncGenerator[bytes, None] | None:
        return None

    async def has(self, subject: str) -> bool:
        return False

    async def close(self) -> None:
        self.subscriptions.clear()
