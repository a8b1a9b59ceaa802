"""structlog setup: contextvars first (request_id, model...), secrets scrubbed last."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import msgspec
import structlog

from parley.observability.redact import redactor


def _scrub(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    return {key: redactor.scrub_value(value) for key, value in event_dict.items()}


def _scrub_line(_: Any, __: str, line: str) -> str:
    """The JSON format scrubs the rendered line once instead of each value (6 us against
    20 us for the per-request line): it also covers keys and nested values, and the
    redactor knows each secret's JSON-escaped spelling too."""
    return redactor.scrub(line)


def _json_line(event_dict: Any, **_: Any) -> str:
    """msgspec instead of the standard library: a seventh of ``json.dumps``'s time on the
    per-request log line. Values it cannot encode are logged as their ``str``."""
    return _encode_line(event_dict).decode()


_encode_line = msgspec.json.Encoder(enc_hook=str).encode


def configure_logging(level: str = "info", fmt: str = "console", *, cache: bool = False) -> None:
    """``cache``: each module's logger is built once instead of on every call (the server
    sets it; tests leave it off so ``structlog.testing.capture_logs`` still sees events)."""
    tail: list[Any] = (
        [structlog.processors.JSONRenderer(serializer=_json_line), _scrub_line]
        if fmt == "json"
        else [_scrub, structlog.dev.ConsoleRenderer(colors=False)]
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *tail,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=cache,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
