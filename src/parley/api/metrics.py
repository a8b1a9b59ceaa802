"""Who may read ``/metrics``, and the listener that serves it on an address of its own.

The exposition names every deployment, group and route, so it is not public by default:

- ``PARLEY_METRICS_ADDRESS=host:port``: ``/metrics`` leaves the main port (404 there) and is
  served on that address alone, for a network only Prometheus reaches. Every worker binds it
  with ``SO_REUSEPORT``; with ``--workers N`` any of them answers the sum over all.
- ``PARLEY_METRICS_TOKEN``: every scrape (on either listener) must send
  ``Authorization: Bearer <token>`` (Prometheus ``authorization.credentials``).
- Neither: open when Parley binds a loopback address (the embedded default, where only this
  host can connect), refused with 403 naming both settings on any other bind.

The listener speaks just enough HTTP/1.1 for a scrape: one ``GET`` per connection, the head
read with a size and time bound, ``Connection: close`` (a second uvicorn server in the same
process would take over the main server's signal handlers).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket

import msgspec

from parley.config import Settings
from parley.errors import AuthenticationFailed, NotFound, ParleyError, PermissionDenied
from parley.observability.logging import get_logger
from parley.observability.metrics import Metrics

log = get_logger(__name__)

_HEAD_LIMIT = 16 * 1024
_HEAD_SECONDS = 5.0
_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def authorize(settings: Settings, authorization: str | None, *, own_listener: bool) -> None:
    """Raise the error a scrape gets, or return when it may read the metrics."""
    if not own_listener and settings.metrics_address is not None:
        raise NotFound("/metrics is served on its own address (PARLEY_METRICS_ADDRESS)")
    token = settings.metrics_token
    if token is not None:
        scheme, _, given = (authorization or "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise AuthenticationFailed(
                "/metrics needs 'Authorization: Bearer <PARLEY_METRICS_TOKEN>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return
    if not own_listener and not settings.loopback_only():
        raise PermissionDenied(
            "/metrics is not served on a non-loopback address without protection: set "
            "PARLEY_METRICS_TOKEN or PARLEY_METRICS_ADDRESS"
        )


class MetricsListener:
    """``GET /metrics`` on ``settings.metrics_address``, nothing else."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the system chose for port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        host, port = self._settings.metrics_bind()
        self._server = await asyncio.start_server(
            self._serve,
            host,
            port,
            reuse_address=True,
            reuse_port=hasattr(socket, "SO_REUSEPORT"),  # one address for every worker
            limit=_HEAD_LIMIT,
        )
        log.info("metrics listening", address=f"{host}:{self.port}")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_HEAD_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
            status, body, headers = self._answer(head)
            writer.write(_response(status, body, headers))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a slow, truncated or oversized head: hang up
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, head: bytes) -> tuple[int, bytes, dict[str, str]]:
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, _, rest = request_line.partition(" ")
        target = rest.partition(" ")[0].partition("?")[0]
        fields = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip().lower()] = value.strip()
        if target != "/metrics":
            return _error(NotFound(f"no route {target!r} here; this address serves /metrics"))
        if method != "GET":
            return 405, _error_body("use GET /metrics"), {"Allow": "GET"}
        try:
            authorize(self._settings, fields.get("authorization"), own_listener=True)
        except ParleyError as exc:
            return _error(exc)
        return 200, self._metrics.render(), {"Content-Type": _CONTENT_TYPE}


def _error(exc: ParleyError) -> tuple[int, bytes, dict[str, str]]:
    return exc.status_code, msgspec.json.encode(exc.to_body()), dict(exc.headers)


def _error_body(message: str) -> bytes:
    return msgspec.json.encode(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
    )


def _response(status: int, body: bytes, headers: dict[str, str]) -> bytes:
    headers.setdefault("Content-Type", "application/json")
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


_REASONS = {
    200: "OK",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
}
