"""
Tests of the real demo server (C{twistd txscales demo-server}) against a
hostile peer on a raw socket: calls past the pending cap are nacked, and a
peer that sends without reading is not read from.  The long measurements
are in C{benchmarks/abuse/}.
"""

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase
from zope.interface import implementer
from twisted.internet.interfaces import IPullProducer

from tests._twistd import startDemoServer
from txscales.demo.gen import TestService
from txscales.mux._framing import FrameDecoder
from txscales.mux._messages import (
    FLAG_REJECTED,
    FLAG_RETRYABLE,
    STATUS_NACK,
    Rdispatch,
    Rping,
    Tdispatch,
    Tping,
    encodeMessage,
    muxFailureFlags,
)
from txscales.thrift import describeService, encodeCall

METHODS = describeService(TestService.Iface)


class Peer(Protocol):
    """
    A raw Mux peer: writes what the test says, and collects the messages it
    receives.
    """

    def __init__(self):
        self.decoder = FrameDecoder()
        self.messages = []
        self._waiting = []

    def dataReceived(self, data):
        self.messages.extend(self.decoder.feed(data))
        waiting, self._waiting = self._waiting, []
        for predicate, d in waiting:
            if predicate(self.messages):
                d.callback(self.messages)
            else:
                self._waiting.append((predicate, d))

    def when(self, predicate):
        """
        @return: a Deferred firing once C{predicate(messages)} holds.
        """
        d = Deferred()
        if predicate(self.messages):
            d.callback(self.messages)
        else:
            self._waiting.append((predicate, d))
        return d

    def ping(self):
        """
        @return: a Deferred firing once this ping is answered.
        """
        count = sum(type(m) is Rping for m in self.messages)
        self.transport.write(encodeMessage(Tping(2)))
        return self.when(lambda messages: sum(type(m) is Rping for m in messages) > count)


@implementer(IPullProducer)
class Flood:
    """
    Write C{chunks} chunks of requests, the next one each time the
    connection sent the previous.
    """

    def __init__(self, transport, chunk, chunks):
        self._transport = transport
        self._chunk = chunk
        self.left = chunks
        self.written = 0
        transport.registerProducer(self, False)

    def resumeProducing(self):
        if self.left:
            self.left -= 1
            self.written += 1
            self._transport.write(self._chunk)
        else:
            self._transport.unregisterProducer()

    def stopProducing(self):
        self.left = 0


class AbuseTests(TestCase):
    """
    The demo server bounds what one hostile connection makes it hold.
    """

    timeout = 60

    @inlineCallbacks
    def connect(self, port):
        peer = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Peer())
        self.addCleanup(peer.transport.abortConnection)
        return peer

    @inlineCallbacks
    def test_pendingCapNacks(self):
        """
        Of 1,100 slow calls sent at once on one connection, the 100 past
        the default cap of 1,000 are nacked at once, retryable and
        rejected.
        """
        server = yield startDemoServer(addCleanup=self.addCleanup)
        peer = yield self.connect(server.port)
        body = encodeCall(METHODS["delayedQuery"], ("x", 60000), {})
        peer.transport.write(b"".join(encodeMessage(Tdispatch(tag, body=body)) for tag in range(2, 1102)))
        messages = yield peer.ping()
        nacks = [m for m in messages if type(m) is Rdispatch and m.status == STATUS_NACK]
        self.assertEqual(len(nacks), 100)
        self.assertEqual({muxFailureFlags(m.contexts) for m in nacks}, {FLAG_RETRYABLE | FLAG_REJECTED})

    @inlineCallbacks
    def test_floodWithoutReadingIsNotRead(self):
        """
        A connection that sends 50 MB of calls and reads none of the
        answers stops being read from long before the end, while a healthy
        connection is still served.
        """
        server = yield startDemoServer(addCleanup=self.addCleanup)
        flooder = yield self.connect(server.port)
        flooder.transport.pauseProducing()
        healthy = yield self.connect(server.port)
        body = encodeCall(METHODS["query"], ("a" * 1000,), {})
        chunk = b"".join(encodeMessage(Tdispatch(tag, body=body)) for tag in range(2, 258))
        chunks = 50 * 1024 * 1024 // len(chunk)
        flood = Flood(flooder.transport, chunk, chunks)
        # Until the flood is all written, or its writing has not moved for
        # 200 round trips of the healthy connection.
        still = 0
        while flood.left and still < 200:
            written = flood.written
            yield healthy.ping()
            still = still + 1 if flood.written == written else 0
        self.assertGreater(flood.left, chunks // 2)
