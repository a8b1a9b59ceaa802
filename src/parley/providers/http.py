"""Pooled upstream HTTP: one connection pool per upstream origin, connection limit and
connect timeout, built in the app lifespan.

The transport is ``providers/http1.py``, HTTP/1.1 on the event loop's own thread (why, with
the measurements, is in its docstring). Every transport failure is translated here into
Parley's ``Upstream*`` errors, naming the deployment and never a header's value.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass

from parley.config.egress import Proxy
from parley.config.models import TimeoutConfig
from parley.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from parley.observability import tracing
from parley.observability.timing import add_upstream_time
from parley.providers.http1 import (
    ConnectionClosed,
    ConnectionPool,
    Exchange,
    InvalidHeader,
    Origin,
    ProtocolError,
    ProxyRefused,
    split_url,
)


@contextlib.contextmanager
def map_transport_errors(deployment: str, *, reading: bool = False) -> Iterator[None]:
    """Translate transport failures into Parley errors naming the deployment only.
    ``reading``: the response has begun, so a broken connection is a broken answer."""
    try:
        yield
    except UpstreamError:
        raise
    except TimeoutError as exc:
        raise UpstreamTimeout(
            f"upstream {deployment} did not answer in time", deployment=deployment
        ) from exc
    except ProtocolError as exc:
        raise UpstreamProtocolError(
            f"upstream {deployment} sent a response Parley cannot read: {exc}",
            deployment=deployment,
        ) from exc
    except InvalidHeader as exc:
        raise UpstreamUnavailable(
            f"cannot send to upstream {deployment}: {exc}", deployment=deployment
        ) from exc
    except ProxyRefused as exc:
        raise UpstreamUnavailable(
            f"cannot reach upstream {deployment} through its proxy: {exc}", deployment=deployment
        ) from exc
    except ConnectionClosed as exc:
        if not reading:
            raise UpstreamUnavailable(
                f"cannot reach upstream {deployment}: the connection closed before an answer",
                deployment=deployment,
            ) from exc
        raise UpstreamProtocolError(
            f"upstream {deployment} broke off its response", deployment=deployment
        ) from exc
    except OSError as exc:  # refused, unreachable, name resolution, TLS
        raise UpstreamUnavailable(
            f"cannot reach upstream {deployment}: {type(exc).__name__}", deployment=deployment
        ) from exc


@dataclass(slots=True)
class RawResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


_PoolKey = tuple[Origin, int, float, Proxy | None]


class UpstreamPool:
    """Owns the connection pools; ``client_for`` hands each deployment the pool for its
    origin, connection limit and connect timeout."""

    def __init__(self) -> None:
        self._pools: dict[_PoolKey, ConnectionPool] = {}

    def client_for(
        self,
        api_base: str,
        timeout: TimeoutConfig,
        max_connections: int,
        deployment: str,
        proxy: Proxy | None = None,
    ) -> UpstreamClient:
        origin, _ = split_url(api_base)
        key = (origin, max_connections, timeout.connect, proxy)
        pool = self._pools.get(key)
        if pool is None:
            pool = ConnectionPool(
                origin,
                max_connections=max_connections,
                connect_timeout=timeout.connect,
                proxy=proxy,
            )
            self._pools[key] = pool
        return UpstreamClient(pool, timeout, deployment)

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(p.close() for p in pools), return_exceptions=True)


class UpstreamClient:
    """What a provider adapter uses: POST with Parley's timeouts and error mapping.
    ``first_byte`` bounds the wait for the response's headers and every later wait for
    the upstream's next byte; ``total`` bounds the whole exchange, connecting included."""

    def __init__(self, pool: ConnectionPool, timeout: TimeoutConfig, deployment: str) -> None:
        self._pool = pool
        self._timeout = timeout
        self.deployment = deployment

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> RawResponse:
        started = time.perf_counter()
        try:
            exchange = await self._send(url, headers, body)
            with map_transport_errors(self.deployment, reading=True):
                data = await exchange.read_all()
            return RawResponse(exchange.status, exchange.headers, data)
        finally:
            add_upstream_time(time.perf_counter() - started)

    @contextlib.asynccontextmanager
    async def open_stream(
        self, url: str, headers: Mapping[str, str], body: bytes
    ) -> AsyncIterator[StreamingResponse]:
        """Send the request and yield once headers arrived; leaving before the body ended
        closes the connection, which is how the upstream learns the caller went away."""
        started = time.perf_counter()
        try:
            exchange = await self._send(url, headers, body)
        finally:
            add_upstream_time(time.perf_counter() - started)
        try:
            yield StreamingResponse(exchange, self.deployment)
        finally:
            exchange.close()  # a no-op once the body was read to its end

    async def _send(self, url: str, headers: Mapping[str, str], body: bytes) -> Exchange:
        with map_transport_errors(self.deployment):
            _, target = split_url(url)
            if tracing.ON:  # W3C trace context to the upstream: the current attempt's span
                headers = tracing.outgoing(headers)
            deadline = asyncio.get_running_loop().time() + self._timeout.total
            return await self._pool.send(
                target, headers, body, deadline=deadline, idle=self._timeout.first_byte
            )


class StreamingResponse:
    def __init__(self, exchange: Exchange, deployment: str) -> None:
        self._exchange = exchange
        self.deployment = deployment
        self.status = exchange.status
        self.headers: Mapping[str, str] = exchange.headers

    async def read_all(self) -> bytes:
        with map_transport_errors(self.deployment, reading=True):
            return await self._exchange.read_all()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, for binary-framed streams (AWS event-stream)."""
        with map_transport_errors(self.deployment, reading=True):
            while (chunk := await self._exchange.read_chunk()) is not None:
                yield chunk

    async def lines(self) -> AsyncIterator[bytes]:
        """Raw lines (``\\n``-terminated; the last may lack it) until the body ends."""
        pending = b""
        with map_transport_errors(self.deployment, reading=True):
            while True:
                chunk = await self._exchange.read_chunk()
                if chunk is None:
                    if pending:
                        yield pending
                    return
                pending += chunk
                if b"\n" not in pending:
                    continue
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield line + b"\n"
