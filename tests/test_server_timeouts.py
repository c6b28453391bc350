"""
Tests for the server connections' handshake, read and idle timeouts and the
connection limit, over fake transports and a fake clock.
"""

import struct

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from txscales._draining import DrainingFactory
from txscales._listening import ConnectionLimit
from txscales._timers import ServerTimeouts
from txscales.demo.gen import TestService
from txscales.mux._messages import Tdispatch, Tping, encodeMessage
from txscales.mux.protocol import MuxServerFactory
from txscales.thrift import FRAMED, encodeFrame
from txscales.thrift._codec import describeService
from txscales.thrift._framing import BUFFERED
from txscales.thrift._server import serverFactory as thriftServerFactory
from txscales.thrift._session import callHeader, encodeArgs
from txscales.thriftmux._server import serverFactory as thriftMuxServerFactory

# The handshake probe (Rerr "tinit check"), then a Tinit.
HANDSHAKE = bytes.fromhex(
    "0000000f8000000174696e697420636865636b"
    "0000002a4400000100010000000a6d75782d6672616d6572000000047fffffff00000003746c73000000036f6666"
)
PEER = IPv4Address("TCP", "192.0.2.7", 4321)


def queryCall(x, seqid=1):
    """
    @return: a binary Thrift CALL of C{query(x)}, unframed.
    """
    name = b"query"
    arg = x.encode("utf-8")
    return (
        struct.pack(">Ii", 0x80010001, len(name))
        + name
        + struct.pack(">i", seqid)
        + b"\x0b\x00\x01"
        + struct.pack(">i", len(arg))
        + arg
        + b"\x00"
    )


class Handler:
    """
    A C{TestService} handler whose C{delayedQuery} answers when the test says.
    """

    def __init__(self):
        self.waiting = []

    def query(self, x):
        return x + x

    def delayedQuery(self, x, delayMs):
        d = Deferred()
        self.waiting.append(d)
        return d


class TimeoutsMixin:
    """
    A server factory with timeouts of 10 (handshake), 30 (read) and 300
    (idle) seconds on a fake clock; C{makeFactory} makes it.
    """

    def setUp(self):
        self.clock = Clock()
        self.timeouts = ServerTimeouts(self.clock, 10.0, 30.0, 300.0, "test")
        self.handler = Handler()
        self.factory = self.makeFactory()

    def connect(self):
        protocol = self.factory.buildProtocol(PEER)
        transport = StringTransportWithDisconnection(peerAddress=PEER)
        transport.protocol = protocol
        protocol.makeConnection(transport)
        self.addCleanup(self.assertEqual, self.clock.getDelayedCalls(), [])
        self.addCleanup(transport.loseConnection)
        return protocol, transport

    def assertOpenUntil(self, transport, seconds):
        """
        Advance the clock to C{seconds} after now: the connection is open
        just before, and aborted then.
        """
        self.clock.advance(seconds - 0.01)
        self.assertTrue(transport.connected)
        self.clock.advance(0.01)
        self.assertFalse(transport.connected)


