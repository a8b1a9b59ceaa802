"""uvicorn's httptools protocol, with each response's bytes sent in one write.

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and the body when it sends ``http.response.body``: two ``send``
system calls for every non-streaming answer, and on loopback each one also runs the
receiving side's TCP processing in the sender's time. Here the connection's transport is
wrapped so that everything written during one pass of the event loop goes out in a single
write at the end of that pass. Nothing waits longer than the callbacks already queued in
the same pass; a stream's chunks still leave as they are produced, merged only when several
are ready at once.

The protocol also bounds how long a client may take to send its request (see
:class:`ServerLimits`), and how many connections one process holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from parley.api import shedding


class CoalescingTransport:
    """A transport whose writes in one loop pass are joined into one. Every other
    attribute is the wrapped transport's; closing or ending the stream sends what is
    pending first. A WebSocket upgrade hands this same object to uvicorn's WebSocket
    protocol, whose frames are coalesced alike."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(data)

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        pending = sum(len(chunk) for chunk in self._pending or ())
        return pending + self._transport.get_write_buffer_size()

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if not pending or self._transport.is_closing():
            return
        self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """How long a client may take to send a request, and how many connections one process
    holds (``PARLEY_HEADER_TIMEOUT_SECONDS``, ``PARLEY_BODY_TIMEOUT_SECONDS``,
    ``PARLEY_MAX_CONNECTIONS``). The app carries them as ``app.state.server_limits``; a bare
    ASGI app gets the defaults.

    Without them a client that opens a connection and sends nothing, dribbles its headers,
    or sends a shorter body than its ``Content-Length`` holds a connection (and, mid-body, a
    request task) for ever. Only reading the request is timed: a response (a stream, a long
    upstream wait) never is, and between requests uvicorn's keep-alive timeout applies.
    """

    header_seconds: float = 10.0
    """From the connection's opening, or a later request's first byte, to its headers' end."""
    body_seconds: float = 30.0
    """The longest silence while a request's body is being read."""
    max_connections: int = 4096
    """Open connections (WebSockets included); one more is answered 503 and closed."""
    shed_lag_seconds: float | None = 0.25
    """Event-loop lag past which new model calls are shed (``api/shedding.py``); None off."""
    on_shed: Callable[[], None] | None = None
    """Called for each request shed (the app counts them in its metrics)."""


DEFAULT_LIMITS = ServerLimits()

_IDLE, _HEADERS, _BODY = 0, 1, 2  # what the connection is waiting to read


