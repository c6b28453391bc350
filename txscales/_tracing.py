"""
Trace ids and the spans made of them, shared by the protocols: Finagle's
trace id and flags (MUX.md 2.2), Zipkin's B3 headers, and the tracer that
records spans, none unless the user turns one on (L{txscales.tracing}).
Plain Python, no Twisted.

With no tracer, calls carry trace ids as before and decide nothing: a root
call says "sampling unknown" (flags 0), as Finagle's C{NullTracer} does.
With a tracer, a root call draws its sampling decision from
L{txscales._sampling.SAMPLER}, a call made while serving a request inherits
its caller's, and both send it downstream in the flags.
"""

from contextvars import ContextVar
from random import Random
from struct import Struct
from typing import Any, Callable, Dict, List, Optional

from txscales._sampling import SAMPLER

DEBUG = 1
"""Finagle's debug flag: record this trace whatever the sampler says."""
SAMPLING_KNOWN = 2
"""Finagle's flag: a sampling decision was made (the next flag holds it)."""
SAMPLED = 4
"""Finagle's flag: the trace is sampled (recorded), if L{SAMPLING_KNOWN}."""

CLIENT = "client"
"""A span's kind: the caller's side of a call."""
SERVER = "server"
"""A span's kind: the server's side of a call."""

_trace = Struct(">QQQQ")
_traceHigh = Struct(">QQQQQ")
_KNOWN_AND_SAMPLED = SAMPLING_KNOWN | SAMPLED


class TraceId:
    """
    A Finagle (Zipkin) trace id.

    @ivar spanId: this span.
    @ivar parentId: the parent span (equal to C{spanId} for a root).
    @ivar traceId: the trace (equal to C{spanId} for a root); its low 64
        bits when the trace id has 128.
    @ivar flags: Finagle's trace flags (L{DEBUG}, L{SAMPLING_KNOWN},
        L{SAMPLED}).
    @ivar traceIdHigh: the high 64 bits of a 128-bit trace id, or None.
    """

    __slots__ = ("spanId", "parentId", "traceId", "flags", "traceIdHigh")

    def __init__(
        self, spanId: int, parentId: int, traceId: int, flags: int = 0, traceIdHigh: Optional[int] = None
    ) -> None:
        self.spanId = spanId
        self.parentId = parentId
        self.traceId = traceId
        self.flags = flags
        self.traceIdHigh = traceIdHigh

    def child(self, spanId: int) -> "TraceId":
        """
        @return: the id of a new span, child of this one.
        """
        return TraceId(spanId, self.spanId, self.traceId, self.flags, self.traceIdHigh)

    @property
    def sampled(self) -> Optional[bool]:
        """
        Whether the trace is recorded: True, False, or None when no
        decision was made yet.  Debug traces are.
        """
        if self.flags & DEBUG:
            return True
        if self.flags & SAMPLING_KNOWN:
            return bool(self.flags & SAMPLED)
        return None

    @property
    def fullTraceId(self) -> int:
        """
        The whole trace id: 128 bits with C{traceIdHigh}, else 64.
        """
        return ((self.traceIdHigh or 0) << 64) | self.traceId

    def encode(self) -> bytes:
        """
        @return: the 32-byte (40 with C{traceIdHigh}) context value.
        """
        if self.traceIdHigh is None:
            return _trace.pack(self.spanId, self.parentId, self.traceId, self.flags)
        return _traceHigh.pack(self.spanId, self.parentId, self.traceId, self.flags, self.traceIdHigh)

    @classmethod
    def decode(cls, value: bytes) -> "Optional[TraceId]":
        """
        @return: a L{TraceId}, or None when C{value} has the wrong size.
        """
        if len(value) == 32:
            return cls(*_trace.unpack(value))
        if len(value) == 40:
            return cls(*_traceHigh.unpack(value))
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TraceId) and all(getattr(self, f) == getattr(other, f) for f in self.__slots__)

    def __repr__(self) -> str:
        return "TraceId(span=%016x, parent=%016x, trace=%s, flags=%d)" % (
            self.spanId,
            self.parentId,
            "%032x" % (self.fullTraceId,) if self.traceIdHigh is not None else "%016x" % (self.traceId,),
            self.flags,
        )


currentTrace: "ContextVar[Optional[TraceId]]" = ContextVar("txscales.currentTrace", default=None)
"""While a server handles a request with a tracer on: the trace id the
calls made for it descend from (the server's span, or the caller's when the
request is not sampled), whichever protocol it came in by."""


class _Tracing:
    """
    The process's tracer, read by every call: C{tracer} is an
    L{txscales.interfaces.ITracer}, or None (the default) for none.
    """

    __slots__ = ("tracer",)

    def __init__(self) -> None:
        self.tracer: Any = None


TRACING = _Tracing()
"""The tracer calls report their spans to; L{txscales.tracing} sets it."""


def decide(flags: int, random: Random) -> int:
    """
    @param flags: a trace's flags.
    @param random: where the draw comes from, if one is needed.
    @return: C{flags}, with a sampling decision drawn from
        L{txscales._sampling.SAMPLER} when they hold none.
    """
    if flags & (DEBUG | SAMPLING_KNOWN):
        return flags
    return flags | (_KNOWN_AND_SAMPLED if SAMPLER.sample(random.random()) else SAMPLING_KNOWN)


