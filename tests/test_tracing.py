"""
Tests for tracing: Finagle's trace ids and flags, Zipkin's B3 headers, and
the spans of ThriftMux calls recorded through OpenTelemetry (the SDK's
in-memory exporter) between real servers on 127.0.0.1.  HTTP's are in
test_tracing_http, those across processes in test_tracing_servers.
"""

import random
import subprocess
import sys

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from txscales import tracing
from txscales._sampling import SAMPLER
from txscales._tracing import (
    DEBUG,
    SAMPLED,
    SAMPLING_KNOWN,
    TraceId,
    b3Headers,
    currentTrace,
    clientTrace,
    decide,
    destAttributes,
    fromB3,
    serverTrace,
)
from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales.errors import ApplicationError
from txscales.thriftmux import ThriftMux, currentRequest
from txscales.thriftmux._contexts import TRACE_KEY
from txscales.thriftmux._server import serverFactory
from txscales.thriftmux._vanilla import _readRequestHeader

try:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, StatusCode
except ImportError:  # pragma: no cover
    TracerProvider = None

# The TraceContext values of MUX.md's golden Tdispatch frames G5 and G9,
# sent by Finagle: root spans, span = parent = trace, flags 0.
G5_TRACE = bytes.fromhex("42ea40a4cb749ed6" * 3 + "0000000000000000")
G9_TRACE = bytes.fromhex("93c578d3944dc34e" * 3 + "0000000000000000")
# G5 whole: Tdispatch(2) with TraceContext, Retries and Deadline, calling
# query("String").
G5_FRAME = bytes.fromhex(
    "000000c80200000200030028636f6d2e747769747465722e66696e61676c652e74726163696e672e5472616365436f6e74657874"
    "002042ea40a4cb749ed642ea40a4cb749ed642ea40a4cb749ed60000000000000000001b636f6d2e747769747465722e66696e61"
    "676c652e52657472696573000400000000001c636f6d2e747769747465722e66696e61676c652e446561646c696e65001016953b"
    "99d17d7ec07fffffffffffffff0000000080010001000000057175657279000000000b000100000006537472696e6700"
)
KNOWN_AND_SAMPLED = SAMPLING_KNOWN | SAMPLED


def useSampleRate(case, rate):
    """
    Set the process's sample rate for the test C{case}, and restore it
    after.
    """
    previous = SAMPLER.rate
    SAMPLER.rate = rate
    case.addCleanup(setattr, SAMPLER, "rate", previous)


def useMemoryExporter(case):
    """
    Record the process's spans through OpenTelemetry into an in-memory
    exporter for the test C{case}, and turn tracing off after.

    @return: the L{InMemorySpanExporter}.
    """
    if TracerProvider is None:
        raise SkipTest("needs the otel extra (opentelemetry-sdk)")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.useOpenTelemetry(provider)
    case.addCleanup(tracing.useTracer, None)
    return exporter


