"""Real-time fan-out: every open session of a user receives that user's conversation
events and answer frames, from whichever instance produced them.

One bus subscription per user with at least one session on this instance (not one per
session, not one for everybody), made on the first session and dropped with the last.
Events arrive at least once; the hub forwards an event only if its version is newer than
the last one it forwarded for that conversation, so a republished event is dropped here.

A session that falls ``queue_size`` messages behind is marked overflowed and closed by its
connection: the client reconnects and reloads, and the server never buffers without bound.
So is every session when the bus connection comes back after a drop (``missed_events``):
the subscriptions missed what was published meanwhile.

Each session also remembers the login session (``sid``) its access token belongs to. When
a login session is revoked (logout, logout everywhere, a password change, the user
disabled) ``revoke`` announces it on the bus; every instance, this one included, marks the
matching sessions ``revoked`` and their connections close at once, instead of serving
until the access token expires. One subscription per instance, no polling.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import msgspec

from parley.bus import Bus, Subjects, Subscription
from parley.bus.base import BusError
from parley.observability.logging import get_logger

log = get_logger(__name__)
QUIET_LIMIT = 64


class _Version(msgspec.Struct):
    version: int


class _Kind(msgspec.Struct):
    type: str


class _Revoked(msgspec.Struct, frozen=True):
    user_id: str
    session_ids: list[str]


@dataclass(eq=False, slots=True)
class Session:
    owner_id: str
    queue: asyncio.Queue[bytes]
    sid: str = ""
    """The login session whose token authenticated this connection (changes on re-auth)."""
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)
    revoked: asyncio.Event = field(default_factory=asyncio.Event)
    quiet_ids: set[str] = field(default_factory=set)
    """Answers whose deltas this connection does not want (it reads their own stream)."""

    def quiet(self, message_id: str) -> None:
        """No more deltas of this answer here; its start, error and done frames still come.
        Bounded: a client asks once per answer it streams, and each is dropped at its end."""
        if len(self.quiet_ids) < QUIET_LIMIT:
            self.quiet_ids.add(message_id)

    def wants(self, message_id: str | None, data: bytes) -> bool:
        """Whether this generation frame goes to this connection (a quieted answer's
        deltas do not; its last frame ends the quiet)."""
        if not message_id or message_id not in self.quiet_ids:
            return True
        kind = msgspec.json.decode(data, type=_Kind).type
        if kind == "done":
            self.quiet_ids.discard(message_id)
        return kind != "delta"

    def offer(self, frame: bytes) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed.set()


@dataclass(slots=True)
class _User:
    sessions: set[Session] = field(default_factory=set)
    subscription: Subscription | None = None
    seen: dict[str, int] = field(default_factory=dict)
    """Conversation id -> last event version forwarded."""


class Hub:
    def __init__(self, bus: Bus, subjects: Subjects, *, queue_size: int = 1000) -> None:
        self._bus = bus
        self._subjects = subjects
        self._queue_size = queue_size
        self._users: dict[str, _User] = {}
        self._lock = asyncio.Lock()
        self._revocations: Subscription | None = None

    async def start(self) -> None:
        """Hear revoked login sessions, from every instance (after the bus is started)."""
        self._revocations = await self._bus.subscribe(self._subjects.revoked, self._on_revoked)

    async def close(self) -> None:
        if self._revocations is not None:
            await self._revocations.unsubscribe()
            self._revocations = None

    async def revoke(self, user_id: str, session_ids: list[str]) -> None:
        """Tell every instance these login sessions are revoked. Best effort, like any
        emit: a lost notice leaves a socket open until its access token expires, as
        before."""
        if not session_ids:
            return
        notice = msgspec.json.encode(_Revoked(user_id, list(session_ids)))
        try:
            await self._bus.emit(self._subjects.revoked, notice)
        except BusError as exc:  # the revocation itself already holds (database, state)
            log.warning("could not announce revoked sessions", error=str(exc))

    def _on_revoked(self, _subject: str, data: bytes) -> None:
        try:
            notice = msgspec.json.decode(data, type=_Revoked)
        except msgspec.DecodeError:
            return
        user = self._users.get(notice.user_id)
        if user is None:
            return
        gone = set(notice.session_ids)
        for session in user.sessions:
            if session.sid in gone:
                session.revoked.set()

    async def join(self, owner_id: str, sid: str = "") -> Session:
        session = Session(owner_id, asyncio.Queue(self._queue_size), sid)
        async with self._lock:
            user = self._users.get(owner_id)
            if user is None:
                user = self._users[owner_id] = _User()
                user.subscription = await self._bus.subscribe(
                    self._subjects.user(owner_id), self._deliver
                )
            user.sessions.add(session)
        return session

    def missed_events(self) -> None:
        """The bus connection dropped and came back: events published meanwhile never
        reached this hub. Every connection is closed as one that fell behind (1013), so
        its client reconnects and reloads from the API, which holds everything."""
        for user in self._users.values():
            for session in user.sessions:
                session.overflowed.set()

    def counts(self) -> tuple[int, int]:
        """(WebSockets open, users they belong to) on this process, for the gauges."""
        return sum(len(u.sessions) for u in self._users.values()), len(self._users)

    async def leave(self, session: Session) -> None:
        async with self._lock:
            user = self._users.get(session.owner_id)
            if user is None:
                return
            user.sessions.discard(session)
            if not user.sessions:
                del self._users[session.owner_id]
                if user.subscription is not None:
                    await user.subscription.unsubscribe()

    def _deliver(self, subject: str, data: bytes) -> None:
        owner_id, kind, conversation_id, message_id = self._subjects.parse(subject)
        user = self._users.get(owner_id)
        if user is None:
            return
        if kind == "ev":
            version = msgspec.json.decode(data, type=_Version).version
            if version <= user.seen.get(conversation_id, 0):
                return  # a republished duplicate
            user.seen[conversation_id] = version
            frame = b'{"type":"event","event":' + data + b"}"
            for session in user.sessions:
                session.offer(frame)
            return
        frame = (
            b'{"type":"generation","conversation_id":"'
            + conversation_id.encode()
            + b'","message_id":"'
            + (message_id or "").encode()
            + b'","frame":'
            + data
            + b"}"
        )
        for session in user.sessions:
            if session.wants(message_id, data):
                session.offer(frame)
