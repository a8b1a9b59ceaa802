"""Redaction of secrets, and upstream SSE decoding."""

from __future__ import annotations

import io
import json
import random
from collections.abc import AsyncIterator

import structlog

from parley.observability.logging import configure_logging
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
