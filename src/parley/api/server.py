"""uvicorn's httptools protocol, with each response's bytes sent in one write.

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and the body when it sends ``http.response.body``: two ``send``
system calls for every non-streaming answer, and on loopback each one also runs the
receiving side's TCP processing in the sender's time. Here the connection's transport is
wrapped so that everything written during one pass of the event loop goes out in a single
write at the end of that pass. Nothing waits longer than the callbacks already queued in
the same pass; a stream's chunks still leave as they are produced, merged only when several
are ready at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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


class ParleyHttpProtocol(HttpToolsProtocol):
    """What ``parley serve`` runs: uvicorn's own protocol over a coalescing transport.

    uvicorn wraps the app in its ``ProxyHeadersMiddleware`` unless told otherwise, which
    takes ``X-Forwarded-For`` from any peer in ``--forwarded-allow-ips`` (loopback by
    default) as the client: one header would choose the address the login lockout, rate
    limits and audit log key on. Parley resolves forwarded addresses itself
    (``PARLEY_TRUSTED_PROXIES``, ``api/proxies.py``), so the wrapper is taken off here,
    whoever configured the server."""

    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        if isinstance(self.app, ProxyHeadersMiddleware):
            # on the config too: the WebSocket protocol an upgrade hands over to reads it
            config.loaded_app = self.app = self.app.app

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
