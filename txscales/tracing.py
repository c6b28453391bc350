"""
Tracing: each ThriftMux, Thrift-over-HTTP and HTTP call a sampled span,
recorded by a tracer the user turns on.

    >>> from txscales import tracing
    >>> tracing.useOpenTelemetry()        # the global SDK TracerProvider

Calls carry Finagle's trace ids (Mux's C{TraceContext}, Zipkin's B3
headers on HTTP) whether a tracer is on or not, so that a trace crosses
Finagle and txscales services unbroken.  With a tracer on, new root traces
are sampled at L{txscales._sampling.SAMPLER}'s rate (L{sampleRate}), and
the decision travels downstream in the trace flags.  With none (the
default), nothing is sampled or recorded and calls cost what they did.
"""

from typing import Any, Optional

from txscales._sampling import SAMPLER
from txscales._tracing import CLIENT, SERVER, TRACING, TraceId
from txscales.interfaces import ISpan, ITracer

__all__ = [
    "CLIENT",
    "SERVER",
    "ISpan",
    "ITracer",
    "TraceId",
    "currentTracer",
    "sampleRate",
    "setSampleRate",
    "useOpenTelemetry",
    "useTracer",
]


def useTracer(tracer: Optional[ITracer]) -> None:
    """
    Record the process's spans with C{tracer}, or with none (None, the
    default).
    """
    TRACING.tracer = tracer


def currentTracer() -> Optional[ITracer]:
    """
    @return: the tracer spans are recorded with, or None.
    """
    return TRACING.tracer


def useOpenTelemetry(tracerProvider: Any = None) -> ITracer:
    """
    Record the process's spans as OpenTelemetry spans, with the same ids
    as on the wire.  Needs the C{otel} extra (C{pip install txscales[otel]}).

    @param tracerProvider: an C{opentelemetry.sdk.trace.TracerProvider}, or
        None for the global one.
    @return: the tracer now in use.
    @raise ImportError: without the OpenTelemetry SDK.
    @raise ValueError: when the provider is not the SDK's.
    """
    try:
        from txscales._otel import OpenTelemetryTracer
    except ImportError as e:
        raise ImportError("txscales' OpenTelemetry tracing needs pip install 'txscales[otel]' (%s)" % (e,)) from e
    tracer = OpenTelemetryTracer(tracerProvider)
    useTracer(tracer)
    return tracer


def sampleRate() -> float:
    """
    @return: the share of new root traces that are sampled.
    """
    return SAMPLER.rate


def setSampleRate(rate: float) -> None:
    """
    Sample the share C{rate} (0.0 to 1.0) of new root traces; Finagle's
    default is 0.001.

    @raise ValueError: for a rate outside [0, 1].
    """
    SAMPLER.rate = rate
