"""OpenTelemetry tracing, behind one flag: ``ON`` is False unless ``PARLEY_TRACING=otlp``.

Nothing of the OpenTelemetry SDK, its exporter or its propagator is imported while tracing
is off: the gateway's hot path reads ``tracing.ON`` (one module attribute) and takes the
untraced branch. When on, :func:`enable` imports ``observability/otel.py`` (the
``parley[otel]`` extra) and every helper below delegates to it. The helpers are only ever
called behind an ``if tracing.ON`` check, so none of them has to be cheap when off.

(FastAPI itself imports ``opentelemetry-api``'s context and metrics modules for its own
optional telemetry; that is FastAPI's import, not a cost Parley adds.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from parley.observability import otel

T = TypeVar("T")
Attributes = Mapping[str, str | int | float | bool | Sequence[str]]

ON = False
"""Read on every traced step; set by :func:`enable`, cleared by :func:`disable`."""

_otel: otel.Tracing | None = None


def enable(service_version: str) -> None:
    """Start exporting spans over OTLP/HTTP, configured by the standard ``OTEL_*``
    variables (endpoint, headers, timeout, sampler, resource, batch sizes)."""
    global ON, _otel  # noqa: PLW0603 - the one switch every traced step reads
    try:
        from parley.observability import otel  # noqa: PLC0415 - only when tracing is on
    except ImportError as exc:  # the extra is not installed
        raise RuntimeError(
            "PARLEY_TRACING=otlp needs the tracing extra: pip install 'parley[otel]'"
        ) from exc
    _otel = otel.Tracing(service_version)
    ON = True


def disable() -> None:
    """Export what is pending and stop (the app's shutdown)."""
    global ON, _otel  # noqa: PLW0603
    ON = False
    impl, _otel = _otel, None
    if impl is not None:
        impl.shutdown()


def flush() -> None:
    """Export every finished span now (tests, and before a process exits)."""
    if _otel is not None:
        _otel.flush()


def _impl() -> otel.Tracing:
    assert _otel is not None, "tracing helpers are called only when tracing.ON"
    return _otel


async def serve(
    app: Callable[[Any, Any, Any], Awaitable[None]],
    scope: Any,
    receive: Any,
    send: Any,
    route: str,
) -> None:
    """Run one HTTP request inside a server span that continues the client's
    ``traceparent`` (when it sent a valid one)."""
    await _impl().serve(app, scope, receive, send, route)


async def within(name: str, awaitable: Awaitable[T], attributes: Attributes | None = None) -> T:
    """Await inside a child span of the current one; an exception marks it as an error."""
    return await _impl().within(name, awaitable, attributes)


async def operation(
    operation_name: str,
    model: str,
    awaitable: Awaitable[T],
    describe: Callable[[T], Attributes],
) -> T:
    """A GenAI operation span (``chat {model}``) around a whole non-streaming call;
    ``describe`` turns its result into the response attributes."""
    return await _impl().operation(operation_name, model, awaitable, describe)


def start_operation(operation_name: str, model: str) -> Any:
    """The same span for a stream, which outlives one await: ended by :func:`end`."""
    return _impl().start_operation(operation_name, model)


def current(span: Any) -> AbstractContextManager[Any]:
    """Make ``span`` the current span for a block (without ending it after)."""
    return _impl().current(span)


def end(span: Any, attributes: Attributes, error: BaseException | None = None) -> None:
    _impl().end(span, attributes, error)


def annotate(attributes: Attributes) -> None:
    """Add attributes to the current span."""
    _impl().annotate(attributes)


def span(name: str, attributes: Attributes | None = None) -> AbstractContextManager[Any]:
    """A child span for a ``with`` block (database and Redis calls)."""
    return _impl().span(name, attributes)


def outgoing(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` plus the current span's ``traceparent`` (and ``tracestate``)."""
    return _impl().outgoing(headers)
