"""Pooled upstream HTTP: one client per upstream origin and timeout profile, built in the
app lifespan.

The client is pyreqwest (Rust's reqwest and hyper behind an asyncio API), chosen by
measurement (``bench/http_clients.py``; figures in docs/benchmarks.md): pinned to one core
against the same loopback server, it spent 30-40% less CPU per request than aiohttp at
concurrency 10 and 64, and the upstream call was the largest single share of Parley's own
time per request. Every client exception is translated here into Parley's ``Upstream*``
errors, so nothing from the client leaks above ``providers/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import (
    ConnectError,
    DecodeError,
    NetworkError,
    PyreqwestError,
    ReadError,
)
from pyreqwest.response import Response

from parley.config.models import TimeoutConfig
from parley.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from parley.observability.timing import add_upstream_time


@contextlib.contextmanager
def map_transport_errors(deployment: str, *, reading: bool = False) -> Iterator[None]:
    """Translate client and asyncio failures into Parley errors naming the deployment
    only. ``reading``: the response has begun, so a broken connection is a broken answer."""
    try:
        yield
    except UpstreamError:
        raise
    except TimeoutError as exc:  # pyreqwest's timeouts are TimeoutErrors too
        raise UpstreamTimeout(
            f"upstream {deployment} did not answer in time", deployment=deployment
        ) from exc
    except (ReadError, DecodeError) as exc:
        if not reading:
            raise UpstreamUnavailable(
                f"cannot reach upstream {deployment}: {type(exc).__name__}",
                deployment=deployment,
            ) from exc
        raise UpstreamProtocolError(
            f"upstream {deployment} broke off its response", deployment=deployment
        ) from exc
    except (ConnectError, NetworkError, OSError) as exc:
        raise UpstreamUnavailable(
            f"cannot reach upstream {deployment}: {type(exc).__name__}", deployment=deployment
        ) from exc
    except PyreqwestError as exc:
        raise UpstreamUnavailable(
            f"upstream {deployment} request failed: {type(exc).__name__}", deployment=deployment
        ) from exc


@dataclass(slots=True)
class RawResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


_PoolKey = tuple[str, int, float, float]


class UpstreamPool:
    """Owns the clients; ``client_for`` hands each deployment the client for its origin,
    connection limit and connect / first-byte timeouts (a client's own settings)."""

    def __init__(self) -> None:
        self._clients: dict[_PoolKey, Client] = {}

    def client_for(
        self, api_base: str, timeout: TimeoutConfig, max_connections: int, deployment: str
    ) -> UpstreamClient:
        key = (_origin(api_base), max_connections, timeout.connect, timeout.first_byte)
        client = self._clients.get(key)
        if client is None:
            client = (
                ClientBuilder()
                .max_connections(max_connections)
                .connect_timeout(timedelta(seconds=timeout.connect))
                # Between reads, as the time to the response's headers is: first byte.
                .read_timeout(timedelta(seconds=timeout.first_byte))
                .pool_idle_timeout(timedelta(seconds=30))
                .gzip(True)
                .no_proxy()  # like the upstream URL says, not the environment
                .user_agent("parley")
                # One client serves every caller: a cookie one answer set (a CDN's
                # __cf_bm, say) must not ride along on the next caller's request.
                .default_cookie_store(False)
                .build()
            )
            self._clients[key] = client
        return UpstreamClient(client, timeout, deployment)

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class UpstreamClient:
    """What a provider adapter uses: POST with Parley's timeouts and error mapping."""

    def __init__(self, client: Client, timeout: TimeoutConfig, deployment: str) -> None:
        self._client = client
        self._timeout = timeout
        self._total = timedelta(seconds=timeout.total)
        self.deployment = deployment

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> RawResponse:
        started = time.perf_counter()
        try:
            # The total timeout is the client's own (a TimeoutError, mapped like any
            # other): an asyncio.timeout around the call cost ~3% of the gateway's CPU.
            with map_transport_errors(self.deployment):
                resp = (
                    await self._client.post(url)
                    .headers(headers)
                    .body_bytes(body)
                    .timeout(self._total)
                    .build()
                    .send()
                )
            with map_transport_errors(self.deployment, reading=True):
                data = bytes(await resp.bytes())
            return RawResponse(resp.status, resp.headers, data)
        finally:
            add_upstream_time(time.perf_counter() - started)

    @contextlib.asynccontextmanager
    async def open_stream(
        self, url: str, headers: Mapping[str, str], body: bytes
    ) -> AsyncIterator[StreamingResponse]:
        """Send the request and yield once headers arrived; closing it aborts the upstream."""
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + self._timeout.total
        request = (
            self._client.post(url)
            .headers(headers)
            .body_bytes(body)
            # No read-ahead: entering returns at the headers, and a body that breaks off
            # later fails the read that meets it (with read-ahead, entering raised it).
            .streamed_read_buffer_limit(0)
            .build_streamed()
        )
        try:
            with map_transport_errors(self.deployment):
                # The headers wait is also bounded by the total: with a first-byte
                # timeout longer than the total, the total still holds.
                async with asyncio.timeout(min(self._timeout.first_byte, self._timeout.total)):
                    resp = await request.__aenter__()
        finally:
            add_upstream_time(time.perf_counter() - started)
        try:
            yield StreamingResponse(resp, self.deployment, deadline)
        finally:
            # Leaving early (client gone, error) drops the connection instead of draining it.
            await request.__aexit__(None, None, None)


class StreamingResponse:
    def __init__(self, resp: Response, deployment: str, deadline: float) -> None:
        self._resp = resp
        self.deployment = deployment
        self._deadline = deadline
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def read_all(self) -> bytes:
        with map_transport_errors(self.deployment, reading=True):
            async with asyncio.timeout_at(self._deadline):
                return bytes(await self._resp.bytes())

    async def lines(self) -> AsyncIterator[bytes]:
        """Raw lines (``\\n``-terminated; the last may lack it) until the body ends, within
        the total deadline."""
        reader = self._resp.body_reader
        pending = b""
        with map_transport_errors(self.deployment, reading=True):
            async with asyncio.timeout_at(self._deadline):
                while True:
                    chunk = await reader.read_chunk()
                    if chunk is None:
                        if pending:
                            yield pending
                        return
                    pending += bytes(chunk)
                    if b"\n" not in pending:
                        continue
                    *complete, pending = pending.split(b"\n")
                    for line in complete:
                        yield line + b"\n"
