"""
The plain Thrift server over a C{StringTransport}: pipelining, in-order
replies, one-way calls, protocol detection, failures and draining.
"""

from prometheus_client import CollectorRegistry
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from txscales.demo.gen import TestService
from txscales.errors import RequestNackedError
from txscales.stats import Stats
from txscales.thrift import BINARY, COMPACT, FRAMED
from txscales.thrift._codec import describeService, readMessageBegin
from txscales.thrift._framing import FramedDecoder, encodeFrame
from txscales.thrift._server import serverFactory
from txscales.thrift._session import callHeader, encodeArgs

METHODS = describeService(TestService.Iface)


def framedCall(name, seqid, args, protocol=BINARY):
    method = METHODS[name]
    return encodeFrame(callHeader(method, seqid, protocol) + encodeArgs(method, args, {}, protocol))


class ControlledHandler:
    """
    A handler whose C{query} answers are Deferreds the test fires.
    """

    def __init__(self):
        self.pending = {}
        self.cancelled = []
        self.messages = []

    def query(self, x):
        if x == "nack":
            raise RequestNackedError()
        d = self.pending[x] = Deferred(lambda d: self.cancelled.append(x))
        return d

    def log(self, message):
        self.messages.append(message)


class ServerTests(SynchronousTestCase):
    """
    The server over a StringTransport.
    """

    def setUp(self):
        self.clock = Clock()
        self.handler = ControlledHandler()
        self.registry = CollectorRegistry()
        self.factory = serverFactory(
            TestService.Iface, self.handler, self.clock, FRAMED, stats=Stats("server", "t", self.registry)
        )
        self.protocol = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def replies(self):
        data = self.transport.value()
        self.transport.clear()
        return [readMessageBegin(m)[:4] for m in FramedDecoder().feed(data)]

    def test_pipelinedInOrder(self):
        """
        Calls are handled as they arrive; replies go out in call order.
        """
        self.protocol.dataReceived(framedCall("query", 1, ("a",)) + framedCall("query", 2, ("b",)))
        self.assertEqual(sorted(self.handler.pending), ["a", "b"])
        self.handler.pending["b"].callback("B")
        self.assertEqual(self.transport.value(), b"")
        self.handler.pending["a"].callback("A")
        self.assertEqual(self.replies(), [(BINARY, "query", 2, 1), (BINARY, "query", 2, 2)])
        self.assertEqual(self.registry.get_sample_value("txscales_server_success_total", {"server": "t"}), 2)

    def test_onewayAndProtocols(self):
        """
        One-way calls get no reply and hold no place; each call is answered
        in its own protocol.
        """
        self.protocol.dataReceived(
            framedCall("query", 1, ("a",), COMPACT) + framedCall("log", 2, ("m",)) + framedCall("query", 3, ("b",))
        )
        self.handler.pending["b"].callback("B")
        self.handler.pending["a"].callback("A")
        self.assertEqual(self.replies(), [(COMPACT, "query", 2, 1), (BINARY, "query", 2, 3)])
        self.assertEqual(self.handler.messages, ["m"])

    def test_malformedCloses(self):
        """
        Bytes that are not framed Thrift calls close the connection.
        """
        self.protocol.dataReceived(b"\xff\xff\xff\xffjunk")
        self.assertTrue(self.transport.disconnecting)

    def test_nackCloses(self):
        """
        A handler failure that plain Thrift cannot carry closes the
        connection.
        """
        self.protocol.dataReceived(framedCall("query", 1, ("nack",)))
        self.assertTrue(self.transport.disconnecting)

    def test_connectionLostCancels(self):
        """
        Losing the connection cancels the calls still running.
        """
        self.protocol.dataReceived(framedCall("query", 1, ("a",)))
        self.protocol.connectionLost(None)
        self.assertEqual(self.handler.cancelled, ["a"])
        self.assertEqual(self.factory.protocols, set())

    def test_drain(self):
        """
        Draining closes once the calls received are answered; an idle
        connection closes at once; past the timeout, connections are
        aborted.
        """
        self.protocol.dataReceived(framedCall("query", 1, ("a",)))
        idle = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 2))
        idleTransport = StringTransport()
        idle.makeConnection(idleTransport)
        done = self.factory.drainAll(5.0)
        self.assertTrue(idleTransport.disconnecting)
        idle.connectionLost(None)
        self.assertFalse(self.transport.disconnecting)
        self.protocol.dataReceived(framedCall("query", 2, ("b",)))
        self.handler.pending["a"].callback("A")
        self.assertFalse(self.transport.disconnecting)
        self.handler.pending["b"].callback("B")
        self.assertEqual(len(self.replies()), 2)
        self.assertTrue(self.transport.disconnecting)
        self.assertNoResult(done)
        self.protocol.connectionLost(None)
        self.successResultOf(done)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_drainTimeout(self):
        """
        Connections still busy when the drain timeout passes are aborted.
        """
        self.protocol.dataReceived(framedCall("query", 1, ("a",)))
        self.transport.abortConnection = lambda: self.protocol.connectionLost(None)
        done = self.factory.drainAll(5.0)
        self.clock.advance(5.0)
        self.successResultOf(done)
        self.assertEqual(self.handler.cancelled, ["a"])
