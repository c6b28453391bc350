"""
Slow and silent peers against the real C{twistd txscales demo-server},
started with short timeouts and a small connection limit given as flags:
the server closes what would otherwise hold its connections for ever, and
logs it, while a healthy client is still served.
"""

import struct

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.trial.unittest import TestCase

from tests._twistd import startDemoServer
from txscales.demo.gen import TestService
from txscales.thriftmux import ThriftMux

# The handshake probe (Rerr "tinit check"), then a Tinit.
HANDSHAKE = bytes.fromhex(
    "0000000f8000000174696e697420636865636b"
    "0000002a4400000100010000000a6d75782d6672616d6572000000047fffffff00000003746c73000000036f6666"
)
# A Tdispatch declaring a 1 MiB frame: its length, type and tag.
SLOW_FRAME_HEADER = struct.pack(">IB", 1024 * 1024, 2) + b"\x00\x00\x02"


class Peer(Protocol):
    """
    A raw client connection: sends C{first}, then, with C{trickle}, one
    byte every 50 ms; C{answered} fires when the server first sends
    something, C{lost} when it closes the connection.
    """

    def __init__(self, first=b"", trickle=False):
        self.first = first
        self.trickle = trickle
        self.received = b""
        self.answered = Deferred()
        self.lost = Deferred()
        self._loop = None

    def connectionMade(self):
        if self.first:
            self.transport.write(self.first)
        if self.trickle:
            self._loop = LoopingCall(self.transport.write, b"x")
            self._loop.clock = reactor
            self._loop.start(0.05)

    def dataReceived(self, data):
        self.received += data
        if not self.answered.called:
            self.answered.callback(None)

    def connectionLost(self, reason):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self.lost.callback(None)


class ServerMixin:
    """
    A demo server started with C{flags}, and raw connections to it.
    """

    timeout = 30
    flags = ()

    @inlineCallbacks
    def setUp(self):
        self.server = yield startDemoServer(*self.flags, addCleanup=self.addCleanup)

    def connect(self, peer):
        endpoint = TCP4ClientEndpoint(reactor, self.server.host, self.server.port)
        d = endpoint.connect(Factory.forProtocol(lambda: peer))

        def connected(p):
            def close():
                p.transport.abortConnection()
                return p.lost

            self.addCleanup(close)
            return p

        return d.addCallback(connected)


class SlowPeerTests(ServerMixin, TestCase):
    """
    The demo server with a 1 s handshake timeout, a 1 s read timeout and a
    2 s idle timeout.
    """

    flags = ("--handshake-timeout", "1", "--read-timeout", "1", "--idle-timeout", "2")

    @inlineCallbacks
    def test_silentPeerClosed(self):
        """
        A connection that sends nothing is closed after the handshake
        timeout, with a log line.
        """
        logged = self.server.waitForLine("handshake timeout")
        peer = yield self.connect(Peer())
        yield peer.lost
        yield logged

    @inlineCallbacks
    def test_slowlorisClosed(self):
        """
        A connection that declares a 1 MiB frame and trickles it in, a byte
        every 50 ms, is closed after the read timeout; a healthy client is
        served meanwhile.
        """
        logged = self.server.waitForLine("read timeout")
        peer = yield self.connect(Peer(HANDSHAKE + SLOW_FRAME_HEADER, trickle=True))
        client = ThriftMux.newClient(TestService.Iface, self.server.dest, timeout=5, stats=False)
        self.addCleanup(client.close)
        self.assertEqual((yield client.query("ok")), "okok")
        yield peer.lost
        yield logged
        # The handshake was answered: the server closed it for the frame.
        self.assertTrue(peer.received)

    @inlineCallbacks
    def test_idleClosed(self):
        """
        A connection that completed its handshake and then says nothing is
        closed after the idle timeout.
        """
        logged = self.server.waitForLine("idle timeout")
        peer = yield self.connect(Peer(HANDSHAKE))
        yield peer.lost
        yield logged


class ConnectionLimitTests(ServerMixin, TestCase):
    """
    The demo server with at most 3 connections (and the default timeouts).
    """

    flags = ("--max-connections", "3")

    @inlineCallbacks
    def test_connectionLimit(self):
        """
        Past three connections, a new one is closed at once, with a log
        line naming the limit.
        """
        logged = self.server.waitForLine("3 connections open, the limit")
        kept = []
        for _ in range(3):
            kept.append((yield self.connect(Peer(HANDSHAKE))))
        # The server accepted all three: each got its handshake answer.
        for peer in kept:
            yield peer.answered
        refused = Peer(HANDSHAKE)
        try:
            yield self.connect(refused)
        except ConnectError:
            # Reset so soon that the connection attempt itself failed.
            pass
        else:
            yield refused.lost
        yield logged
        self.assertEqual(refused.received, b"")
        self.assertFalse(any(peer.lost.called for peer in kept))
