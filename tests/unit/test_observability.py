"""Redaction of secrets, log lines, and upstream SSE decoding."""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from parley.observability.logging import (
    _LineWriter,
    _UtcTimestamp,
    add_request_id,
    bind_request_id,
    configure_logging,
)
from parley.observability.redact import _PATTERNS, MASK, Redactor, _mask_match, redactor
from parley.providers.sse import iter_sse


def test_redactor_masks_registered_values_and_key_shapes() -> None:
    redactor = Redactor()
    redactor.register(["my-custom-secret-42", "abc"])  # "abc" too short to register
    text = (
        "key my-custom-secret-42 and Bearer eyJhbGciOi.payload.sig and sk-proj-ABCDEFGH1234"
        " and AIzaSyA1234567890123456789012345 abc"
    )
    scrubbed = redactor.scrub(text)
    for secret in ("my-custom-secret-42", "eyJhbGciOi", "sk-proj-ABCDEFGH1234", "AIzaSyA12345"):
        assert secret not in scrubbed
    assert "Bearer ***" in scrubbed
    assert scrubbed.endswith(" abc")
    assert redactor.scrub_value({"a": ["my-custom-secret-42"]}) == {"a": ["***"]}


def test_redactor_shortcut_never_skips_a_key_the_pattern_would_mask() -> None:
    """``scrub`` runs the key-shape pattern only when a marker word is present; over
    random mixes of markers in any case, it masks exactly what the pattern alone does."""
    redactor = Redactor()
    redactor.register(["registered-secret"])
    fragments = [
        "Bearer ", "BEARER\t", "bEaReR  ", "sk-", "SK-", "sk-proj-", "Sk-ant-", "pk-", "PK-",
        "AIza", "aiza", "\u212a", "\u017fk-", "ABCDEFGH12345678", "xyz", " ", "-", "_",
        "registered-secret", "0123456789abcdefghij",
    ]  # fmt: skip
    rng = random.Random(7)  # noqa: S311 - reproducible test inputs, not secrets
    for _ in range(5_000):
        text = "".join(rng.choice(fragments) for _ in range(rng.randint(1, 8)))
        reference = _PATTERNS.sub(_mask_match, text.replace("registered-secret", MASK))
        assert redactor.scrub(text) == reference, text


async def _lines(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_sse_decoding() -> None:
    events = [
        e
        async for e in iter_sse(
            _lines(
                b": comment\n",
                b"event: message_start\r\n",
                b'data: {"a":\r\n',
                b"data: 1}\n",
                b"\n",
                b"data: [DONE]\n",
                b"\n",
                b"data: tail-without-blank-line\n",
            )
        )
    ]
    assert [(e.event, e.data) for e in events] == [
        ("message_start", '{"a":\n1}'),
        ("message", "[DONE]"),
        ("message", "tail-without-blank-line"),
    ]


def test_json_log_lines_are_scrubbed_after_rendering() -> None:
    """A secret is masked in keys and nested values too, and in its JSON-escaped spelling
    (a quote or backslash in it is escaped in the line, so the raw value would not match)."""
    secret = 'pa"ss\\word-0123456789'
    redactor.register([secret])
    buffer = io.StringIO()
    configure_logging("info", "json")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(buffer))
    try:
        structlog.get_logger("t").info(
            "event", nested={"deep": [secret]}, **{secret: 1}, bearer="Bearer abcdefgh12345678"
        )
    finally:
        configure_logging()
    line = buffer.getvalue()
    assert json.loads(line)["nested"] == {"deep": [MASK]}
    assert json.loads(line)["bearer"] == f"Bearer {MASK}"
    assert "word-0123456789" not in line
    assert "abcdefgh12345678" not in line


def test_timestamp_is_structlogs_iso_utc_format_and_follows_the_clock() -> None:
    now = [1_796_130_000.25]
    stamp = _UtcTimestamp(clock=lambda: now[0])
    reference = structlog.processors.TimeStamper(fmt="iso", utc=True)
    first = stamp(None, "info", {})["timestamp"]
    assert first == "2026-12-01T13:00:00.250000Z"
    shape = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    assert shape.match(reference(None, "info", {})["timestamp"])
    now[0] += 0.5
    assert stamp(None, "info", {})["timestamp"] == "2026-12-01T13:00:00.750000Z"
    now[0] += 3600.25  # a new second (and hour): the cached prefix is not reused
    assert stamp(None, "info", {})["timestamp"] == "2026-12-01T14:00:01.000000Z"


def test_the_bound_request_id_is_on_lines_of_that_task_only() -> None:
    async def request(request_id: str) -> dict[str, object]:
        bind_request_id(request_id)
        await asyncio.sleep(0)
        return dict(add_request_id(None, "info", {"event": "x"}))

    async def both() -> list[dict[str, object]]:
        return list(await asyncio.gather(request("req-a"), request("req-b")))

    lines = asyncio.run(both())
    assert [line["request_id"] for line in lines] == ["req-a", "req-b"]
    assert add_request_id(None, "info", {"event": "x"}) == {"event": "x"}  # none bound here
    explicit = asyncio.run(_explicit_id_wins())
    assert explicit["request_id"] == "given"


async def _explicit_id_wins() -> dict[str, object]:
    bind_request_id("bound")
    return dict(add_request_id(None, "info", {"event": "x", "request_id": "given"}))


def test_line_writer_writes_whole_lines_from_many_threads(tmp_path: Path) -> None:
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    writer = _LineWriter(fd)
    long = "x" * 70_000  # past a pipe's atomic size: the lock keeps it whole

    def emit(tag: str) -> None:
        for i in range(200):
            writer.msg(f"{tag}-{i}-{long if i % 50 == 0 else 'short'}-\u00e9")

    threads = [threading.Thread(target=emit, args=(tag,)) for tag in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    os.close(fd)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 800
    assert all(re.fullmatch(r"[abcd]-\d+-(x{70000}|short)-\u00e9", line) for line in lines)