class TraceIdTests(SynchronousTestCase):
    """
    Finagle's TraceContext values and flags.
    """

    def test_goldenContexts(self):
        """
        The TraceContext values of Finagle's own frames decode to root ids
        and encode back to the same bytes.
        """
        for value, id in ((G5_TRACE, 0x42EA40A4CB749ED6), (G9_TRACE, 0x93C578D3944DC34E)):
            trace = TraceId.decode(value)
            self.assertEqual(trace, TraceId(id, id, id, 0))
            self.assertIsNone(trace.sampled)
            self.assertEqual(trace.encode(), value)

    def test_traceIdHigh(self):
        """
        A 40-byte value carries a 128-bit trace id, high half last.
        """
        value = bytes.fromhex("0000000000000001" "0000000000000002" "0000000000000003" "0000000000000006" "00000000000000ff")
        trace = TraceId.decode(value)
        self.assertEqual(trace, TraceId(1, 2, 3, 6, 0xFF))
        self.assertEqual(trace.fullTraceId, (0xFF << 64) | 3)
        self.assertTrue(trace.sampled)
        self.assertEqual(trace.encode(), value)

    def test_sampled(self):
        """
        Sampled is True for debug traces and known-sampled ones, False when
        known not sampled, None when unknown.
        """
        self.assertIsNone(TraceId(1, 1, 1, 0).sampled)
        self.assertIsNone(TraceId(1, 1, 1, SAMPLED).sampled)
        self.assertFalse(TraceId(1, 1, 1, SAMPLING_KNOWN).sampled)
        self.assertTrue(TraceId(1, 1, 1, KNOWN_AND_SAMPLED).sampled)
        self.assertTrue(TraceId(1, 1, 1, DEBUG).sampled)

    def test_decide(self):
        """
        Flags without a decision get one drawn against the sample rate;
        flags with one, or debug, keep theirs.
        """
        useSampleRate(self, 1.0)
        self.assertEqual(decide(0, random.Random(1)), KNOWN_AND_SAMPLED)
        self.assertEqual(decide(SAMPLING_KNOWN, random.Random(1)), SAMPLING_KNOWN)
        SAMPLER.rate = 0.0
        self.assertEqual(decide(0, random.Random(1)), SAMPLING_KNOWN)
        self.assertEqual(decide(KNOWN_AND_SAMPLED, random.Random(1)), KNOWN_AND_SAMPLED)
        self.assertEqual(decide(DEBUG, random.Random(1)), DEBUG)

    def test_clientTrace(self):
        """
        A root call is a new trace; a call for a request is a child of its
        trace and keeps its decision and 128-bit trace id.
        """
        useSampleRate(self, 0.0)
        root = clientTrace(None, random.Random(5))
        self.assertEqual(root, TraceId(root.spanId, root.spanId, root.spanId, SAMPLING_KNOWN))
        parent = TraceId(7, 8, 9, KNOWN_AND_SAMPLED, 10)
        child = clientTrace(parent, random.Random(5))
        self.assertEqual(child, TraceId(child.spanId, 7, 9, KNOWN_AND_SAMPLED, 10))

    def test_serverTrace(self):
        """
        A sampled request gets a server span of its own, child of the
        caller's; one not sampled keeps the caller's ids; one without a
        decision gets one.
        """
        useSampleRate(self, 0.0)
        sampled = TraceId(7, 8, 9, KNOWN_AND_SAMPLED)
        server = serverTrace(sampled, random.Random(5))
        self.assertEqual(server, TraceId(server.spanId, 7, 9, KNOWN_AND_SAMPLED))
        self.assertNotEqual(server.spanId, 7)
        notSampled = TraceId(7, 8, 9, SAMPLING_KNOWN)
        self.assertIs(serverTrace(notSampled, random.Random(5)), notSampled)
        self.assertEqual(serverTrace(TraceId(7, 8, 9, 0), random.Random(5)), notSampled)


class TTwitterTests(SynchronousTestCase):
    """
    A TTwitter RequestHeader's sampling decision becomes trace flags.
    """

    def test_sampledField(self):
        """
        Field 5 (sampled) sets "sampling known" and "sampled" as Finagle
        does, unless the flags (field 7) already decide.
        """
        ids = "0a00010000000000000001" "0a00020000000000000002"
        for sampled, flags, expected in (
            ("01", "", KNOWN_AND_SAMPLED),
            ("00", "", SAMPLING_KNOWN),
            ("01", "0a00070000000000000002", SAMPLING_KNOWN),
            (None, "", 0),
        ):
            header = bytes.fromhex(ids + ("" if sampled is None else "020005" + sampled) + flags + "00")
            contexts, _, _, offset = _readRequestHeader(header)
            self.assertEqual(offset, len(header))
            self.assertEqual(TraceId.decode(dict(contexts)[TRACE_KEY]).flags, expected, (sampled, flags))


