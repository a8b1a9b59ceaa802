"""The hot path, without the framework: ``POST /v1/chat/completions``, ``/v1/messages``
and ``/v1/embeddings`` go from the server straight to the request envelope and their
handlers, ahead of FastAPI's own middleware stack (error middleware, body-limit and
telemetry layers, routing, dependency solving). Profiles of the overhead benchmark showed
each of those layers costing time per request; the envelope already does what they would
for these routes. Everything else (and a browser's cross-origin call, which needs the CORS
layer) goes on to FastAPI, whose router serves these routes too. Errors are rendered
exactly as the FastAPI handlers in ``api/errors.py`` do (``/v1/messages`` renders its own,
in Anthropic's envelope)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from parley.api.errors import render_client_gone, render_parley_error, render_unexpected
from parley.api.middleware import RequestContextMiddleware
from parley.api.proxies import TrustedProxies
from parley.errors import ParleyError
from parley.observability.metrics import Metrics

Handler = Callable[[Request], Awaitable[Response]]


class FastPath:
    def __init__(
        self,
        routes: dict[str, Handler],
        *,
        owner: FastAPI,
        max_body_bytes: int,
        metrics: Metrics,
        cors: bool,
        proxies: TrustedProxies | None = None,
    ) -> None:
        self._routes = routes
        self._owner = owner  # handlers read request.app.state
        self._cors = cors
        self._envelope = RequestContextMiddleware(
            self._dispatch, max_body_bytes=max_body_bytes, metrics=metrics, proxies=proxies
        )

    def handles(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] != "POST":
            return False
        if scope["path"] not in self._routes:
            return False
        # A browser's cross-origin call needs the CORS layer's headers: the full stack.
        return not (self._cors and any(name == b"origin" for name, _ in scope["headers"]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._envelope(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self._owner
        request = Request(scope, receive)
        try:
            response = await self._routes[scope["path"]](request)
        except ParleyError as exc:
            response = render_parley_error(exc)
        except ClientDisconnect:
            response = render_client_gone()
        except Exception:  # a bug: logged with its traceback, answered as a 500
            response = render_unexpected()
        await response(scope, receive, send)


class ParleyApp(FastAPI):
    """FastAPI, with the hot routes answered before its middleware stack is entered."""

    fast_path: FastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_path
        if fast is not None and fast.handles(scope):
            await fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
