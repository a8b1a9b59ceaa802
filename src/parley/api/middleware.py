"""The request envelope, as one pure ASGI middleware (SSE streams pass straight through).

Per request it: resolves the client address behind trusted proxies (``api/proxies.py``),
adds the security headers every response carries (HSTS only over TLS), assigns
``x-request-id`` (echoing a well-formed incoming one), binds it for logs, refuses bodies
over the size limit with 413 before anything parses them, and stamps
``x-parley-overhead-ms``: time from arrival to response headers minus time spent waiting
on upstreams, so Parley's own cost can be measured from outside.
"""

from __future__ import annotations

import os
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.api.proxies import TrustedProxies
from parley.errors import RequestTooLarge
from parley.observability import tracing
from parley.observability.logging import bind_request_id
from parley.observability.metrics import Metrics
from parley.observability.timing import start_request_timer

_VALID_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_ROUTES = (
    "/v1/chat/completions",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/embeddings",
    "/v1/models",
    "/health/live",
    "/health/ready",
    "/metrics",
)


def route_label(path: str) -> str:
    """Bounded label set for metrics: known routes by name, everything else as 'other'."""
    if path in _ROUTES:
        return path
    if path.startswith("/v1/models/"):
        return "/v1/models/{id}"
    return "other"


SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    # The API serves JSON and SSE only: nothing may load, and nothing may frame it. The web
    # app's pages (api/web.py) set their own policy, which then replaces this one.
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
_DOCS_CSP = (
    # /docs (api/docs.py): Swagger UI's files from this origin, no inline script; it sets
    # inline styles and data: images, and fetches the schema (and "try it out") here.
    b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        metrics: Metrics,
        proxies: TrustedProxies | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.proxies = proxies or None  # None when nothing is trusted: one check per request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        timer = start_request_timer()
        if self.proxies is not None:
            self.proxies.apply(scope)
        request_id, from_client = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id.decode()
        state["request_id_from_client"] = from_client
        bind_request_id(state["request_id"])
        route = route_label(scope["path"])
        method = scope["method"]
        security = SECURITY_HEADERS
        if scope["path"] == "/docs":
            security = [*SECURITY_HEADERS[:3], (b"content-security-policy", _DOCS_CSP)]
        if scope.get("scheme") == "https":
            security = [*security, _HSTS]

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _send_too_large(send, request_id, self.max_body_bytes, scope["path"])
            self.metrics.http_requests.labels(route, method, "413").inc()
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = time.perf_counter() - started
                overhead = max(0.0, elapsed - timer.seconds)
                headers = list(message.get("headers", []))
                # A page that states its own policy (the web app's) keeps it: two policies
                # would both apply, and the API's allows nothing to load. The known API
                # routes (the hot path) never do, so only the rest are looked at.
                if route == "other" and any(
                    name == b"content-security-policy" for name, _ in headers
                ):
                    headers.extend(h for h in security if h[0] != b"content-security-policy")
                else:
                    headers.extend(security)
                headers.append((b"x-request-id", request_id))
                headers.append((b"x-parley-overhead-ms", f"{overhead * 1000:.3f}".encode()))
                message["headers"] = headers
                status = str(message["status"])
                metrics = self.metrics
                metrics.child(metrics.http_requests, route, method, status).inc()
                metrics.child(metrics.http_seconds, route).observe(elapsed)
                metrics.child(metrics.overhead_seconds, route).observe(overhead)
            await send(message)

        received = 0
        limit = self.max_body_bytes

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(f"request body exceeds {limit} bytes")
            return message

        received_by = receive_wrapper if declared is None else receive
        if tracing.ON:
            await tracing.serve(self.app, scope, received_by, send_wrapper, route)
            return
        await self.app(scope, received_by, send_wrapper)


def _request_id(scope: Scope) -> tuple[bytes, bool]:
    """The request's id and whether the client chose it."""
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _VALID_ID.match(value):
            return bytes(value), True
    return os.urandom(16).hex().encode(), False  # a uuid4's randomness, without the object


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_too_large(send: Send, request_id: bytes, limit: int, path: str) -> None:
    message = b"request body exceeds " + str(limit).encode() + b" bytes"
    if path.startswith("/v1/messages"):  # Anthropic's API answers in Anthropic's envelope
        body = b'{"type":"error","error":{"type":"request_too_large","message":"' + message + b'"}}'
    else:
        body = (
            b'{"error":{"message":"' + message + b'","type":"invalid_request_error","param":null,'
            b'"code":"request_too_large"}}'
        )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
