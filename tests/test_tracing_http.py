"""
Tests for tracing over HTTP: B3 headers, and the spans of HTTP and Thrift
over HTTP calls, in the same traces as ThriftMux calls, between real
servers on 127.0.0.1.
"""

import random

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

import treq
from tests.test_tracing import Handler, ServersMixin, useMemoryExporter, useSampleRate
from txscales.demo.gen import TestService
from txscales.errors import ApplicationError
from txscales.http import Http, ThriftHttp, ThriftResource

try:
    from opentelemetry.trace import SpanKind, StatusCode
except ImportError:  # pragma: no cover
    pass


class Headers(Resource):
    """
    A resource answering C{ok} and keeping each request's headers.
    """

    isLeaf = True

    def __init__(self):
        Resource.__init__(self)
        self.seen = []

    def render_GET(self, request):
        self.seen.append(request.requestHeaders)
        return b"ok"


class HttpSpanTests(ServersMixin, TestCase):
    """
    HTTP calls carry B3 headers, and Thrift over HTTP records spans in the
    same trace as the ThriftMux calls it makes.
    """

    def setUp(self):
        self.exporter = useMemoryExporter(self)

    def listen(self, resource):
        port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    @inlineCallbacks
    def get(self, resource, path):
        client = Http.newClient("tcp://127.0.0.1:%d" % (self.listen(resource),), reactor=reactor, random=random.Random(6))
        self.addCleanup(client.close)
        response = yield client.get(path, headers={"X-Other": ["kept"]})
        yield treq.content(response)

    @inlineCallbacks
    def test_b3Sampled(self):
        """
        A sampled request carries its ids and decision as B3 headers and is a
        client span with those ids.
        """
        useSampleRate(self, 1.0)
        resource = Headers()
        yield self.get(resource, "/x?y=1")
        [headers] = resource.seen
        [span] = self.exporter.get_finished_spans()
        self.assertEqual(headers.getRawHeaders(b"x-b3-spanid"), [b"%016x" % (span.context.span_id,)])
        self.assertEqual(headers.getRawHeaders(b"x-b3-traceid"), [b"%016x" % (span.context.trace_id,)])
        self.assertEqual(headers.getRawHeaders(b"x-b3-sampled"), [b"1"])
        self.assertEqual(headers.getRawHeaders(b"x-other"), [b"kept"])
        self.assertEqual((span.name, span.kind, span.attributes["http.response.status_code"]), ("GET /x", SpanKind.CLIENT, 200))

    @inlineCallbacks
    def test_b3SampledOut(self):
        """
        A request not sampled says so in X-B3-Sampled, and is no span.
        """
        useSampleRate(self, 0.0)
        resource = Headers()
        yield self.get(resource, "/x")
        [headers] = resource.seen
        self.assertEqual(headers.getRawHeaders(b"x-b3-sampled"), [b"0"])
        self.assertIsNone(headers.getRawHeaders(b"x-b3-parentspanid"))
        self.assertEqual(self.exporter.get_finished_spans(), ())

    @inlineCallbacks
    def test_thriftOverHttpThenThriftMux(self):
        """
        A Thrift-over-HTTP call to A, whose handler calls B over ThriftMux,
        is one trace: the HTTP client and server spans, then A's ThriftMux
        client span and B's server span.
        """
        useSampleRate(self, 1.0)
        b = Handler()
        portB = yield self.serve(b)
        a = Handler(self.client(portB, 2))
        portA = self.listen(ThriftResource(TestService.Iface, a, reactor, random=random.Random(1)))
        client = ThriftHttp.newClient(TestService.Iface, "tcp://127.0.0.1:%d" % (portA,), reactor=reactor, random=random.Random(7))
        self.addCleanup(client.close)
        self.assertEqual((yield client.query("forward")), "innerinner")
        spans = self.exporter.get_finished_spans()
        self.assertEqual(len(spans), 4)
        [root] = [s for s in spans if s.parent is None]
        byParent = {s.parent.span_id: s for s in spans if s.parent is not None}
        serverA = byParent[root.context.span_id]
        clientA = byParent[serverA.context.span_id]
        serverB = byParent[clientA.context.span_id]
        self.assertEqual(
            [(s.kind, s.attributes["rpc.system"]) for s in (root, serverA, clientA, serverB)],
            [(SpanKind.CLIENT, "thrift"), (SpanKind.SERVER, "thrift"), (SpanKind.CLIENT, "thriftmux"), (SpanKind.SERVER, "thriftmux")],
        )
        self.assertEqual(len({s.context.trace_id for s in spans}), 1)
        self.assertEqual(serverA.attributes["client.address"], "127.0.0.1")
        self.assertEqual(b.traces[-1].parentId, serverA.context.span_id)

    @inlineCallbacks
    def test_thriftOverHttpFailure(self):
        """
        A Thrift-over-HTTP call answered with a TApplicationException is an
        error on both sides, though its HTTP status is 200.
        """
        useSampleRate(self, 1.0)
        port = self.listen(ThriftResource(TestService.Iface, Handler(), reactor))
        client = ThriftHttp.newClient(TestService.Iface, "tcp://127.0.0.1:%d" % (port,), reactor=reactor)
        self.addCleanup(client.close)
        yield self.assertFailure(client.query("crash"), ApplicationError)
        self.flushLoggedErrors(RuntimeError)
        spans = self.exporter.get_finished_spans()
        self.assertEqual(sorted(s.kind.name for s in spans), ["CLIENT", "SERVER"])
        for span in spans:
            self.assertEqual(span.status.status_code, StatusCode.ERROR, span.kind)
