"""
Tests for the rate-limited log of lines a peer can trigger, for the log
lines bad requests make on the servers, and for what those lines keep.
"""

import struct

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import Logger, LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txscales._ratelimit import MAX_KINDS, RateLimitedLog, detached
from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales.mux._framing import FrameDecoder
from txscales.mux._messages import STATUS_ERROR, Rdispatch, Tdispatch, encodeMessage
from txscales.thrift import BINARY
from txscales.thrift._processor import ThriftProcessor
from txscales.thrift._server import serverFactory as thriftServerFactory
from txscales.thrift._session import callHeader, encodeArgs
from txscales.thriftmux._server import serverFactory

from tests._memory import TracedMemory


class Events(list):
    """
    The log events of one namespace, kept as Twisted keeps them before
    logging starts.
    """

    def __init__(self, testCase, namespace=None):
        list.__init__(self)
        self._namespace = namespace
        globalLogPublisher.addObserver(self.observe)
        testCase.addCleanup(globalLogPublisher.removeObserver, self.observe)

    def observe(self, event):
        if self._namespace is None or event.get("log_namespace", "").startswith(self._namespace):
            self.append(event)

    def size(self):
        """
        @return: the bytes of text these events make, tracebacks included.
        """
        total = 0
        for event in self:
            total += len(formatEvent(event)) + 1
            if "log_failure" in event:
                total += len(event["log_failure"].getTraceback())
        return total


class RateLimitedLogTests(SynchronousTestCase):
    """
    A few lines of each kind go through; the rest are counted and reported.
    """

    def setUp(self):
        self.clock = Clock()
        self.events = Events(self, "txscales.test")
        self.log = RateLimitedLog(self.clock, Logger(namespace="txscales.test"), burst=3, interval=30.0)

    def test_burstThenSuppressed(self):
        """
        C{burst} lines of a kind go through at once; further ones are
        suppressed and counted.
        """
        results = [self.log.warn("bad {n}", n=n) for n in range(10)]
        self.assertEqual(results, [True] * 3 + [False] * 7)
        self.assertEqual([formatEvent(e) for e in self.events], ["bad 0", "bad 1", "bad 2"])
        self.assertEqual(self.events[0]["log_level"], LogLevel.warn)
        self.assertEqual(self.log.suppressed, 7)

    def test_refillReportsSuppressed(self):
        """
        The allowance refills with time, and the next line let through says
        how many were suppressed before it.
        """
        for n in range(5):
            self.log.error("bad {n}", n=n)
        self.clock.advance(9.9)
        self.assertFalse(self.log.error("bad {n}", n=5))
        self.clock.advance(0.1)
        self.assertTrue(self.log.error("bad {n}", n=6))
        self.assertEqual(formatEvent(self.events[-1]), "bad 6 (3 similar lines suppressed)")
        self.assertEqual(self.events[-1]["suppressed"], 3)
        self.assertTrue(self.log.error("bad {n}", n=7) is False)

    def test_kindsApart(self):
        """
        Each format string has its own allowance.
        """
        for n in range(5):
            self.log.info("one {n}", n=n)
            self.log.info("two {n}", n=n)
        self.assertEqual(len(self.events), 6)

    def test_kindsBounded(self):
        """
        Kinds past L{MAX_KINDS} share one allowance.
        """
        for n in range(MAX_KINDS + 50):
            self.log.warn("kind %d" % (n,))
        self.assertEqual(len(self.events), MAX_KINDS + 3)

    def test_failureCleaned(self):
        """
        A failure is logged with its traceback as text, and keeps no frame.
        """
        try:
            1 / 0
        except ZeroDivisionError:
            failure = Failure()
        self.assertTrue(self.log.failure("it failed", failure))
        logged = self.events[0]["log_failure"]
        self.assertIn("ZeroDivisionError", logged.getTraceback())
        self.assertIsNone(logged.tb)
        self.assertIsNone(logged.value.__traceback__)
        self.flushLoggedErrors(ZeroDivisionError)

    def test_detached(self):
        """
        L{detached} drops the tracebacks of an error and of those it was
        raised from or during.
        """
        try:
            try:
                raise KeyError("inner")
            except KeyError as e:
                raise ValueError("outer") from e
        except ValueError as e:
            error = e
        self.assertIs(detached(error), error)
        self.assertIsNone(error.__traceback__)
        self.assertIsNone(error.__cause__.__traceback__)
        self.assertIsInstance(error.__cause__, KeyError)


MARKER = bytes.fromhex("0000000f7f00000174696e697420636865636b")
TINIT = bytes.fromhex(
    "0000002a4400000100010000000a6d75782d6672616d6572000000047fffffff00000003746c73000000036f6666"
)


def badDispatch(tag):
    return encodeMessage(Tdispatch(tag, [], b"", [], b"not a thrift message at all"))