class B3Tests(SynchronousTestCase):
    """
    Zipkin's B3 headers.
    """

    def test_headers(self):
        """
        The ids travel as 16 lower-case hex digits (32 for 128-bit trace
        ids), the decision as X-B3-Sampled, debug as X-B3-Flags.
        """
        headers = b3Headers(TraceId(0xA, 0xB, 0xC, KNOWN_AND_SAMPLED))
        self.assertEqual(
            headers,
            {
                b"X-B3-TraceId": [b"000000000000000c"],
                b"X-B3-SpanId": [b"000000000000000a"],
                b"X-B3-ParentSpanId": [b"000000000000000b"],
                b"X-B3-Sampled": [b"1"],
            },
        )
        self.assertEqual(
            b3Headers(TraceId(1, 1, 1, DEBUG, 2)),
            {b"X-B3-TraceId": [b"0000000000000002" b"0000000000000001"], b"X-B3-SpanId": [b"0000000000000001"], b"X-B3-Flags": [b"1"]},
        )
        self.assertNotIn(b"X-B3-Sampled", b3Headers(TraceId(1, 1, 1, 0)))
        self.assertEqual(b3Headers(TraceId(1, 1, 1, SAMPLING_KNOWN))[b"X-B3-Sampled"], [b"0"])

    def test_roundTrip(self):
        """
        What b3Headers writes, fromB3 reads back.
        """
        for trace in (
            TraceId(0xA, 0xB, 0xC, KNOWN_AND_SAMPLED),
            TraceId(0xA, 0xA, 0xA, SAMPLING_KNOWN),
            TraceId(0xA, 0xB, 0xC, 0),
            TraceId(0xA, 0xB, 0xC, DEBUG, 0xFFFFFFFFFFFFFFFF),
        ):
            headers = b3Headers(trace)
            self.assertEqual(fromB3(lambda name: headers.get(name, [None])[0]), trace)

    def test_destAttributes(self):
        """
        Client spans name the server when the destination is one host.
        """
        self.assertEqual(
            destAttributes("tcp://10.0.0.1:9090"),
            {"txscales.dest": "tcp://10.0.0.1:9090", "server.address": "10.0.0.1", "server.port": 9090},
        )
        self.assertEqual(destAttributes("tcp://[::1]:9090")["server.address"], "::1")
        for dest in ("tcp://a:1,b:2", "zk://zk:2181/path", "tcp://a"):
            self.assertEqual(destAttributes(dest), {"txscales.dest": dest})

    def test_malformed(self):
        """
        Missing or malformed ids give no trace.
        """
        for headers in (
            {},
            {b"X-B3-TraceId": b"000000000000000c"},
            {b"X-B3-TraceId": b"zz0000000000000c", b"X-B3-SpanId": b"000000000000000a"},
            {b"X-B3-TraceId": b"c", b"X-B3-SpanId": b"000000000000000a"},
            {b"X-B3-TraceId": b"000000000000000c", b"X-B3-SpanId": b"000000000000000a", b"X-B3-ParentSpanId": b"x"},
        ):
            self.assertIsNone(fromB3(headers.get), headers)


