"""The OpenTelemetry side of ``tracing.py``: imported only when tracing is on.

Parley keeps its own ``TracerProvider`` rather than installing a process-global one, so an
embedding application's own tracing setup is never replaced. The exporter is OTLP over
HTTP/protobuf, configured entirely by the standard variables
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_EXPORTER_OTLP_TIMEOUT``,
``OTEL_EXPORTER_OTLP_COMPRESSION``); so are the sampler (``OTEL_TRACES_SAMPLER``), the
resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``) and the batch processor
(``OTEL_BSP_*``). Propagation is W3C Trace Context.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from parley.observability.tracing import Attributes

T = TypeVar("T")
_PROPAGATOR = TraceContextTextMapPropagator()


def _resource(service_version: str) -> Resource:
    attributes: dict[str, str] = {"service.version": service_version}
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    if not named:  # the standard variables win; "parley" only replaces "unknown_service"
        attributes["service.name"] = "parley"
    return Resource.create(attributes)


def _error_type(exc: BaseException) -> str:
    code = getattr(exc, "code", None) or getattr(exc, "error_type", None)
    return code if isinstance(code, str) and code else type(exc).__name__


def _failed(span: Span, exc: BaseException) -> None:
    span.set_attribute("error.type", _error_type(exc))
    span.set_status(Status(StatusCode.ERROR, str(getattr(exc, "message", "")) or None))


class Tracing:
    def __init__(self, service_version: str) -> None:
        self.provider = TracerProvider(resource=_resource(service_version))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer = self.provider.get_tracer("parley", service_version)

    def flush(self) -> None:
        self.provider.force_flush()

    def shutdown(self) -> None:
        self.provider.shutdown()

    async def serve(
        self,
        app: Callable[[Any, Any, Any], Awaitable[None]],
        scope: Any,
        receive: Any,
        send: Any,
        route: str,
    ) -> None:
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"traceparent", b"tracestate")
        }
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        method = scope["method"]
        attributes = {
            "http.request.method": method,
            "url.path": scope["path"],
            "http.route": route,
        }
        with self.tracer.start_as_current_span(
            f"{method} {route}", context=parent, kind=SpanKind.SERVER, attributes=attributes
        ) as span:

            async def traced_send(message: Any) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                        span.set_attribute("error.type", str(status))
                await send(message)

            await app(scope, receive, traced_send)

    async def within(self, name: str, awaitable: Awaitable[T], attributes: Attributes | None) -> T:
        with self.tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                return await awaitable
            except BaseException as exc:
                _failed(span, exc)
                raise

    def start_operation(self, operation_name: str, model: str) -> Span:
        return self.tracer.start_span(
            f"{operation_name} {model}",
            kind=SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": operation_name, "gen_ai.request.model": model},
        )

    async def operation(
        self,
        operation_name: str,
        model: str,
        awaitable: Awaitable[T],
        describe: Callable[[T], Attributes],
    ) -> T:
        span = self.start_operation(operation_name, model)
        try:
            with trace.use_span(span, end_on_exit=False):
                result = await awaitable
        except BaseException as exc:
            self.end(span, {}, exc)
            raise
        self.end(span, describe(result))
        return result

    def current(self, span: Span) -> contextlib.AbstractContextManager[Any]:
        return trace.use_span(span, end_on_exit=False)

    def end(self, span: Span, attributes: Attributes, error: BaseException | None = None) -> None:
        span.set_attributes(attributes)
        if error is not None:
            _failed(span, error)
        span.end()

    def annotate(self, attributes: Attributes) -> None:
        trace.get_current_span().set_attributes(attributes)

    @contextlib.contextmanager
    def span(self, name: str, attributes: Attributes | None) -> Iterator[Span | None]:
        """Only inside a traced request: a background task's own polls (the usage
        writer's reads, listeners) would otherwise each be a trace of their own."""
        if not trace.get_current_span().is_recording():
            yield None
            return
        with self.tracer.start_as_current_span(
            name,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                _failed(span, exc)
                raise

    def outgoing(self, headers: Mapping[str, str]) -> dict[str, str]:
        carrier = dict(headers)
        _PROPAGATOR.inject(carrier)
        return carrier