def clientTrace(parent: Optional[TraceId], random: Random) -> TraceId:
    """
    @param parent: the trace the call is made for, or None for a root call.
    @param random: the caller's C{Random}, for the new span id and the
        sampling draw.
    @return: the trace id of a new client call: a child of C{parent} with
        its decision, or a new root with a new decision.
    """
    spanId = random.getrandbits(64)
    if parent is None:
        return TraceId(spanId, spanId, spanId, decide(0, random))
    return TraceId(spanId, parent.spanId, parent.traceId, decide(parent.flags, random), parent.traceIdHigh)


def serverTrace(incoming: Optional[TraceId], random: Random) -> TraceId:
    """
    @param incoming: the trace id a request came with, or None.
    @param random: the server's C{Random}.
    @return: C{incoming} with a sampling decision (a new root trace when
        there is none): the span a server records the request in and the
        calls it makes for it descend from.  A sampled request's server
        span has a new span id, child of the caller's span, so that it is a
        span of its own for OpenTelemetry; a request not sampled keeps the
        caller's span id, as Finagle's shared spans do.
    """
    if incoming is None:
        return clientTrace(None, random)
    flags = decide(incoming.flags, random)
    if flags & DEBUG or flags & _KNOWN_AND_SAMPLED == _KNOWN_AND_SAMPLED:
        return TraceId(random.getrandbits(64), incoming.spanId, incoming.traceId, flags, incoming.traceIdHigh)
    if flags == incoming.flags:
        return incoming
    return TraceId(incoming.spanId, incoming.parentId, incoming.traceId, flags, incoming.traceIdHigh)


def destAttributes(dest: str) -> Dict[str, Any]:
    """
    @param dest: a client's destination URI.
    @return: the attributes of its client spans that name the server:
        C{txscales.dest}, and C{server.address} and C{server.port} when
        the destination is one static C{host:port}.
    """
    attributes: Dict[str, Any] = {"txscales.dest": dest}
    scheme, _, rest = dest.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme in ("tcp", "tls") and "," not in rest and "/" not in rest and port.isdigit() and host:
        attributes["server.address"] = host.strip("[]")
        attributes["server.port"] = int(port)
    return attributes


# Zipkin's B3 propagation (github.com/openzipkin/b3-propagation), for HTTP.

B3_TRACE_ID = b"X-B3-TraceId"
B3_SPAN_ID = b"X-B3-SpanId"
B3_PARENT_SPAN_ID = b"X-B3-ParentSpanId"
B3_SAMPLED = b"X-B3-Sampled"
B3_FLAGS = b"X-B3-Flags"


def b3Headers(trace: TraceId) -> Dict[bytes, List[bytes]]:
    """
    @return: the B3 headers carrying C{trace}, in Twisted's header form
        (name to a list of values): the ids in lower-case hex, the parent
        unless it is a root, C{X-B3-Flags: 1} for debug, else
        C{X-B3-Sampled} when a decision was made.
    """
    if trace.traceIdHigh is None:
        traceId = b"%016x" % (trace.traceId,)
    else:
        traceId = b"%016x%016x" % (trace.traceIdHigh, trace.traceId)
    headers = {B3_TRACE_ID: [traceId], B3_SPAN_ID: [b"%016x" % (trace.spanId,)]}
    if trace.parentId != trace.spanId:
        headers[B3_PARENT_SPAN_ID] = [b"%016x" % (trace.parentId,)]
    if trace.flags & DEBUG:
        headers[B3_FLAGS] = [b"1"]
    elif trace.flags & SAMPLING_KNOWN:
        headers[B3_SAMPLED] = [b"1" if trace.flags & SAMPLED else b"0"]
    return headers


def _hexId(value: Optional[bytes], digits: int) -> Optional[int]:
    if value is None or len(value) not in (16, digits):
        return None
    try:
        return int(value, 16)
    except ValueError:
        return None


def fromB3(header: Callable[[bytes], Optional[bytes]]) -> Optional[TraceId]:
    """
    @param header: returns a request header's (first) value, or None.
    @return: the L{TraceId} the B3 headers carry, or None when they carry
        none or a malformed one.
    """
    traceHex = header(B3_TRACE_ID)
    full = _hexId(traceHex, 32)
    spanId = _hexId(header(B3_SPAN_ID), 16)
    if full is None or spanId is None:
        return None
    parent = header(B3_PARENT_SPAN_ID)
    parentId = spanId if parent is None else _hexId(parent, 16)
    if parentId is None:
        return None
    flags = 0
    sampled = header(B3_SAMPLED)
    if header(B3_FLAGS) == b"1" or sampled == b"d":
        flags = DEBUG
    elif sampled in (b"1", b"true"):
        flags = _KNOWN_AND_SAMPLED
    elif sampled in (b"0", b"false"):
        flags = SAMPLING_KNOWN
    high = full >> 64 if traceHex is not None and len(traceHex) == 32 else None
    return TraceId(spanId, parentId, full & 0xFFFFFFFFFFFFFFFF, flags, high)
