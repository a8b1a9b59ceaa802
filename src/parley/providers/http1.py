"""HTTP/1.1 to upstreams on the event loop's own thread: keep-alive connections over asyncio
transports, responses read by httptools (llhttp, the C parser uvicorn already uses).

Why not a client library. Parley's upstream traffic is one shape: a POST with a JSON body to
a handful of origins, answered with JSON or an SSE stream, over pooled HTTP/1.1. Measured in
the gateway itself (``bench.compare``'s setup, gateway pinned to one core), pyreqwest, the
client before this one, spent ~84 us of the ~230 us of CPU per request: its calls from
Python plus its Rust runtime thread, which hands every completion back through the GIL and
so contends with the event loop on the same core. This module answers the same traffic
from the loop's own callbacks; against the previous commit in one run, JSON at concurrency
10 went from 4,330 to 5,190-5,430 requests/s and SSE from 2,420-2,480 to 2,930-2,960
(docs/benchmarks.md). Alone (``bench.http_clients``) it costs 14 us per request against
pyreqwest's 26 and aiohttp's 54.

What it does: a pool per origin with a connection limit (callers wait for a connection in
arrival order), reuse only of connections whose last response ended cleanly and allowed it,
Content-Length, chunked and close-delimited bodies, gzip/deflate bodies, TLS with the
system's trust store, and two clocks per exchange: a deadline for the whole exchange and an
idle limit between bytes (the first-byte timeout). A stream's body is read with
backpressure: past 256 KiB unread the socket stops being read. Not supported: HTTP/2,
redirects and cookies (no upstream API needs them; a cookie would leak between callers),
and request bodies streamed in parts.

Through a forward proxy (``config/egress.py`` decides which): an ``https://`` origin is
reached through a ``CONNECT`` tunnel, TLS then running inside it to the origin (the proxy
sees the host name only); an ``http://`` origin's requests go to the proxy with the request
line in absolute form. ``Proxy-Authorization`` goes in the ``CONNECT`` (or in each forwarded
request), never to the origin.

Errors are plain: ``TimeoutError``, ``ConnectionClosed`` (a ``ConnectionError``),
``ProtocolError`` for bytes that are not HTTP, ``InvalidHeader`` for a header that cannot be
sent, ``ProxyRefused`` when the proxy will not open the tunnel, and the ``OSError`` of a
failed connect; ``providers/http.py`` maps them to Parley's.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from parley.config.egress import Proxy

_PAUSE_AT = 256 * 1024  # unread body bytes at which the socket stops being read
_RESUME_AT = 64 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})
_FRAMING = frozenset({"content-length", "transfer-encoding"})  # the body's framing is ours


class ProtocolError(Exception):
    """The upstream sent bytes that are not an HTTP/1.1 response Parley can read."""


class ConnectionClosed(ConnectionError):
    """The connection ended before the response did."""


class ProxyRefused(ConnectionError):
    """The proxy answered the ``CONNECT`` with something other than 2xx (407: it wants
    credentials, or others than those sent)."""


class InvalidHeader(ValueError):
    """A request header that cannot be sent (a line break, or a non-Latin-1 character).
    Names the header, never its value: values hold credentials."""


class Headers(Mapping[str, str]):
    """Response headers, looked up case-insensitively; a repeated field's values are joined
    with ``", "`` as RFC 9110 allows."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, str]) -> None:
        self._fields = fields  # lower-case names

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def authority(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@lru_cache(maxsize=1)
def _system_trust() -> ssl.SSLContext:
    """One verifying context for every pool: building one loads the system's CA store
    (~16 ms here), which would otherwise be paid per HTTPS origin at start-up."""
    return ssl.create_default_context()


@lru_cache(maxsize=1024)
def split_url(url: str) -> tuple[Origin, str]:
    """``(origin, request target)``; cached, since each deployment sends to a few fixed URLs.
    ValueError for anything else, a port outside 1-65535 included."""
    parts = urlsplit(url)
    port = parts.port  # ValueError when not a number from 0 to 65535
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = port or (443 if parts.scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return Origin(parts.scheme, parts.hostname, port), target


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one exchange at a time. Parser callbacks fill the
    response state; readers wait on a future that callbacks resolve (never with an
    exception, so an abandoned wait leaves nothing unretrieved)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._idle_limit = 0.0
        self._last_byte = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._reset(busy=False)

    def _reset(self, *, busy: bool) -> None:
        self.busy = busy
        self.status = 0
        self.fields: dict[str, str] = {}
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._complete = False
        self.reusable = False
        self._error: BaseException | None = None
        self._has_length = False
        self._interim = False
        self._decoder: Any = None

    # --- the exchange, as the pool drives it ---------------------------------------------

    def start(self, request: bytes, deadline: float, idle: float) -> None:
        """Send a whole request and start both clocks (loop time ``deadline``, ``idle``
        seconds without a byte)."""
        assert self._transport is not None
        if self._paused:  # the last response arrived whole but was not read to its end
            self._transport.resume_reading()
        self._reset(busy=True)
        self._deadline, self._idle_limit = deadline, idle
        self._last_byte = self._loop.time()
        self._timer = self._loop.call_at(min(deadline, self._last_byte + idle), self._check_clock)
        self._transport.write(request)

    async def head(self) -> None:
        while self.status == 0:
            if self._error is not None:
                raise self._error
            await self._wait()

    async def read_chunk(self) -> bytes | None:
        """The next piece of the body, or None once it has ended."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered <= _RESUME_AT and self._transport is not None:
                    self._paused = False
                    self._transport.resume_reading()
                return chunk
            if self._error is not None:
                raise self._error
            if self._complete:
                return None
            await self._wait()

    @property
    def ended_cleanly(self) -> bool:
        """The whole response has arrived (read or not) and the connection may carry
        another."""
        return self._complete and self._error is None and self.reusable

    def usable(self, now: float, idle_timeout: float) -> bool:
        transport = self._transport
        return (
            not self.closed
            and transport is not None
            and not transport.is_closing()
            and now - self.idle_since < idle_timeout
        )

    def abort(self) -> None:
        self.closed = True
        self._stop_clock()
        if self._transport is not None:
            self._transport.abort()

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy or self._complete:  # bytes nobody asked for (a 408 before
            # closing, say): the connection cannot be trusted with another request
            self.abort()
            return
        self._last_byte = self._loop.time()
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(ProtocolError(f"malformed HTTP response: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_clock()
        if not self.busy or self._complete or self._error is not None:
            return
        if self.status and not self._has_length and not self._interim:
            self._finish_body()  # a close-delimited body ends with the connection
            self._complete = True
            self._wake()
            return
        reason = f": {exc}" if exc else ""
        self._fail(ConnectionClosed(f"connection closed before the response ended{reason}"))

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost settles the exchange

    # --- httptools callbacks -------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        known = self.fields.get(key)
        self.fields[key] = text if known is None else f"{known}, {text}"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self._interim = True
            return
        fields = self.fields
        self._has_length = (
            "content-length" in fields
            or "chunked" in fields.get("transfer-encoding", "").lower()
            or status in _NO_BODY_STATUSES
        )
        coding = fields.get("content-encoding", "identity").strip().lower()
        if coding in ("gzip", "x-gzip", "deflate"):
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
        elif coding != "identity":
            self._fail(ProtocolError(f"unsupported content-encoding {coding!r}"))
            self.abort()
            return
        self.status = status
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body)
            except zlib.error as exc:
                self._fail(ProtocolError(f"corrupt compressed body: {exc}"))
                self.abort()
                return
            if not body:
                return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _PAUSE_AT and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            self.fields = {}
            return
        self._finish_body()
        self._complete = True
        self.reusable = self._parser.should_keep_alive() and not self.closed
        self._stop_clock()
        self._wake()

    # --- internals -----------------------------------------------------------------------

    def _finish_body(self) -> None:
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                self._chunks.append(tail)
                self._buffered += len(tail)

    def _fail(self, error: BaseException) -> None:
        if self._error is None and not self._complete:
            self._error = error
        self._stop_clock()
        self._wake()

    async def _wait(self) -> None:
        self._waiter = self._loop.create_future()
        await self._waiter

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _check_clock(self) -> None:
        self._timer = None
        now = self._loop.time()
        if self._paused:  # our own reader is behind, not the upstream: not its silence
            self._last_byte = now
        idle_due = self._last_byte + self._idle_limit
        due = min(self._deadline, idle_due)
        if now < due:  # bytes arrived since the timer was set: wait for the new due time
            self._timer = self._loop.call_at(due, self._check_clock)
            return
        which = "the exchange's deadline" if self._deadline <= idle_due else "the idle limit"
        self._fail(TimeoutError(f"upstream response exceeded {which}"))
        self.abort()

    def _stop_clock(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _TunnelReply(asyncio.Protocol):
    """Reads the proxy's answer to ``CONNECT`` (its status line and headers); the TLS
    layer takes the connection over after it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.status: asyncio.Future[int] = loop.create_future()
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        if self.status.done():
            return
        self._buffer += data
        head, found, _ = self._buffer.partition(b"\r\n\r\n")
        if found:
            line = head.split(b"\r\n", 1)[0].split()
            ok = len(line) >= 2 and line[0].startswith(b"HTTP/1.") and line[1].isdigit()
            if ok:
                self.status.set_result(int(line[1]))
            else:
                self.status.set_exception(ProtocolError("the proxy's CONNECT answer is not HTTP"))
        elif len(self._buffer) > 16 * 1024:
            self.status.set_exception(ProtocolError("the proxy's CONNECT answer is too long"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.status.done():
            self.status.set_exception(
                ConnectionClosed("the proxy closed the connection before answering CONNECT")
            )


class Exchange:
    """A response whose headers have arrived. Reading it to the end hands the connection
    back for reuse. ``close()`` before that keeps the connection only if the response has
    nevertheless arrived whole (an SSE reader stops at ``[DONE]``, typically with the
    body's last bytes already received); otherwise it drops the connection, which is how
    the upstream learns the request was cancelled."""

    __slots__ = ("_conn", "_pool", "headers", "status")

    def __init__(self, pool: ConnectionPool, conn: _Connection) -> None:
        self._pool: ConnectionPool | None = pool
        self._conn = conn
        self.status = conn.status
        self.headers = Headers(conn.fields)

    async def read_chunk(self) -> bytes | None:
        try:
            chunk = await self._conn.read_chunk()
        except BaseException:
            self._release(reusable=False)
            raise
        if chunk is None:
            self._release(self._conn.reusable)
        return chunk

    async def read_all(self) -> bytes:
        parts = []
        while (chunk := await self.read_chunk()) is not None:
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        self._release(reusable=self._conn.ended_cleanly)

    def _release(self, reusable: bool) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.release(self._conn, reusable=reusable)


class ConnectionPool:
    """Connections to one origin, at most ``max_connections`` open; idle ones are reused
    most recent first and closed after ``idle_timeout`` seconds unused."""

    def __init__(
        self,
        origin: Origin,
        *,
        max_connections: int,
        connect_timeout: float,
        idle_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = "parley",
        proxy: Proxy | None = None,
    ) -> None:
        self.origin = origin
        self._proxy = proxy
        self._tunnel = proxy is not None and origin.scheme == "https"
        self._prefix = ""  # an http:// origin through a proxy: the absolute-form target
        if proxy is not None and not self._tunnel:
            self._prefix = f"http://{origin.authority}"
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._ssl: ssl.SSLContext | None = None
        if origin.scheme == "https":
            self._ssl = ssl_context or _system_trust()
        self._idle: collections.deque[_Connection] = collections.deque()
        self._open = 0  # connections counted against the limit, idle ones included
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._closed = False
        self._defaults = {
            "host": f"Host: {origin.authority}\r\n",
            "user-agent": f"User-Agent: {user_agent}\r\n",
            "accept-encoding": "Accept-Encoding: gzip\r\n",
        }
        if self._prefix and proxy is not None and proxy.authorization is not None:
            self._defaults["proxy-authorization"] = (
                f"Proxy-Authorization: {proxy.authorization.reveal()}\r\n"
            )
        self._fixed = "".join(self._defaults.values())

    async def send(
        self, target: str, headers: Mapping[str, str], body: bytes, *, deadline: float, idle: float
    ) -> Exchange:
        """POST ``body`` to ``target``; returns once the response's headers have arrived.
        ``deadline`` (loop time) bounds the whole exchange, connecting included; ``idle``
        bounds each wait for the upstream's next byte."""
        request = self._request(target, headers, body)
        conn = await self._acquire(deadline)
        try:
            conn.start(request, deadline, idle)
            await conn.head()
            if self._prefix and conn.status == 407:  # the proxy's, not the upstream's
                raise ProxyRefused("the proxy answered 407: proxy authentication required")
        except BaseException:
            self.release(conn, reusable=False)
            raise
        return Exchange(self, conn)

    def release(self, conn: _Connection, *, reusable: bool) -> None:
        conn.busy = False
        if self._closed or not reusable or conn.closed:
            conn.abort()
            self._slot_freed()
            return
        now = asyncio.get_running_loop().time()
        conn.idle_since = now
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(conn)
            return
        self._idle.append(conn)
        idle = self._idle
        while idle and now - idle[0].idle_since >= self._idle_timeout:
            idle.popleft().abort()
            self._slot_freed()

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.popleft().abort()
        while (waiter := self._next_waiter()) is not None:
            waiter.set_result(None)

    # --- internals -----------------------------------------------------------------------

    def _request(self, target: str, headers: Mapping[str, str], body: bytes) -> bytes:
        fixed = self._fixed
        names = {name.lower() for name in headers}
        if names & _FRAMING:
            bad = next(name for name in headers if name.lower() in _FRAMING)
            raise InvalidHeader(f"request header {bad!r} is Parley's to set")
        if not names.isdisjoint(self._defaults):  # the caller's Host, User-Agent... win
            fixed = "".join(v for k, v in self._defaults.items() if k not in names)
        lines = [
            f"POST {self._prefix}{target} HTTP/1.1\r\n",
            fixed,
            f"Content-Length: {len(body)}\r\n",
        ]
        for name, value in headers.items():
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
                raise InvalidHeader(f"request header {name!r} cannot be sent as given")
            lines.append(f"{name}: {value}\r\n")
        lines.append("\r\n")
        try:
            return "".join(lines).encode("latin-1") + body
        except UnicodeEncodeError:
            bad = next(n for n, v in headers.items() if not (n + v).isascii())
            raise InvalidHeader(f"request header {bad!r} holds a non-Latin-1 character") from None

    async def _acquire(self, deadline: float) -> _Connection:
        if self._closed:
            raise ConnectionClosed(f"the pool for {self.origin.authority} is closed")
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable(now, self._idle_timeout):
                return conn
            conn.abort()  # closed by the upstream, or stale
            self._slot_freed()
        if self._open < self._max:
            self._open += 1
            return await self._connect_in_slot(deadline)
        handed = await self._wait_for_slot(deadline)
        if handed is not None and handed.usable(loop.time(), self._idle_timeout):
            return handed
        if handed is not None:
            handed.abort()
        if self._closed:
            self._slot_freed()
            raise ConnectionClosed(f"the pool for {self.origin.authority} is closed")
        return await self._connect_in_slot(deadline)

    async def _wait_for_slot(self, deadline: float) -> _Connection | None:
        """Queue for the next connection handed back (or a freed slot, as None)."""
        waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # handed one while leaving: pass it on
                handed = waiter.result()
                if handed is None:
                    self._slot_freed()
                else:
                    self.release(handed, reusable=True)
            else:
                waiter.cancel()
            raise

    async def _connect_in_slot(self, deadline: float) -> _Connection:
        """Open a connection in a slot already counted in ``_open``; gives the slot back on
        failure."""
        loop = asyncio.get_running_loop()
        origin = self.origin
        try:
            timeout = min(self._connect_timeout, max(0.0, deadline - loop.time()))
            async with asyncio.timeout(timeout):
                if self._proxy is None:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(loop),
                        origin.host,
                        origin.port,
                        ssl=self._ssl,
                        server_hostname=origin.host if self._ssl is not None else None,
                    )
                elif self._tunnel:
                    conn = await self._through_tunnel(loop, self._proxy)
                else:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(loop), self._proxy.host, self._proxy.port
                    )
        except BaseException:
            self._slot_freed()
            raise
        return conn

    async def _through_tunnel(self, loop: asyncio.AbstractEventLoop, proxy: Proxy) -> _Connection:
        """``CONNECT`` through the proxy, then TLS to the origin inside the tunnel."""
        origin = self.origin
        transport, reply = await loop.create_connection(
            lambda: _TunnelReply(loop), proxy.host, proxy.port
        )
        try:
            host = f"[{origin.host}]" if ":" in origin.host else origin.host
            authority = f"{host}:{origin.port}"
            lines = [f"CONNECT {authority} HTTP/1.1\r\n", f"Host: {authority}\r\n"]
            if proxy.authorization is not None:
                lines.append(f"Proxy-Authorization: {proxy.authorization.reveal()}\r\n")
            transport.write("".join(lines).encode("latin-1") + b"\r\n")
            status = await reply.status
            if not 200 <= status < 300:
                raise ProxyRefused(f"the proxy answered CONNECT with {status}")
            conn = _Connection(loop)
            assert self._ssl is not None
            tls = await loop.start_tls(transport, conn, self._ssl, server_hostname=origin.host)
            if tls is None:  # the loop could not upgrade the connection
                raise ConnectionClosed("the tunnel closed during the TLS handshake")
            conn.connection_made(tls)
        except BaseException:
            transport.abort()
            raise
        return conn

    def _next_waiter(self) -> asyncio.Future[_Connection | None] | None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                return waiter
        return None

    def _slot_freed(self) -> None:
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(None)  # the slot passes to the waiter
        else:
            self._open -= 1