class MuxTimeoutsTests(TimeoutsMixin, SynchronousTestCase):
    """
    The timeouts of ThriftMux server connections.
    """

    def makeFactory(self):
        return thriftMuxServerFactory(TestService.Iface, self.handler, self.clock, timeouts=self.timeouts)

    def test_silentConnectionClosedAfterHandshakeTimeout(self):
        """
        A connection that sends nothing is aborted after the handshake
        timeout, and this is logged with the peer's address.
        """
        protocol, transport = self.connect()
        with capturedLogs() as events:
            self.assertOpenUntil(transport, 10.0)
        self.assertEqual(self.timeouts.closed["handshake"], 1)
        [line] = [formatEvent(e) for e in events]
        self.assertIn("handshake timeout", line)
        self.assertIn("192.0.2.7", line)

    def test_partialFirstBytesStillTimeOut(self):
        """
        Three bytes, too few to choose a session, do not complete the
        handshake.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"\x00\x00\x00")
        self.assertOpenUntil(transport, 10.0)

    def test_handshakeCompleted(self):
        """
        After the handshake, no handshake timeout follows.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(HANDSHAKE)
        self.clock.advance(60)
        self.assertTrue(transport.connected)

    def test_trickledFrameClosedAfterReadTimeout(self):
        """
        A frame trickled in a byte per second is aborted 30 seconds after
        its first bytes, although bytes keep coming.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(HANDSHAKE)
        frame = encodeMessage(Tdispatch(1, [], b"", [], b"x" * 1000))
        protocol.dataReceived(frame[:8])
        for i in range(29):
            self.clock.advance(1)
            protocol.dataReceived(frame[8 + i : 9 + i])
        self.assertTrue(transport.connected)
        self.clock.advance(1)
        self.assertFalse(transport.connected)
        self.assertEqual(self.timeouts.closed["read"], 1)

    def test_readTimeoutPerMessage(self):
        """
        The read timeout starts again with each message: a client whose
        messages each arrive within it is never closed.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(HANDSHAKE)
        ping = encodeMessage(Tping(7))
        # Each read completes one ping and starts the next.
        protocol.dataReceived(ping[:3])
        for _ in range(10):
            self.clock.advance(20)
            protocol.dataReceived(ping[3:] + ping[:3])
        self.assertTrue(transport.connected)
        self.assertOpenUntil(transport, 30.0)

    def test_idleClosed(self):
        """
        A connection with nothing outstanding that receives nothing for the
        idle timeout is closed; receiving moves the deadline.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(HANDSHAKE)
        self.clock.advance(200)
        protocol.dataReceived(encodeMessage(Tping(2)))
        self.clock.advance(200)
        self.assertTrue(transport.connected)
        self.assertOpenUntil(transport, 100.0)
        self.assertEqual(self.timeouts.closed["idle"], 1)

    def test_idleWithOutstandingCallsKeptOpen(self):
        """
        A connection waiting for its calls' answers is not idle.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(HANDSHAKE)
        method = describeService(TestService.Iface)["delayedQuery"]
        body = callHeader(method, 1, "binary") + encodeArgs(method, ("a", 1), {}, "binary")
        protocol.dataReceived(encodeMessage(Tdispatch(2, [], b"", [], body)))
        self.assertEqual(len(self.handler.waiting), 1, transport.value())
        self.clock.advance(1000)
        self.assertTrue(transport.connected)
        self.handler.waiting[0].callback("aa")
        self.assertOpenUntil(transport, 300.0)

    def test_downgradedTrickledFrame(self):
        """
        A framed Thrift client of the ThriftMux server gets the read
        timeout too.
        """
        protocol, transport = self.connect()
        frame = encodeFrame(queryCall("q" * 100))
        protocol.dataReceived(encodeFrame(queryCall("ab")) + frame[:12])
        for i in range(29):
            self.clock.advance(1)
            protocol.dataReceived(frame[12 + i : 13 + i])
        self.assertEqual(self.timeouts.closed, {"handshake": 0, "read": 0, "idle": 0})
        self.clock.advance(1)
        self.assertFalse(transport.connected)
        self.assertEqual(self.timeouts.closed["read"], 1)

    def test_downgradedCallCompletesHandshake(self):
        """
        A framed Thrift call is a complete first message, and is answered.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(encodeFrame(queryCall("ab")))
        self.assertIn(b"abab", transport.value())
        self.clock.advance(299)
        self.assertTrue(transport.connected)

    def test_closedLoggedOncePerInterval(self):
        """
        Many connections closed together make one log line, which counts
        them; a later one logs again.
        """
        transports = [self.connect()[1] for _ in range(50)]
        with capturedLogs() as events:
            self.clock.advance(10)
        self.assertFalse(any(t.connected for t in transports))
        self.assertEqual(len(events), 1)
        self.assertIn("closed a connection (handshake timeout)", formatEvent(events[0]))
        later = [self.connect()[1] for _ in range(2)]
        with capturedLogs() as events:
            self.clock.advance(10)
        self.assertFalse(any(t.connected for t in later))
        self.assertEqual(len(events), 1)
        # The 49 held back after the first line are counted.
        self.assertIn("(49 similar lines suppressed)", formatEvent(events[0]))

    def test_noTimeouts(self):
        """
        Without timeouts, a silent connection stays open.
        """
        self.factory = MuxServerFactory(lambda request: b"", self.clock)
        protocol, transport = self.connect()
        self.clock.advance(10000)
        self.assertTrue(transport.connected)


class ThriftTimeoutsTests(TimeoutsMixin, SynchronousTestCase):
    """
    The timeouts of plain Thrift server connections.
    """

    transport = FRAMED

    def makeFactory(self):
        return thriftServerFactory(TestService.Iface, self.handler, self.clock, self.transport, timeouts=self.timeouts)

    def test_silentConnectionClosed(self):
        """
        A connection that sends no call is aborted after the handshake
        timeout.
        """
        protocol, transport = self.connect()
        self.assertOpenUntil(transport, 10.0)
        self.assertEqual(self.timeouts.closed["handshake"], 1)

    def test_trickledCall(self):
        """
        A call trickled in is aborted 30 seconds after its first bytes; the
        complete call before it was answered.
        """
        protocol, transport = self.connect()
        call = self.encode(queryCall("x" * 100))
        protocol.dataReceived(self.encode(queryCall("ab")) + call[:10])
        self.assertIn(b"abab", transport.value())
        for i in range(29):
            self.clock.advance(1)
            protocol.dataReceived(call[10 + i : 11 + i])
        self.assertTrue(transport.connected)
        self.clock.advance(1)
        self.assertFalse(transport.connected)
        self.assertEqual(self.timeouts.closed["read"], 1)

    def test_idle(self):
        """
        A connection idle after its answered call is closed after the idle
        timeout.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(self.encode(queryCall("ab")))
        self.assertOpenUntil(transport, 300.0)

    def encode(self, message):
        return encodeFrame(message)


class BufferedThriftTimeoutsTests(ThriftTimeoutsTests):
    """
    The timeouts of plain Thrift server connections, buffered transport.
    """

    transport = BUFFERED

    def encode(self, message):
        return message


class ConnectionLimitTests(SynchronousTestCase):
    """
    L{ConnectionLimit} closes connections past its limit at once.
    """

    def setUp(self):
        self.clock = Clock()
        self.factory = thriftMuxServerFactory(TestService.Iface, Handler(), self.clock)
        self.limit = ConnectionLimit(self.factory, 3, self.clock, "test")

    def connect(self):
        protocol = self.limit.buildProtocol(PEER)
        transport = StringTransportWithDisconnection(peerAddress=PEER)
        transport.protocol = protocol
        protocol.makeConnection(transport)
        return transport

    def test_pastLimitClosed(self):
        """
        The connections past the limit are closed as soon as made, with one
        log line counting them; once one closes, a new one is accepted.
        """
        self.assertIsInstance(self.factory, DrainingFactory)
        kept = [self.connect() for _ in range(3)]
        with capturedLogs() as events:
            refused = [self.connect() for _ in range(5)]
        self.assertTrue(all(t.connected for t in kept))
        self.assertFalse(any(t.connected for t in refused))
        self.assertEqual(self.limit.refused, 5)
        self.assertEqual(len(self.factory.protocols), 3)
        [line] = [formatEvent(e) for e in events]
        self.assertIn("3 connections open, the limit", line)
        kept[0].loseConnection()
        self.assertTrue(self.connect().connected)
