"""What the rest of Parley needs from an event bus, and the subjects it uses.

Two kinds of message travel on it:

- **Conversation events**, published by the outbox relay (``chat/outbox.py``) with a
  message id, durably: JetStream drops a republished duplicate, and consumers drop what
  they have seen by (conversation, version), so delivery is at least once and handling is
  idempotent.
- **Generation frames** (an answer's start, deltas and end), emitted without waiting for
  an acknowledgement. With NATS they are kept for a while so a client can follow an answer
  from its start on any instance (``replay``); in process, the generation itself keeps
  them.

Subjects are ``<namespace>.u.<owner>.ev.<conversation>`` and
``<namespace>.u.<owner>.gen.<conversation>.<message>``, so one subscription to
``<namespace>.u.<owner>.>`` sees everything of one user.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Protocol

from parley.errors import ServiceUnavailable

Handler = Callable[[str, bytes], None]
"""Called with (subject, data) for each message, on the event loop; must not block."""

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")


class BusError(ServiceUnavailable):
    code = "event_bus_unavailable"


class Subscription(Protocol):
    async def unsubscribe(self) -> None: ...


class Bus(Protocol):
    keeps_history: bool
    """Whether ``replay`` can give back what was emitted (NATS JetStream), or nothing is
    kept once delivered (the in-process bus)."""

    reconnected: list[Callable[[], None]]
    """Called after the connection to the bus came back: live subscriptions missed what
    was published meanwhile, so whoever relies on them must resynchronise."""

    async def start(self) -> None: ...

    async def publish(self, messages: list[tuple[str, bytes, str]]) -> None:
        """Publish (subject, data, message id) in order and wait until the bus holds them
        all; raises ``BusError`` if it cannot."""

    async def emit(self, subject: str, data: bytes) -> None:
        """Send without waiting for storage (generation frames); best effort."""

    async def subscribe(self, pattern: str, handler: Handler) -> Subscription:
        """Live delivery of what is published from now on to subjects matching ``pattern``
        (NATS wildcards: ``*`` one token, ``>`` the rest)."""

    def replay(self, subject: str, idle_s: float) -> AsyncGenerator[bytes, None] | None:
        """Everything kept for ``subject`` from the first message, then live ones, until
        the caller stops or nothing arrives for ``idle_s`` (raises ``TimeoutError``);
        ``None`` when this bus keeps no history."""

    async def has(self, subject: str) -> bool:
        """Whether any message is kept for ``subject``."""

    async def close(self) -> None: ...


def token(value: str) -> str:
    """An id as one subject token; anything that could widen a subject is refused."""
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"not a subject token: {value[:40]!r}")
    return value


@dataclass(frozen=True, slots=True)
class Subjects:
    """The subjects of one Parley deployment (several can share a NATS server)."""

    namespace: str = "parley"

    def user(self, owner_id: str) -> str:
        return f"{self.namespace}.u.{token(owner_id)}.>"

    def event(self, owner_id: str, conversation_id: str) -> str:
        return f"{self.namespace}.u.{token(owner_id)}.ev.{token(conversation_id)}"

    def generation(self, owner_id: str, conversation_id: str, message_id: str) -> str:
        return (
            f"{self.namespace}.u.{token(owner_id)}.gen.{token(conversation_id)}.{token(message_id)}"
        )

    @property
    def stop(self) -> str:
        """Requests to stop a generation, heard by every instance."""
        return f"{self.namespace}.ctl.stop"

    @property
    def revoked(self) -> str:
        """Login sessions just revoked, heard by every instance (their sockets close)."""
        return f"{self.namespace}.ctl.revoked"

    @property
    def models(self) -> str:
        """Model groups changed in the database (``/admin/models``): every instance
        reloads them."""
        return f"{self.namespace}.ctl.models"

    @property
    def events_pattern(self) -> str:
        return f"{self.namespace}.u.*.ev.*"

    @property
    def generations_pattern(self) -> str:
        return f"{self.namespace}.u.*.gen.*.*"

    def parse(self, subject: str) -> tuple[str, str, str, str | None]:
        """(owner, kind ``ev``/``gen``, conversation, message or None) of a user subject."""
        parts = subject[len(self.namespace) + 1 :].split(".")
        if len(parts) == 4 and parts[2] == "ev":
            return parts[1], "ev", parts[3], None
        if len(parts) == 5 and parts[2] == "gen":
            return parts[1], "gen", parts[3], parts[4]
        raise ValueError(f"not a user subject: {subject}")


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, part in enumerate(want):
        if part == ">":
            return len(have) > i
        if i >= len(have) or (part != "*" and part != have[i]):
            return False
    return len(want) == len(have)
