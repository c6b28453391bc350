"""
The OpenTelemetry tracer: txscales' spans recorded as OpenTelemetry spans
whose ids are the ones on the wire (needs the C{otel} extra).
"""

import threading
from typing import Any, Dict, Optional

from opentelemetry import trace as otelTrace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from zope.interface import implementer

from txscales._tracing import SERVER, TraceId
from txscales._version import __version__
from txscales.interfaces import ISpan, ITracer

_KINDS = {SERVER: SpanKind.SERVER}
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class _WireIds(IdGenerator):
    """
    The ids of the span being started: the ones its call carries on the
    wire, set by L{OpenTelemetryTracer.startSpan} just before the SDK asks.
    """

    def __init__(self) -> None:
        self._next = threading.local()

    def set(self, traceId: int, spanId: int) -> None:
        self._next.traceId = traceId
        self._next.spanId = spanId

    def generate_span_id(self) -> int:
        return self._next.spanId

    def generate_trace_id(self) -> int:
        return self._next.traceId


@implementer(ISpan)
class _Span:
    """
    An L{ISpan} recorded as an OpenTelemetry span.
    """

    __slots__ = ("_span",)

    def __init__(self, span: Any) -> None:
        self._span = span

    def setAttribute(self, key: str, value: Any) -> None:
        self._span.set_attribute(key, value)

    def fail(self, exception: BaseException) -> None:
        self._span.record_exception(exception)
        self._span.set_status(Status(StatusCode.ERROR, "%s: %s" % (type(exception).__name__, exception)))

    def end(self) -> None:
        self._span.end()


@implementer(ITracer)
class OpenTelemetryTracer:
    """
    Record txscales' spans with an OpenTelemetry SDK C{TracerProvider}.

    A span's OpenTelemetry ids are its Finagle ids: the span id is the
    64-bit span id on the wire, the trace id the 64-bit trace id (its low
    half; the high half is C{traceIdHigh}, or zero), and the parent is the
    span whose id the call carries as its parent.
    """

    def __init__(self, tracerProvider: Any = None) -> None:
        """
        @param tracerProvider: an C{opentelemetry.sdk.trace.TracerProvider},
            or None for the global one (which must be the SDK's).
        @raise ValueError: when the provider is not the SDK's, whose spans
            could not take the ids on the wire.
        """
        if tracerProvider is None:
            tracerProvider = otelTrace.get_tracer_provider()
        tracer = tracerProvider.get_tracer("txscales", __version__)
        if not hasattr(tracer, "id_generator"):
            raise ValueError(
                "txscales records spans with an OpenTelemetry SDK TracerProvider, not %r" % (tracerProvider,)
            )
        # A tracer of our own, whose id generator gives the ids on the wire.
        self._ids = _WireIds()
        tracer.id_generator = self._ids
        self._tracer = tracer

    def startSpan(self, name: str, kind: str, trace: TraceId, attributes: Dict[str, Any]) -> _Span:
        traceId = trace.fullTraceId
        context: Optional[Context]
        if trace.parentId == trace.spanId:
            context = Context()
        else:
            parent = SpanContext(traceId, trace.parentId, is_remote=kind == SERVER, trace_flags=_SAMPLED)
            context = otelTrace.set_span_in_context(NonRecordingSpan(parent), Context())
        self._ids.set(traceId, trace.spanId)
        span = self._tracer.start_span(
            name, context=context, kind=_KINDS.get(kind, SpanKind.CLIENT), attributes=attributes
        )
        return _Span(span)
