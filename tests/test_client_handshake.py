"""
Tests for the Mux client's handshake timeout: a server that accepts and
says nothing, or too little, does not hold a session (or the endpoint) for
ever.
"""

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txscales.demo.gen import TestService
from txscales.errors import ConnectError, HandshakeTimeoutError
from txscales.interfaces import BUSY, OPEN
from txscales.mux import MuxEndpoint, MuxRequest
from txscales.mux.protocol import MuxClientProtocol
from txscales.thriftmux import ThriftMux

# The server's echo of the handshake probe, then its Rinit.
RINIT = bytes.fromhex(
    "0000000f8000000174696e697420636865636b"
    "0000002abc00000100010000000a6d75782d6672616d6572000000047fffffff00000003746c73000000036f6666"
)


class HandshakeTimeoutTests(SynchronousTestCase):
    """
    L{MuxClientProtocol}'s handshake timeout, on a fake clock.
    """

    def setUp(self):
        self.clock = Clock()
        self.protocol = MuxClientProtocol(self.clock, pingInterval=None, handshakeTimeout=10.0)
        self.transport = StringTransportWithDisconnection()
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)
        self.addCleanup(self.assertEqual, self.clock.getDelayedCalls(), [])
        self.addCleanup(self.transport.loseConnection)

    def assertTimesOut(self):
        self.clock.advance(9.99)
        self.assertTrue(self.transport.connected)
        self.assertNoResult(self.protocol.ready)
        self.clock.advance(0.01)
        self.assertFalse(self.transport.connected)
        error = self.failureResultOf(self.protocol.ready, HandshakeTimeoutError).value
        self.assertIsInstance(error, ConnectError)
        self.assertFalse(error.mayHaveReachedServer)
        self.assertEqual(error.timeout, 10.0)

    def test_silentServer(self):
        """
        A server that says nothing: the connection is closed after the
        handshake timeout and C{ready} fails with L{HandshakeTimeoutError}.
        """
        self.assertTimesOut()

    def test_threeBytes(self):
        """
        A server that says three bytes and stops is treated the same.
        """
        self.protocol.dataReceived(RINIT[:3])
        self.assertTimesOut()

    def test_handshakeCompleted(self):
        """
        Once the handshake completes, no timer is left and the session
        stays open.
        """
        self.protocol.dataReceived(RINIT)
        self.assertIs(self.successResultOf(self.protocol.ready), self.protocol)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(100)
        self.assertTrue(self.transport.connected)


class Silent(Protocol):
    """
    A server connection that sends C{greeting} and then nothing.
    """

    greeting = b""

    def connectionMade(self):
        self.factory.connections += 1
        self.factory.open += 1
        made, self.factory.made = self.factory.made, Deferred()
        made.callback(None)
        if self.greeting:
            self.transport.write(self.greeting)

    def connectionLost(self, reason):
        self.factory.open -= 1
        lost, self.factory.lost = self.factory.lost, Deferred()
        lost.callback(None)


class ThreeBytes(Silent):
    """
    A server connection that sends three bytes of an Rerr and then nothing.
    """

    greeting = RINIT[:3]


class ServerMixin:
    """
    A real server on 127.0.0.1 that never completes the handshake.
    """

    timeout = 20

    @inlineCallbacks
    def listen(self, protocol):
        factory = self.factory = Factory.forProtocol(protocol)
        factory.connections = factory.open = 0
        factory.made = Deferred()
        factory.lost = Deferred()
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        return port.getHost().port


class EndpointTests(ServerMixin, TestCase):
    """
    A L{MuxEndpoint} against a server that never completes the handshake.
    """

    @inlineCallbacks
    def check(self, protocol):
        port = yield self.listen(protocol)
        endpoint = MuxEndpoint(reactor, "127.0.0.1", port, {"handshakeTimeout": 0.2, "pingInterval": None})
        self.addCleanup(endpoint.close)
        for attempt in (1, 2):
            lost = self.factory.lost
            d = endpoint(MuxRequest(b"call"))
            self.assertEqual(endpoint.status, BUSY)
            error = yield self.assertFailure(d, HandshakeTimeoutError)
            self.assertFalse(error.mayHaveReachedServer)
            self.assertEqual(endpoint.status, OPEN)
            yield lost
            self.assertEqual(self.factory.open, 0)
        self.assertEqual(self.factory.connections, 2)

    def test_silentServer(self):
        """
        Against a server that accepts and says nothing, a call fails with
        L{HandshakeTimeoutError}, the connection is closed, the endpoint is
        no longer busy, and the next call connects again.
        """
        return self.check(Silent)

    def test_threeBytes(self):
        """
        Against a server that says three bytes, likewise.
        """
        return self.check(ThreeBytes)


class ClientTests(ServerMixin, TestCase):
    """
    A ThriftMux client against a server that never completes the handshake.
    """

    @inlineCallbacks
    def failAgainstSilent(self, scheme):
        """
        Call a silent server through a client with a 0.2 s handshake
        timeout, on a C{scheme} destination; check that the call fails with
        L{HandshakeTimeoutError}, not sent, and that the connection closes.

        @return: a Deferred firing with the error.
        """
        port = yield self.listen(Silent)
        client = ThriftMux.newClient(
            TestService.Iface,
            "%s://127.0.0.1:%d" % (scheme, port),
            handshakeTimeout=0.2,
            failFast={"start": 0.1, "maximum": 0.1},
            stats=False,
        )
        self.addCleanup(client.close)
        lost = self.factory.lost
        error = yield self.assertFailure(client.query("x"), HandshakeTimeoutError)
        self.assertFalse(error.mayHaveReachedServer)
        yield lost
        return error

    @inlineCallbacks
    def test_failsAndReconnects(self):
        """
        A call fails with a L{HandshakeTimeoutError} (the request did not
        reach the server), the connection is closed,
        and the client connects again in the background.
        """
        error = yield self.failAgainstSilent("tcp")
        self.assertIn("handshake", str(error))
        made = self.factory.made
        yield made
        self.assertEqual(self.factory.connections, 2)

    @inlineCallbacks
    def test_tlsHandshakeTimesOut(self):
        """
        A server that accepts but never answers the TLS handshake fails the call with L{HandshakeTimeoutError}.
        """
        yield self.failAgainstSilent("tls")
