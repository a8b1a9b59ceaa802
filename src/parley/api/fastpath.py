"""The hot path, without the framework: ``POST /v1/chat/completions`` and ``/v1/embeddings``
are dispatched straight to their handlers by this pure ASGI middleware, skipping FastAPI's
routing, dependency solving and exception middleware (a profile of the overhead benchmark
showed those layers as the largest share of Parley's own time). Everything else goes on to
FastAPI. Errors are rendered exactly as the FastAPI handlers in ``api/errors.py`` do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from parley.api.errors import render_parley_error, render_unexpected
from parley.errors import ParleyError

Handler = Callable[[Request], Awaitable[Response]]


class FastPath:
    def __init__(self, app: ASGIApp, *, routes: dict[str, Handler], owner: object) -> None:
        self.app = app
        self._routes = routes
        self._owner = owner  # the FastAPI app: handlers read request.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        handler = self._routes.get(scope["path"])
        if handler is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self._owner
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except ParleyError as exc:
            response = render_parley_error(exc)
        except Exception:  # a bug: logged with its traceback, answered as a 500
            response = render_unexpected()
        await response(scope, receive, send)