class BadRequestLogTests(SynchronousTestCase):
    """
    Requests that are not Thrift get error replies and log a bounded
    number of short lines, however many arrive.
    """

    requests = 10000

    def setUp(self):
        self.clock = Clock()
        self.events = Events(self)

    def connect(self, factory):
        protocol = factory.buildProtocol(None)
        transport = StringTransportWithDisconnection()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        return protocol, transport

    def test_thriftMuxOneConnection(self):
        """
        Bad requests on one ThriftMux connection are each answered with an
        Rdispatch error, and log two lines in all, without a traceback.
        """
        factory = serverFactory(TestService.Iface, TestServiceHandler(self.clock), self.clock)
        protocol, transport = self.connect(factory)
        protocol.dataReceived(MARKER + TINIT)
        transport.clear()
        batch = b"".join(badDispatch(2 + n % 1000) for n in range(1000))
        decoder = FrameDecoder()
        for _ in range(self.requests // 1000):
            protocol.dataReceived(batch)
            replies = decoder.feed(transport.value())
            transport.clear()
            self.assertEqual(len(replies), 1000)
            self.assertEqual({(type(r), r.status) for r in replies}, {(Rdispatch, STATUS_ERROR)})
        self.assertIn(b"BadMessageError", replies[0].body)
        self.assertTrue(transport.connected)
        transport.loseConnection()
        self.assertEqual(protocol.badRequests, self.requests)
        self.assertEqual(len(self.events), 2, [formatEvent(e) for e in self.events])
        self.assertIn("10000 bad requests", formatEvent(self.events[-1]))
        self.assertLess(self.events.size(), 400)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_thriftMuxManyConnections(self):
        """
        Bad requests on many ThriftMux connections log a bounded number of
        lines.
        """
        factory = serverFactory(TestService.Iface, TestServiceHandler(self.clock), self.clock)
        batch = b"".join(badDispatch(2 + n) for n in range(100))
        for _ in range(self.requests // 100):
            protocol, transport = self.connect(factory)
            protocol.dataReceived(batch)
            transport.loseConnection()
        self.assertLessEqual(len(self.events), 22)
        self.assertLess(self.events.size(), 22 * 200)

    def test_plainThriftConnections(self):
        """
        Connections closed for bad plain Thrift calls log a bounded number
        of lines.
        """
        factory = thriftServerFactory(TestService.Iface, TestServiceHandler(self.clock), self.clock)
        for _ in range(1000):
            protocol, transport = self.connect(factory)
            protocol.dataReceived(b"\x00\x00\x00\x08not thrift")
            self.assertFalse(transport.connected)
        self.assertLessEqual(len(self.events), 10)

    def test_handlerFailures(self):
        """
        A handler that fails on every call, at once or through a Deferred,
        logs a bounded number of tracebacks, each reply still an error.
        """

        class Crashing(TestServiceHandler):
            def query(self, x):
                raise RuntimeError("boom")

        processor = ThriftProcessor(TestService.Iface, Crashing(self.clock), self.clock)
        method = processor.methods["query"]
        call = callHeader(method, 1, BINARY) + encodeArgs(method, ("x",), {}, BINARY)
        for _ in range(1000):
            self.assertIn(b"RuntimeError: boom", processor.process(call))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 10)
        self.clock.advance(60)
        processor.process(call)
        self.assertIn("990 similar lines suppressed", formatEvent(self.events[-1]))
        self.flushLoggedErrors(RuntimeError)


class AbortedServerMemoryTests(TracedMemory, SynchronousTestCase):
    """
    A server connection closed for a bad frame right after a large one
    keeps nothing of it reachable from the log event reporting it, which
    Twisted keeps while logging has not started.
    """

    size = 8 * 1024 * 1024

    def setUp(self):
        self.clock = Clock()
        self.events = Events(self)
        self.startTracing()

    def abort(self, factory, header):
        """
        Send all but the last byte of a large frame that starts with
        C{header}, then that byte and a length above the limit.
        """
        before = self.traced()
        protocol = factory.buildProtocol(None)
        transport = StringTransportWithDisconnection()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        protocol.dataReceived(struct.pack(">I", self.size) + header)
        left = self.size - len(header) - 1
        while left >= 65536:
            protocol.dataReceived(bytes(65536))
            left -= 65536
        protocol.dataReceived(bytes(left))
        protocol.dataReceived(b"\x00" + struct.pack(">I", 0xFFFFFFFF))
        self.assertFalse(transport.connected)
        del protocol, transport
        self.assertLess(self.traced() - before, self.size // 8)
        self.assertIn("closing", self.events[-1]["log_format"])

    def test_mux(self):
        """
        A Mux server connection keeps nothing of its frame.
        """
        factory = serverFactory(TestService.Iface, TestServiceHandler(self.clock), self.clock)
        # A Tping with a large body: decoded, then the bad length.
        self.abort(factory, b"\x41\x00\x00\x01")

    def test_plainThrift(self):
        """
        A plain Thrift server connection keeps nothing of its frame.
        """
        factory = thriftServerFactory(TestService.Iface, TestServiceHandler(self.clock), self.clock)
        self.abort(factory, b"\x80\x01\x00\x04")
