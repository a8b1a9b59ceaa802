"""A webhook receiver for tests: verifies each alert's HMAC signature, can be told to be
"down" (answer 503) for its first attempts, and keeps what it accepted."""

from __future__ import annotations

import asyncio
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from parley.gateway.accounting.alerts import sign


@dataclass
class WebhookReceiver:
    secret: str
    host: str = "127.0.0.1"
    port: int = 0
    fail_first: int = 0
    """Answer 503 to this many requests before accepting any."""
    attempts: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    """Accepted events, in arrival order (retries of one event included)."""
    rejected_signatures: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def ids(self) -> list[str]:
        return [event["id"] for event in self.received]

    async def _hook(self, request: web.Request) -> web.Response:
        self.attempts += 1
        body = await request.read()
        header = request.headers.get("x-parley-signature", "")
        parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        expected = sign(self.secret, int(parts.get("t", "0")), body)
        if not hmac.compare_digest(expected, header):
            self.rejected_signatures += 1
            return web.Response(status=401)
        if self.attempts <= self.fail_first:
            return web.Response(status=503)
        event = json.loads(body)
        if event["id"] != request.headers.get("x-parley-event-id"):
            return web.Response(status=400)
        self.received.append(event)
        return web.Response(status=204)