def _json_error(status: bytes, message: str, error_type: str, code: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, with an OpenAI-shaped body."""
    error = {"message": message, "type": error_type, "param": None, "code": code}
    body = msgspec.json.encode({"error": error})
    return b"".join(
        [
            b"HTTP/1.1 " + status + b"\r\n",
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"retry-after: 1\r\n" if status.startswith(b"503") else b"",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


def _limits_of(app: Any) -> ServerLimits:
    limits = getattr(getattr(app, "state", None), "server_limits", None)
    return limits if isinstance(limits, ServerLimits) else DEFAULT_LIMITS


class ParleyHttpProtocol(HttpToolsProtocol):
    """What ``parley serve`` runs: uvicorn's own protocol over a coalescing transport.

    uvicorn wraps the app in its ``ProxyHeadersMiddleware`` unless told otherwise, which
    takes ``X-Forwarded-For`` from any peer in ``--forwarded-allow-ips`` (loopback by
    default) as the client: one header would choose the address the login lockout, rate
    limits and audit log key on. Parley resolves forwarded addresses itself
    (``PARLEY_TRUSTED_PROXIES``, ``api/proxies.py``), so the wrapper is taken off here,
    whoever configured the server.

    Reading a request is timed with one timer handle per connection, re-armed lazily: a
    phase change only moves ``_deadline``, and the timer, when it fires early, sleeps again
    until the deadline (no timer is made or cancelled per request or per body chunk).
    A connection past ``max_connections`` is answered 503 once its headers are in (a
    response the client reads as one, rather than a reset) and closed."""

    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        if isinstance(self.app, ProxyHeadersMiddleware):
            # on the config too: the WebSocket protocol an upgrade hands over to reads it
            config.loaded_app = self.app = self.app.app
        self._limits = _limits_of(self.app)
        self._phase = _IDLE
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._begun = False  # a byte of the awaited request has arrived
        self._refused = False
        self._shed_answer: bytes | None = None  # this request is refused (api/shedding.py)
        self._shed_at = self._limits.shed_lag_seconds or 0.0
        self._lag = shedding.monitor(self.loop) if self._shed_at else None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._refused = len(self.connections) > self._limits.max_connections
        self._await(_HEADERS, self._limits.header_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._phase = _IDLE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        if self._phase == _IDLE:  # a later request on a kept-alive connection
            self._await(_HEADERS, self._limits.header_seconds)

    def on_headers_complete(self) -> None:
        if self._refused:
            self._phase = _IDLE
            self.transport.write(_REFUSED)
            self.transport.close()
            return
        if self._lag is not None and self._lag.shedding(self._shed_at) and self._shed():
            return
        super().on_headers_complete()
        self._await(_BODY, self._limits.body_seconds)

    def _shed(self) -> bool:
        """Take this request for the prebuilt refusal when it is a model call and nothing
        earlier on the connection is still being answered; the refusal is written once its
        body has been read, and the connection stays open for the client's next request."""
        if self.cycle is not None and not self.cycle.response_complete:
            return False  # a pipelined request: its answer must follow the one before
        answer = shedding.shed_response(self.parser.get_method(), self.url)
        if answer is None:
            return False
        assert self._lag is not None
        self._lag.refused(self._shed_at)
        if self._limits.on_shed is not None:
            self._limits.on_shed()
        self._shed_answer = answer
        self._await(_BODY, self._limits.body_seconds)
        return True

    def on_body(self, body: bytes) -> None:
        if self._refused or self._shed_answer is not None:
            return
        super().on_body(body)
        if self._phase == _BODY:
            self._deadline = self.loop.time() + self._limits.body_seconds

    def on_message_complete(self) -> None:
        if self._refused:
            return
        if self._shed_answer is not None:
            self._answer_shed(self._shed_answer)
            return
        super().on_message_complete()
        self._phase = _IDLE
        self._begun = False

    def _answer_shed(self, answer: bytes) -> None:
        self._shed_answer = None
        self._phase = _IDLE
        self._begun = False
        self.transport.write(answer)
        if self.parser.should_keep_alive():
            self.on_response_complete()  # uvicorn's own after-response step: keep-alive timer
        else:
            self.transport.close()

    def handle_websocket_upgrade(self) -> None:
        self._phase = _IDLE  # the WebSocket protocol owns the connection from here
        super().handle_websocket_upgrade()

    def _await(self, phase: int, seconds: float) -> None:
        self._phase = phase
        self._deadline = deadline = self.loop.time() + seconds
        if self._timer is not None:
            if self._timer_at <= deadline:
                return  # fires first, then sleeps on to the deadline
            self._timer.cancel()
        self._arm(deadline)

    def _arm(self, when: float) -> None:
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self._phase == _IDLE or self.transport.is_closing():
            return
        now = self.loop.time()
        if now < self._deadline:
            self._arm(self._deadline)
            return
        cycle = self.cycle
        if self._phase == _HEADERS and cycle is not None and not cycle.response_complete:
            # a pipelined request behind a response still being sent: its time starts after
            self._await(_HEADERS, self._limits.header_seconds)
            return
        if self._phase == _BODY and (cycle.response_started or self.flow.read_paused):
            if cycle.response_started:  # the app answered without the rest: not timed
                self._phase = _IDLE
                return
            self._await(_BODY, self._limits.body_seconds)  # Parley paused reading, not them
            return
        if self._begun or self._phase == _BODY:
            self.transport.write(_HEADERS_LATE if self._phase == _HEADERS else _BODY_LATE)
        self._phase = _IDLE
        self.transport.close()


_REFUSED = _json_error(
    b"503 Service Unavailable",
    "this server is at its connection limit; retry shortly",
    "service_unavailable_error",
    "too_many_connections",
)
_HEADERS_LATE = _json_error(
    b"408 Request Timeout",
    "request headers not received in time",
    "invalid_request_error",
    "request_timeout",
)
_BODY_LATE = _json_error(
    b"408 Request Timeout",
    "request body not received in time",
    "invalid_request_error",
    "request_timeout",
)
