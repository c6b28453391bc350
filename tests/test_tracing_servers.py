"""
Tracing across real processes: a trace that leaves this process for a
C{twistd txscales serve} server keeps its ids and sampling decision.
"""

import os

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from tests._twistd import startTwistd
from tests.test_tracing import KNOWN_AND_SAMPLED, Handler, ServersMixin, useMemoryExporter, useSampleRate
from txscales._tracing import SAMPLING_KNOWN
from txscales.demo.handler import TestServiceHandler
from txscales.thriftmux import currentRequest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ReportingHandler(TestServiceHandler):
    """
    The demo handler, whose C{query} answers with the trace id its request came
    with: span, parent and trace ids in hex, then the flags.
    """

    def query(self, x):
        trace = currentRequest.get().trace
        return "%x %x %x %d" % (trace.spanId, trace.parentId, trace.traceId, trace.flags)


def makeReportingHandler():
    """
    @return: a L{ReportingHandler}, for C{twistd txscales serve --handler}.
    """
    from twisted.internet import reactor

    return ReportingHandler(reactor)


class ProcessTests(ServersMixin, TestCase):
    """
    A ThriftMux call to a server in this process, whose handler calls a
    C{twistd} server in another.
    """

    @inlineCallbacks
    def setUp(self):
        self.exporter = useMemoryExporter(self)
        path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
        self.process = yield startTwistd(
            [
                "txscales", "serve", "--listen", "tcp:0:interface=127.0.0.1",
                "--iface", "txscales.demo.gen.TestService.Iface",
                "--handler", "tests.test_tracing_servers:makeReportingHandler",
            ],
            addCleanup=self.addCleanup,
            env={"PYTHONPATH": path},
        )
        a = Handler(self.client(self.process.port, 2))
        self.clientOfA = self.client((yield self.serve(a)), 3)

    @inlineCallbacks
    def forward(self):
        """
        @return: the ids the other process received, as ints.
        """
        report = yield self.clientOfA.query("forward")
        result = yield self.process.terminate()
        self.assertIn("Server Shut Down.", result.output, result.describe())
        span, parent, trace, flags = report.split()
        return int(span, 16), int(parent, 16), int(trace, 16), int(flags)

    @inlineCallbacks
    def test_sampled(self):
        """
        The other process receives the ids of this process's client span,
        child of A's server span, sampled.
        """
        useSampleRate(self, 1.0)
        span, parent, trace, flags = yield self.forward()
        spans = {s.context.span_id: s for s in self.exporter.get_finished_spans()}
        self.assertEqual(len(spans), 3)
        self.assertEqual(flags, KNOWN_AND_SAMPLED)
        clientA = spans[span]
        self.assertEqual(clientA.parent.span_id, parent)
        self.assertEqual(spans[parent].context.trace_id, trace)
        self.assertIsNone(spans[spans[parent].parent.span_id].parent)

    @inlineCallbacks
    def test_sampledOut(self):
        """
        A root call not sampled reaches the other process as "sampling
        known, not sampled".
        """
        useSampleRate(self, 0.0)
        span, parent, trace, flags = yield self.forward()
        self.assertEqual(flags, SAMPLING_KNOWN)
        self.assertEqual(self.exporter.get_finished_spans(), ())
