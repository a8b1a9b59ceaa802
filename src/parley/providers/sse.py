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
