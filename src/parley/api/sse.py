"""Server-sent events to the client, with four guarantees the tests hold us to:

* a failure before the stream opened (limits, every deployment failing, a bad request)
  is an ordinary HTTP error with its own status, when it comes within ``keepalive``;
* an upstream failure mid-stream ends the stream with an ``error`` event and no ``[DONE]``,
  so no client mistakes a truncated answer for a finished one;
* a client that goes away cancels the upstream request (its connection is closed);
* silent gaps (a slow first token) are filled with SSE comments every
  ``keepalive`` seconds, so proxies with idle timeouts keep the connection open. Once one
  is sent the status is committed (200): later failures become error events, though the
  gateway still fails over invisibly until the first content byte.

The gateway's stream (opening it included) runs in one producer task for its whole life
(its deadlines are bound to that task); the response task forwards chunks from a small
queue, and a third task watches for ``http.disconnect``.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import msgspec
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from parley.errors import ParleyError, UpstreamProtocolError
from parley.observability.logging import get_logger
from parley.observability.redact import redactor
from parley.schema.chat import ChatCompletionChunk

log = get_logger(__name__)

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"
_END = object()
_GONE = object()
_encode = msgspec.json.Encoder().encode


def error_event(exc: ParleyError) -> bytes:
    body = exc.to_body()
    error = body["error"]
    assert isinstance(error, dict)
    error["message"] = redactor.scrub(str(error["message"]))
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


class OpenedStream(Protocol):
    @property
    def chunks(self) -> AsyncIterator[ChatCompletionChunk] | AsyncIterator[bytes]:
        """Chunks (sent as ``data:`` lines) or frames already rendered (sent as they are:
        ``/v1/messages`` renders Anthropic's named events)."""

    @property
    def headers(self) -> dict[str, str]: ...


Opener = Callable[[], AbstractAsyncContextManager[OpenedStream]]
ErrorRenderer = Callable[[ParleyError], Response]


class _Channel:
    """The producer's items to the response task: ``asyncio.Queue``'s contract as used
    here (``put`` waits while ``maxsize`` items are pending; ``get`` waits for one), with
    one waiter on each side and no loop lookup per call. Every chunk of every stream
    crosses it, which made the queue's own bookkeeping a visible share of a stream's CPU.
    ``put_nowait`` ignores the bound: only the disconnect watcher's one ``_GONE`` uses it,
    and it must not be lost to a full channel."""

    __slots__ = ("_getter", "_items", "_loop", "_maxsize", "_putter")

    def __init__(self, maxsize: int) -> None:
        self._items: collections.deque[object] = collections.deque()
        self._maxsize = maxsize
        self._loop = asyncio.get_running_loop()
        self._getter: asyncio.Future[None] | None = None
        self._putter: asyncio.Future[None] | None = None

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: object) -> None:
        self._items.append(item)
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)

    async def put(self, item: object) -> None:
        while len(self._items) >= self._maxsize:
            self._putter = self._loop.create_future()
            await self._putter
        self.put_nowait(item)

    def get_nowait(self) -> object:
        item = self._items.popleft()
        putter = self._putter
        if putter is not None:
            self._putter = None
            if not putter.done():
                putter.set_result(None)
        return item

    async def get(self) -> object:
        while not self._items:
            self._getter = self._loop.create_future()
            await self._getter
        return self.get_nowait()


class _Opened:
    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = headers


class SSEResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        opener: Opener,
        *,
        keepalive: float,
        render_error: ErrorRenderer,
        headers: Mapping[str, str] | None = None,
        done: bytes = DONE,
        render_error_event: Callable[[ParleyError], bytes] = error_event,
    ) -> None:
        super().__init__(
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})}
        )
        # Response.__init__ adds Content-Length: 0 for an empty body; a stream has none.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self._opener = opener
        self._render_error = render_error
        self._keepalive = keepalive
        self._done = done
        self._error_event = render_error_event

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        queue = _Channel(maxsize=64)
        producer = asyncio.create_task(self._produce(queue))
        watcher = asyncio.create_task(_watch_disconnect(receive, producer, queue))
        try:
            if not await self._start(queue, scope, receive, send, watcher):
                return
            complete = await self._forward(queue, send, watcher)
            if complete and self._done:
                await send({"type": "http.response.body", "body": self._done, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away while we were writing: the finally cleans up
        finally:
            for task in (producer, watcher):
                task.cancel()
            await asyncio.gather(producer, watcher, return_exceptions=True)

    async def _start(
        self,
        queue: _Channel,
        scope: Scope,
        receive: Receive,
        send: Send,
        watcher: asyncio.Task[None],
    ) -> bool:
        """Send the response start: 200 with the stream's headers once it opened, an error
        response if it failed first, or a bare 200 and a keep-alive if it takes longer
        than ``keepalive``. False when the exchange is already over."""
        try:
            async with asyncio.timeout(self._keepalive):
                item = await queue.get()
        except TimeoutError:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
            return True
        if isinstance(item, _Opened):
            extra = [(k.lower().encode(), v.encode()) for k, v in item.headers.items()]
            headers = self.raw_headers + extra
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            return True
        if isinstance(item, ParleyError):
            await self._render_error(item)(scope, receive, send)
            return False
        if item is _GONE or watcher.done():
            return False
        raise AssertionError(f"unexpected first stream item {item!r}")

    async def _forward(self, queue: _Channel, send: Send, watcher: asyncio.Task[None]) -> bool:
        """Send chunks until the end; True when the stream completed normally.

        Whatever the producer has queued is sent in one ``send``: an upstream read usually
        holds several chunks, and each send costs the ASGI stack and the socket more than
        the chunk's bytes. Only an empty queue is waited on, under the keep-alive timer."""
        while True:
            if watcher.done():
                return False
            if queue.empty():
                try:
                    async with asyncio.timeout(self._keepalive):
                        item = await queue.get()
                except TimeoutError:
                    await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
                    continue
            else:
                item = queue.get_nowait()
            frames: list[bytes] = []
            while True:
                frame = self._frame(item)
                if frame is None:
                    break  # not data: the stream's end, or an item to act on below
                frames.append(frame)
                if queue.empty():
                    item = None
                    break
                item = queue.get_nowait()
            if frames:
                body = frames[0] if len(frames) == 1 else b"".join(frames)
                await send({"type": "http.response.body", "body": body, "more_body": True})
            if item is None or isinstance(item, _Opened):
                continue  # (opened after the status was committed: its headers are too late)
            if item is _END:
                return True
            if item is _GONE:
                return False
            assert isinstance(item, ParleyError), f"unexpected stream item {item!r}"
            body = self._error_event(item)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            return False

    @staticmethod
    def _frame(item: object) -> bytes | None:
        """A data item's bytes on the wire; None for any other item."""
        if isinstance(item, bytes):
            return item
        if isinstance(item, ChatCompletionChunk):
            return b"data: " + _encode(item) + b"\n\n"
        return None

    async def _produce(self, queue: _Channel) -> None:
        opened = False
        try:
            async with self._opener() as stream:
                opened = True
                await queue.put(_Opened(stream.headers))
                async for chunk in stream.chunks:
                    await queue.put(chunk)
        except ParleyError as exc:
            if opened:
                log.warning("stream failed mid-way", error=exc.message)
            await queue.put(exc)
            return
        except Exception as exc:  # a bug must still end the stream honestly
            log.exception("stream failed unexpectedly")
            await queue.put(UpstreamProtocolError(f"stream failed: {type(exc).__name__}"))
            return
        await queue.put(_END)


async def _watch_disconnect(
    receive: Receive, producer: asyncio.Task[None], queue: _Channel
) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            producer.cancel()
            queue.put_nowait(_GONE)
            return
