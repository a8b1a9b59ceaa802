"""``iter_data`` (the byte-level parser OpenAI-format streams use) reads the same events as
``iter_sse`` (the WHATWG line parser), however the body is cut into chunks."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from parley.providers.sse import iter_data, iter_sse

BODIES = [
    b'data: {"a": 1}\n\ndata: {"b": 2}\n\ndata: [DONE]\n\n',
    b'data: {"a": 1}\r\n\r\ndata: {"b": 2}\r\n\r\n',  # CRLF line ends
    b'data: {"a": 1}\r\rdata: {"b": 2}\r\r',  # lone CR line ends
    b": keep-alive\n\ndata: one\ndata: two\n\n: comment\ndata:tight\n\n",
    b"event: ignored\nid: 7\nretry: 10\ndata: x\n\n\n\n\ndata\n\n",
    b'data: {"last": "without its blank line"}',
]
NOTHING = b"id: 1\n\n: only a comment\n\n"  # blocks with no data dispatch nothing


async def _chunks(body: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    last = 0
    for cut in [*sorted(cuts), len(body)]:
        if cut > last:
            yield body[last:cut]
            last = cut


async def _lines(body: bytes) -> AsyncIterator[bytes]:
    """The reference's input: LF-terminated lines (CR and CRLF ends made LF first, as
    the WHATWG rules treat all three alike)."""
    normal = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    for line in normal.splitlines(keepends=True):
        yield line


async def _collect(events: AsyncIterator[bytes]) -> list[bytes]:
    return [event async for event in events]


@pytest.mark.parametrize("body", BODIES)
async def test_every_cut_reads_the_events_the_line_parser_reads(body: bytes) -> None:
    expected = [e.data.encode() async for e in iter_sse(_lines(body))]
    assert expected  # or nothing is compared
    assert await _collect(iter_data(_chunks(body, []))) == expected
    for cut in range(1, len(body)):
        assert await _collect(iter_data(_chunks(body, [cut]))) == expected, cut
    rng = random.Random(5)  # noqa: S311 - chunk boundaries, not secrets
    for _ in range(50):
        cuts = rng.sample(range(1, len(body)), k=min(4, len(body) - 1))
        assert await _collect(iter_data(_chunks(body, cuts))) == expected, cuts


async def test_blocks_without_data_dispatch_nothing() -> None:
    assert [e async for e in iter_sse(_lines(NOTHING))] == []
    for cut in range(len(NOTHING)):
        assert await _collect(iter_data(_chunks(NOTHING, [cut]))) == []
