"""Server-sent events decoding for upstream streams (OpenAI, Anthropic, Gemini all use SSE)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    event: str
    data: str


async def iter_sse(lines: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    """Group lines into events per the WHATWG rules: ``data:`` lines join with ``\\n``,
    a blank line dispatches, ``:`` lines are comments. A final event without its blank
    line is still dispatched (some servers end the body right after the last data line)."""
    event = ""
    data: list[str] = []
    async for raw in lines:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield SSEEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield SSEEvent(event or "message", "\n".join(data))


async def iter_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Each event's data, as bytes, straight from a body's raw chunks: for upstreams whose
    events carry no ``event:`` name (OpenAI's), where the JSON decoder takes bytes.

    The same events as ``iter_sse`` (``data:`` lines joined with ``\\n``, comments and
    other fields skipped, CRLF or LF line ends, a last event without its blank line still
    dispatched), without a generator step, a UTF-8 decode and a partition per line: the
    common ``data: {...}`` block is one ``find`` and a slice. A per-chunk cost, for every
    chunk of every stream."""
    pending = b""
    async for chunk in chunks:
        pending = pending + chunk if pending else chunk
        if b"\r" in pending:
            pending = _lf_only(pending)
        start = 0
        while (end := pending.find(b"\n\n", start)) >= 0:
            data = _data_of(pending[start:end])
            start = end + 2
            if data is not None:
                yield data
        pending = pending[start:]
    if pending.strip(b"\n"):
        data = _data_of(pending.strip(b"\n"))
        if data is not None:
            yield data


def _lf_only(buffer: bytes) -> bytes:
    """CRLF and lone CR line ends as LF; a CR at the very end may be half of a CRLF whose
    LF has not arrived, so it is kept for the next chunk."""
    tail = buffer.endswith(b"\r")
    body = buffer[:-1] if tail else buffer
    body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return body + b"\r" if tail else body


def _data_of(block: bytes) -> bytes | None:
    if block.startswith(b"data: ") and b"\n" not in block:
        return block[6:]
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line == b"data":
            data.append(b"")
    return b"\n".join(data) if data else None
