"""The coalescing transport under ``parley serve``'s HTTP protocol (api/server.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from parley.api.server import CoalescingTransport, ParleyHttpProtocol
from parley.testing.servers import AppServer


class RecordingTransport:
    """Stands in for the socket's transport: records each call in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", None))
        self.closing = True

    def write_eof(self) -> None:
        self.calls.append(("write_eof", None))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def test_writes_in_one_loop_pass_leave_as_one_write() -> None:
    raw = RecordingTransport()
    transport = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"")
    transport.write(b"ok")
    assert raw.calls == []  # nothing before the pass ends
    assert transport.get_write_buffer_size() == 7 + 40
    await asyncio.sleep(0)
    assert raw.calls == [("write", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert raw.calls[-1] == ("write", b"next")  # a later pass is its own write


async def test_close_and_eof_send_pending_bytes_first_and_abort_drops_them() -> None:
    loop = asyncio.get_running_loop()
    raw = RecordingTransport()
    transport = CoalescingTransport(raw, loop)  # type: ignore[arg-type]
    transport.write(b"frame")
    transport.write_eof()
    transport.write(b"last")
    transport.close()
    await asyncio.sleep(0)
    assert raw.calls == [
        ("write", b"frame"),
        ("write_eof", None),
        ("write", b"last"),
        ("close", None),
    ]
    aborted = RecordingTransport()
    transport = CoalescingTransport(aborted, loop)  # type: ignore[arg-type]
    transport.write(b"never")
    transport.abort()
    await asyncio.sleep(0)
    assert aborted.calls == [("abort", None)]
    assert transport.get_extra_info("peername") == "info:peername"


async def test_served_responses_are_whole_and_keep_alive_works() -> None:
    """Through uvicorn with the protocol: several requests on one connection, each
    response complete (a lost or reordered write would break the framing)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = scope["path"].encode() * 1000
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    server = AppServer(app)
    assert server._server.config.http is ParleyHttpProtocol
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            for path in ("/a", "/bb", "/ccc"):
                response = await client.get(path)
                assert response.content == path.encode() * 1000
    finally:
        await server.stop()
