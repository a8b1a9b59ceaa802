"""NATS JetStream: the bus of the scaled-out tiers.

Two streams per namespace: ``<NS>_EVENTS`` keeps conversation events (a week by default;
a duplicate window drops what the outbox relay republishes after a crash) and ``<NS>_GEN``
keeps generation frames in memory for an hour, so a client can follow an answer from its
start on any instance. Live fan-out uses plain subscriptions: a message stored in a stream
is also delivered to every subscriber of its subject.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, DiscardPolicy, StorageType, StreamConfig

from parley.bus.base import BusError, Handler, Subjects
from parley.observability.logging import get_logger

log = get_logger(__name__)


@contextlib.contextmanager
def _mapped(what: str) -> Iterator[None]:
    try:
        yield
    except (nats.errors.Error, OSError) as exc:
        raise BusError(f"event bus unavailable ({what}): {type(exc).__name__}") from exc


@dataclass(slots=True)
class _Subscription:
    sub: NatsSubscription

    async def unsubscribe(self) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self.sub.unsubscribe()


class NatsBus:
    keeps_history = True

    def __init__(
        self,
        url: str,
        subjects: Subjects,
        *,
        keep_events_s: float = 7 * 86400,
        keep_generations_s: float = 3600,
        generations_max_bytes: int = 256 * 1024 * 1024,
        duplicate_window_s: float = 120,
        publish_timeout_s: float = 10,
    ) -> None:
        self._url = url
        self._subjects = subjects
        prefix = subjects.namespace.upper().replace("-", "_")
        self.events_stream = f"{prefix}_EVENTS"
        self.generations_stream = f"{prefix}_GEN"
        self._streams = [
            StreamConfig(
                name=self.events_stream,
                subjects=[subjects.events_pattern],
                max_age=keep_events_s,
                duplicate_window=duplicate_window_s,
                storage=StorageType.FILE,
            ),
            StreamConfig(
                name=self.generations_stream,
                subjects=[subjects.generations_pattern],
                max_age=keep_generations_s,
                max_bytes=generations_max_bytes,
                discard=DiscardPolicy.OLD,
                storage=StorageType.MEMORY,
            ),
        ]
        self._publish_timeout_s = publish_timeout_s
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self.reconnected: list[Callable[[], None]] = []

    async def start(self) -> None:
        with _mapped("connect"):
            self._nc = await nats.connect(
                self._url,
                name="parley",
                connect_timeout=5,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                allow_reconnect=True,
                error_cb=self._on_error,
                reconnected_cb=self._on_reconnected,
            )
            self._js = self._nc.jetstream(timeout=self._publish_timeout_s)
            for config in self._streams:
                await self._ensure(config)

    async def _ensure(self, config: StreamConfig) -> None:
        """Create the stream, or bring an existing one to this configuration."""
        assert self._js is not None
        try:
            await self._js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await self._js.update_stream(config)

    async def _on_reconnected(self) -> None:
        """nats-py subscribes again by itself, but what was published while the
        connection was down never reaches the live subscriptions: say so."""
        log.warning("event bus connection restored; live subscribers resynchronise")
        for hook in self.reconnected:
            hook()

    @staticmethod
    async def _on_error(exc: Exception) -> None:
        log.warning("event bus connection problem", error=type(exc).__name__)

    @property
    def _client(self) -> tuple[Client, JetStreamContext]:
        if self._nc is None or self._js is None:
            raise BusError("event bus not started")
        return self._nc, self._js

    async def publish(self, messages: list[tuple[str, bytes, str]]) -> None:
        _, js = self._client
        with _mapped("publish"):
            pending = [
                await js.publish_async(subject, data, headers={"Nats-Msg-Id": msg_id})
                for subject, data, msg_id in messages
            ]
            try:
                async with asyncio.timeout(self._publish_timeout_s):
                    await asyncio.gather(*pending)
            except TimeoutError:
                for future in pending:
                    future.cancel()
                raise BusError("event bus did not acknowledge in time") from None

    async def emit(self, subject: str, data: bytes) -> None:
        nc, _ = self._client
        try:
            await nc.publish(subject, data)
        except nats.errors.Error as exc:
            log.warning("could not emit on the event bus", error=type(exc).__name__)

    async def subscribe(self, pattern: str, handler: Handler) -> _Subscription:
        nc, _ = self._client

        async def deliver(msg: Msg) -> None:
            try:
                handler(msg.subject, msg.data)
            except Exception:  # one broken subscriber must not stop the connection's reader
                log.exception("bus subscriber failed", subject=msg.subject)

        with _mapped("subscribe"):
            return _Subscription(await nc.subscribe(pattern, cb=deliver))

    def replay(self, subject: str, idle_s: float) -> AsyncGenerator[bytes, None]:
        return self._replay(subject, idle_s)

    async def _replay(self, subject: str, idle_s: float) -> AsyncGenerator[bytes, None]:
        _, js = self._client
        with _mapped("replay"):
            sub = await js.subscribe(
                subject,
                stream=self.generations_stream,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
            )
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=idle_s)
                except nats.errors.TimeoutError:
                    raise TimeoutError(f"nothing on {subject} for {idle_s} s") from None
                yield msg.data
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def has(self, subject: str) -> bool:
        _, js = self._client
        try:
            await js.get_last_msg(self.generations_stream, subject)
        except nats.js.errors.NotFoundError:
            return False
        except nats.errors.Error as exc:
            raise BusError(f"event bus unavailable (lookup): {type(exc).__name__}") from exc
        return True

    async def delete_streams(self) -> None:
        """Drop this namespace's streams (tests and ``parley`` namespaces being retired)."""
        _, js = self._client
        for config in self._streams:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                assert config.name is not None
                await js.delete_stream(config.name)

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                await self._nc.drain()
        self._nc = self._js = None