class OptionalExtraTests(SynchronousTestCase):
    """
    OpenTelemetry is imported only when it is turned on.
    """

    def test_notImported(self):
        """
        Importing txscales' clients, servers and tracing module imports no
        OpenTelemetry module.
        """
        code = (
            "import sys, txscales.thriftmux, txscales.http, txscales.tracing; "
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        self.assertEqual((result.returncode, result.stdout.strip()), (0, "[]"), result.stderr)

    def test_extraMissing(self):
        """
        Without OpenTelemetry, turning it on raises ImportError naming the
        extra, and tracing stays off.
        """
        code = (
            "import sys; sys.modules['opentelemetry'] = None\n"
            "from txscales import tracing\n"
            "try:\n    tracing.useOpenTelemetry()\n"
            "except ImportError as e:\n    print(\"txscales[otel]\" in str(e), tracing.currentTracer())"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        self.assertEqual((result.returncode, result.stdout.strip()), (0, "True None"), result.stderr)


class OpenTelemetryIdTests(SynchronousTestCase):
    """
    The OpenTelemetry tracer records spans with the ids on the wire.
    """

    def setUp(self):
        self.exporter = useMemoryExporter(self)

    def test_goldenRootSpan(self):
        """
        Finagle's golden root TraceContext becomes a root span with that
        span id and trace id.
        """
        trace = TraceId.decode(G5_TRACE)
        tracing.currentTracer().startSpan("TestService/query", tracing.SERVER, trace, {}).end()
        [span] = self.exporter.get_finished_spans()
        self.assertEqual(span.context.span_id, 0x42EA40A4CB749ED6)
        self.assertEqual(span.context.trace_id, 0x42EA40A4CB749ED6)
        self.assertIsNone(span.parent)
        self.assertEqual(span.kind, SpanKind.SERVER)

    def test_goldenFrameJoinsFinaglesTrace(self):
        """
        A server given Finagle's golden Tdispatch frame G5 (flags 0: no
        decision) samples it at its rate and records a server span in
        Finagle's trace, child of Finagle's span; calls its handler makes
        descend from that span.
        """
        useSampleRate(self, 1.0)
        handler = Handler()
        protocol = serverFactory(TestService.Iface, handler, Clock(), random=random.Random(1)).buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(G5_FRAME)
        self.assertIn(bytes.fromhex("537472696e67537472696e67"), transport.value())
        [span] = self.exporter.get_finished_spans()
        self.assertEqual((span.context.trace_id, span.parent.span_id), (0x42EA40A4CB749ED6, 0x42EA40A4CB749ED6))
        self.assertEqual((span.name, span.kind), ("TestService/query", SpanKind.SERVER))
        [seen] = handler.traces
        self.assertEqual(
            (seen.spanId, seen.parentId, seen.traceId, seen.flags),
            (0x42EA40A4CB749ED6, 0x42EA40A4CB749ED6, 0x42EA40A4CB749ED6, 0),
        )
        [parent] = handler.parents
        self.assertEqual((parent.spanId, parent.flags), (span.context.span_id, KNOWN_AND_SAMPLED))

    def test_childSpan128(self):
        """
        A child span's parent is the span its ids name, and a 128-bit trace
        id is the OpenTelemetry trace id.
        """
        trace = TraceId(1, 2, 3, KNOWN_AND_SAMPLED, 4)
        span = tracing.currentTracer().startSpan("x", tracing.CLIENT, trace, {"rpc.method": "x"})
        span.fail(ValueError("no"))
        span.end()
        [recorded] = self.exporter.get_finished_spans()
        self.assertEqual((recorded.context.trace_id, recorded.context.span_id), ((4 << 64) | 3, 1))
        self.assertEqual((recorded.parent.trace_id, recorded.parent.span_id), ((4 << 64) | 3, 2))
        self.assertEqual(recorded.status.status_code, StatusCode.ERROR)
        self.assertEqual(recorded.attributes["rpc.method"], "x")

    def test_notSdkProvider(self):
        """
        A provider that is not the SDK's is refused.
        """
        from opentelemetry.trace import NoOpTracerProvider

        self.assertRaises(ValueError, tracing.useOpenTelemetry, NoOpTracerProvider())


class Handler(TestServiceHandler):
    """
    The demo handler, remembering each request's trace as received and the
    trace its calls descend from, and forwarding "forward" to
    C{downstream}.
    """

    def __init__(self, downstream=None):
        TestServiceHandler.__init__(self, reactor)
        self.downstream = downstream
        self.traces = []
        self.parents = []

    def query(self, x):
        request = currentRequest.get()
        self.traces.append(request.trace if request is not None else currentTrace.get())
        self.parents.append(currentTrace.get())
        if x == "crash":
            raise RuntimeError("crashed")
        if x == "forward":
            return self.downstream.query("inner")
        return x + x


class ServersMixin:
    """
    ThriftMux servers and clients on 127.0.0.1.
    """

    @inlineCallbacks
    def serve(self, handler):
        server = ThriftMux.newServer(
            TestService.Iface, handler, "tcp:0:interface=127.0.0.1", reactor=reactor, random=random.Random(1)
        )
        server.startService()
        self.addCleanup(server.stopService)
        port = yield server.listening
        return port.getHost().port

    def client(self, port, seed):
        client = ThriftMux.newClient(
            TestService.Iface, "tcp://127.0.0.1:%d" % (port,), timeout=5, reactor=reactor, random=random.Random(seed)
        )
        self.addCleanup(client.close)
        return client

    @inlineCallbacks
    def chain(self):
        """
        Serve B, and A whose "forward" calls B.

        @return: a client of A, and A's and B's handlers.
        """
        b = Handler()
        portB = yield self.serve(b)
        a = Handler(self.client(portB, 2))
        self.portA = yield self.serve(a)
        return self.client(self.portA, 3), a, b


class ThriftMuxSpanTests(ServersMixin, TestCase):
    """
    ThriftMux calls between real servers record spans in one trace.
    """

    def setUp(self):
        self.exporter = useMemoryExporter(self)

    @inlineCallbacks
    def test_chain(self):
        """
        A call to A, whose handler calls B, is one trace of four spans, each
        call a client span and a server span: the root client span, A's
        server span under it, A's client span under that, B's server span
        under it; the ids B receives are those of A's spans.
        """
        useSampleRate(self, 1.0)
        client, a, b = yield self.chain()
        self.assertEqual((yield client.query("forward")), "innerinner")
        spans = self.exporter.get_finished_spans()
        byKind = {}
        for span in spans:
            byKind.setdefault(span.kind, []).append(span)
        self.assertEqual(len(spans), 4)
        root = [s for s in byKind[SpanKind.CLIENT] if s.parent is None]
        [root] = root
        [serverA] = [s for s in byKind[SpanKind.SERVER] if s.parent.span_id == root.context.span_id]
        [clientA] = [s for s in byKind[SpanKind.CLIENT] if s.parent is not None]
        [serverB] = [s for s in byKind[SpanKind.SERVER] if s is not serverA]
        self.assertEqual(clientA.parent.span_id, serverA.context.span_id)
        self.assertEqual(serverB.parent.span_id, clientA.context.span_id)
        self.assertEqual(len({s.context.trace_id for s in spans}), 1)
        self.assertEqual(root.name, "TestService/query")
        self.assertEqual((root.attributes["server.address"], root.attributes["server.port"]), ("127.0.0.1", self.portA))
        self.assertEqual(
            (serverB.attributes["rpc.system"], serverB.attributes["rpc.service"], serverB.attributes["rpc.method"]),
            ("thriftmux", "TestService", "query"),
        )
        self.assertEqual(serverB.attributes["client.address"], "127.0.0.1")
        # On the wire: A got the root span's ids, B A's client span's, both
        # sampled.
        [toA], [toB] = a.traces, b.traces
        self.assertEqual((toA.spanId, toA.flags), (root.context.span_id, KNOWN_AND_SAMPLED))
        self.assertEqual(toA.traceId, root.context.trace_id)
        self.assertEqual(
            (toB.spanId, toB.parentId, toB.traceId, toB.flags),
            (clientA.context.span_id, serverA.context.span_id, root.context.trace_id, KNOWN_AND_SAMPLED),
        )

    @inlineCallbacks
    def test_sampledOut(self):
        """
        A root call not sampled sends "sampling known, not sampled" to A,
        whose call sends it on to B, and nobody records a span.
        """
        useSampleRate(self, 0.0)
        client, a, b = yield self.chain()
        self.assertEqual((yield client.query("forward")), "innerinner")
        self.assertEqual(self.exporter.get_finished_spans(), ())
        [toA], [toB] = a.traces, b.traces
        self.assertEqual((toA.flags, toB.flags), (SAMPLING_KNOWN, SAMPLING_KNOWN))
        self.assertEqual(toB.traceId, toA.traceId)
        self.assertEqual(toB.parentId, toA.spanId)

    @inlineCallbacks
    def test_callerDecides(self):
        """
        A call made for a sampled trace is recorded, and so are the calls
        made for it downstream, whatever this process's rate.
        """
        useSampleRate(self, 0.0)
        client, a, b = yield self.chain()
        token = currentTrace.set(TraceId(11, 12, 13, KNOWN_AND_SAMPLED))
        try:
            d = client.query("forward")
        finally:
            currentTrace.reset(token)
        self.assertEqual((yield d), "innerinner")
        spans = self.exporter.get_finished_spans()
        self.assertEqual(len(spans), 4)
        self.assertEqual({s.context.trace_id for s in spans}, {13})
        self.assertEqual((a.traces[-1].parentId, a.traces[-1].flags), (11, KNOWN_AND_SAMPLED))
        self.assertEqual(b.traces[-1].flags, KNOWN_AND_SAMPLED)

    @inlineCallbacks
    def test_off(self):
        """
        With tracing off, root calls decide nothing (flags 0, as Finagle's
        NullTracer) and nothing is recorded.
        """
        useSampleRate(self, 1.0)
        client, a, b = yield self.chain()
        tracing.useTracer(None)
        self.assertEqual((yield client.query("forward")), "innerinner")
        self.assertEqual((a.traces[-1].flags, b.traces[-1].flags), (0, 0))
        self.assertEqual(self.exporter.get_finished_spans(), ())

    @inlineCallbacks
    def test_failure(self):
        """
        A call whose handler fails is an error on both sides.
        """
        useSampleRate(self, 1.0)
        port = yield self.serve(Handler())
        yield self.assertFailure(self.client(port, 4).query("crash"), ApplicationError)
        self.flushLoggedErrors(RuntimeError)
        spans = self.exporter.get_finished_spans()
        self.assertEqual(len(spans), 2)
        for span in spans:
            self.assertEqual(span.status.status_code, StatusCode.ERROR, span.kind)
