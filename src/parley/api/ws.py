"""``GET /api/ws``: a user's conversation events and live answers, pushed as they happen.

Authentication is a user access token, in an ``Authorization: Bearer`` header or (browsers
cannot set headers on a WebSocket) as the first message, ``{"type": "auth", "token": ...}``,
within ``AUTH_WAIT_S``. Tokens are never taken from the URL, where proxies log them.

Server messages (JSON text frames):

- ``{"type": "ready", "user_id", "expires_at"}`` once authenticated;
- ``{"type": "event", "event": {"conversation_id", "version", "type", "payload", "time_ms"}}``
  for every change to one of the user's conversations (created, renamed, updated, deleted,
  message added, branch selected), at most once per (conversation, version);
- ``{"type": "generation", "conversation_id", "message_id", "frame": {...}}`` for each
  frame of an answer being generated (``start``, ``delta``, ``error``, ``done``: the SSE
  events of ``POST .../messages``);
- ``{"type": "pong"}`` in answer to ``{"type": "ping"}``.

``{"type": "quiet", "message_id"}`` asks for no more ``delta`` frames of that answer on
this socket (its other frames still come): a tab that reads the answer's own stream
already has every delta, and would otherwise receive each one twice.

Sending ``{"type": "auth", "token"}`` again with a fresh token extends the session (and
ties the socket to that token's login session). Close codes: 4401 authentication failed,
the token expired (refresh, reconnect) or its login session was revoked (logout, logout
everywhere, a password change, the user disabled: on every instance at once, through the
hub); 1013 the client fell too far behind, or the bus connection dropped and came back
(either way events were missed: reconnect and reload); 1003 a message the
server does not understand.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import msgspec
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from parley.chat.live import Session
from parley.errors import AuthenticationFailed, ServiceUnavailable
from parley.identity.accounts import Authenticated
from parley.services import Services

router = APIRouter(tags=["realtime"])
AUTH_WAIT_S = 10.0
UNAUTHENTICATED = 4401
TRY_AGAIN_LATER = 1013
UNSUPPORTED = 1003


class _ClientMessage(msgspec.Struct):
    type: str
    token: str | None = None
    message_id: str | None = None


def _encode(message: dict[str, Any]) -> str:
    return msgspec.json.encode(message).decode()


async def _authenticate(ws: WebSocket, svc: Services, token: str | None) -> Authenticated | None:
    if token is None:
        try:
            async with asyncio.timeout(AUTH_WAIT_S):
                first = msgspec.json.decode(await ws.receive_text(), type=_ClientMessage)
        except (TimeoutError, msgspec.DecodeError):
            first = _ClientMessage("")
        token = first.token if first.type == "auth" else None
    try:
        if token is None:
            raise AuthenticationFailed("send an access token first", code="unauthenticated")
        return await svc.accounts.authenticate(token)
    except AuthenticationFailed as exc:
        await ws.send_text(_encode(exc.to_body()))
        await ws.close(UNAUTHENTICATED, "authentication failed")
        return None
    except ServiceUnavailable as exc:  # sessions cannot be checked: say so, do not crash
        await ws.send_text(_encode(exc.to_body()))
        await ws.close(TRY_AGAIN_LATER, "try again later")
        return None


def _header_token(ws: WebSocket) -> str | None:
    scheme, _, token = (ws.headers.get("authorization") or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def _revoked_meanwhile(svc: Services, sid: str) -> bool:
    """Whether the session was revoked between authenticating and joining the hub (its
    notice went by before this socket could hear it). Unknown counts as revoked."""
    try:
        return await svc.accounts.is_revoked(sid)
    except ServiceUnavailable:
        return True


@router.websocket("/api/ws")
async def realtime(ws: WebSocket) -> None:
    svc: Services = ws.app.state.services
    await ws.accept()
    try:
        auth = await _authenticate(ws, svc, _header_token(ws))
    except WebSocketDisconnect:
        return
    if auth is None:
        return
    session = await svc.hub.join(auth.user.id, auth.claims.sid)
    try:
        if await _revoked_meanwhile(svc, auth.claims.sid):  # revoked before we joined the hub
            await ws.close(UNAUTHENTICATED, "session revoked")
            return
        await ws.send_text(
            _encode({"type": "ready", "user_id": auth.user.id, "expires_at": auth.claims.exp})
        )
        await _serve(ws, svc, session, auth)
    except WebSocketDisconnect:
        pass
    finally:
        await svc.hub.leave(session)


async def _serve(ws: WebSocket, svc: Services, session: Session, auth: Authenticated) -> None:
    """Forward the session's queue and answer the client until one side ends: the client
    leaves, the token expires, the client falls behind, or it sends nonsense."""
    expires = [float(auth.claims.exp)]

    async def send() -> int:
        while True:
            await ws.send_text((await session.queue.get()).decode())

    async def receive() -> int:
        while True:
            try:
                message = msgspec.json.decode(await ws.receive_text(), type=_ClientMessage)
            except (msgspec.DecodeError, KeyError):
                return UNSUPPORTED
            if message.type == "ping":
                await ws.send_text(_encode({"type": "pong"}))
            elif message.type == "quiet" and message.message_id:
                session.quiet(message.message_id)
            elif message.type == "auth" and message.token:
                try:
                    fresh = await svc.accounts.authenticate(message.token)
                except AuthenticationFailed:
                    return UNAUTHENTICATED
                if fresh.user.id != auth.user.id:
                    return UNAUTHENTICATED
                expires[0] = float(fresh.claims.exp)
                session.sid = fresh.claims.sid
                if await _revoked_meanwhile(svc, fresh.claims.sid):  # as at the start
                    return UNAUTHENTICATED
                await ws.send_text(
                    _encode(
                        {"type": "ready", "user_id": fresh.user.id, "expires_at": fresh.claims.exp}
                    )
                )
            else:
                return UNSUPPORTED

    async def expiry() -> int:
        while (left := expires[0] - time.time()) > 0:  # noqa: ASYNC110 - re-auth moves it
            await asyncio.sleep(min(left, 60))
        return UNAUTHENTICATED

    async def overflow() -> int:
        await session.overflowed.wait()
        return TRY_AGAIN_LATER

    async def revoked() -> int:
        await session.revoked.wait()
        return UNAUTHENTICATED

    jobs = (send, receive, expiry, overflow, revoked)
    tasks = [asyncio.ensure_future(job()) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finished = done.pop()
    if finished.exception() is not None:  # the connection went away under send or receive
        return
    with contextlib.suppress(RuntimeError):  # the client may already be gone
        await ws.close(finished.result())
