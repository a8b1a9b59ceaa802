"""Pooled upstream HTTP: one aiohttp session per upstream origin, built in the app lifespan.

aiohttp was chosen over httpx by measurement (``bench/http_clients.py``; figures in
docs/benchmarks.md): at concurrency 64 against the same loopback server it served several
times the requests per second with lower p99. Every aiohttp exception is translated here
into Parley's ``Upstream*`` errors, so nothing from aiohttp leaks above ``providers/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from parley.config.models import TimeoutConfig
from parley.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from parley.observability.timing import add_upstream_time


@contextlib.contextmanager
def map_transport_errors(deployment: str) -> Iterator[None]:
    """Translate aiohttp/asyncio failures into Parley errors naming the deployment only."""
    try:
        yield
    except UpstreamError:
        raise
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout(
            f"upstream {deployment} did not answer in time", deployment=deployment
        ) from exc
    except aiohttp.ClientPayloadError as exc:
        raise UpstreamProtocolError(
            f"upstream {deployment} broke off its response", deployment=deployment
        ) from exc
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise UpstreamUnavailable(
            f"cannot reach upstream {deployment}: {type(exc).__name__}", deployment=deployment
        ) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamUnavailable(
            f"upstream {deployment} request failed: {type(exc).__name__}", deployment=deployment
        ) from exc


@dataclass(slots=True)
class RawResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class UpstreamPool:
    """Owns the sessions; ``client_for`` hands each deployment its origin's session."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, int], aiohttp.ClientSession] = {}

    def client_for(
        self, api_base: str, timeout: TimeoutConfig, max_connections: int, deployment: str
    ) -> UpstreamClient:
        key = (_origin(api_base), max_connections)
        session = self._sessions.get(key)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=max_connections,
                limit_per_host=max_connections,
                keepalive_timeout=30,
                ttl_dns_cache=300,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=True,
                # One session serves every caller: a cookie one answer set (a CDN's
                # __cf_bm, say) must not ride along on the next caller's request.
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "parley"},
            )
            self._sessions[key] = session
        return UpstreamClient(session, timeout, deployment)

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class UpstreamClient:
    """What a provider adapter uses: POST with Parley's timeouts and error mapping."""

    def __init__(
        self, session: aiohttp.ClientSession, timeout: TimeoutConfig, deployment: str
    ) -> None:
        self._session = session
        self._timeout = timeout
        self._request_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout.connect, sock_read=timeout.first_byte
        )
        self.deployment = deployment

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> RawResponse:
        started = time.perf_counter()
        try:
            with map_transport_errors(self.deployment):
                async with asyncio.timeout(self._timeout.total):
                    async with self._session.post(
                        url, data=body, headers=headers, timeout=self._request_timeout
                    ) as resp:
                        data = await resp.read()
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
        try:
            with map_transport_errors(self.deployment):
                async with asyncio.timeout(self._timeout.first_byte):
                    resp = await self._session.post(
                        url, data=body, headers=headers, timeout=self._request_timeout
                    )
        finally:
            add_upstream_time(time.perf_counter() - started)
        try:
            yield StreamingResponse(resp, self.deployment, deadline)
        finally:
            # Leaving early (client gone, error) must tear the connection down, not drain it.
            resp.close()


class StreamingResponse:
    def __init__(self, resp: aiohttp.ClientResponse, deployment: str, deadline: float) -> None:
        self._resp = resp
        self.deployment = deployment
        self._deadline = deadline
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def read_all(self) -> bytes:
        with map_transport_errors(self.deployment):
            async with asyncio.timeout_at(self._deadline):
                return await self._resp.read()

    async def lines(self) -> AsyncIterator[bytes]:
        """Raw lines (``\\n``-terminated) until the body ends, within the total deadline."""
        content = self._resp.content
        with map_transport_errors(self.deployment):
            async with asyncio.timeout_at(self._deadline):
                while True:
                    line = await content.readline()
                    if not line:
                        return
                    yield line
