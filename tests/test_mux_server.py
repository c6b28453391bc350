"""
Tests for the Mux server protocol, over fake transports and a fake clock.
"""

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from txscales.errors import RequestNackedError
from txscales.mux._framing import FrameDecoder
from txscales.mux._messages import (
    STATUS_ERROR,
    STATUS_NACK,
    Rdiscarded,
    Rdispatch,
    Rdrain,
    Rerr,
    Rinit,
    Rping,
    Rreq,
    Tdiscarded,
    Tdispatch,
    Tdrain,
    Tinit,
    Tping,
    Treq,
    encodeMessage,
    muxFailureFlags,
)
from txscales.mux.protocol import MuxServerFactory, Request

MARKER_LEGACY = bytes.fromhex("0000000f7f00000174696e697420636865636b")
MARKER_CANONICAL = bytes.fromhex("0000000f8000000174696e697420636865636b")
TINIT = bytes.fromhex(
    "0000002a4400000100010000000a6d75782d6672616d6572000000047fffffff00000003746c73000000036f6666"
)
RINIT = bytes.fromhex(
    "0000002abc00000100010000000a6d75782d6672616d6572000000047fffffff00000003746c73000000036f6666"
)


class Service:
    """
    A Mux service whose answers the test controls.
    """

    def __init__(self):
        self.requests = []
        self.cancelled = []

    def __call__(self, request):
        d = Deferred(lambda d: self.cancelled.append(request.body))
        self.requests.append((request, d))
        return d


class Connection:
    """
    One server connection on a fake transport.
    """

    def __init__(self, factory):
        self.protocol = factory.buildProtocol(None)
        self.transport = StringTransportWithDisconnection()
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)
        self.decoder = FrameDecoder()

    def send(self, *messages):
        self.protocol.dataReceived(b"".join(encodeMessage(m) for m in messages))

    def written(self):
        data = self.transport.value()
        self.transport.clear()
        return self.decoder.feed(data)

    @property
    def closed(self):
        return not self.transport.connected


class ServerTestsMixin:
    def setUp(self):
        self.clock = Clock()
        self.service = Service()
        self.factory = MuxServerFactory(self.service, self.clock, maxFrameSize=1024)

    def connect(self):
        return Connection(self.factory)


class HandshakeTests(ServerTestsMixin, SynchronousTestCase):
    """
    The server side of the handshake, and sessions without one.
    """

    def test_markerEchoedAndTinitAnswered(self):
        """
        The marker is echoed byte for byte and Tinit answered with Finagle's
        exact Rinit.
        """
        c = self.connect()
        c.protocol.dataReceived(MARKER_LEGACY)
        self.assertEqual(c.transport.value(), MARKER_LEGACY)
        c.transport.clear()
        c.protocol.dataReceived(TINIT)
        self.assertEqual(c.transport.value(), RINIT)
        self.assertTrue(c.protocol.session.negotiated)

    def test_canonicalMarkerEchoed(self):
        """
        A marker sent with the canonical Rerr code is echoed with that code.
        """
        c = self.connect()
        c.protocol.dataReceived(MARKER_CANONICAL)
        self.assertEqual(c.transport.value(), MARKER_CANONICAL)

    def test_markerInPieces(self):
        """
        A marker arriving a byte at a time is still recognised.
        """
        c = self.connect()
        for i in range(len(MARKER_LEGACY)):
            c.protocol.dataReceived(MARKER_LEGACY[i : i + 1])
        self.assertEqual(c.transport.value(), MARKER_LEGACY)

    def test_legacyPingFirst(self):
        """
        A session opening with Tping, as Scales and old Finagle do, works
        without a handshake.
        """
        c = self.connect()
        c.send(Tping(1), Tdispatch(2, body=b"q"))
        self.assertEqual(c.written(), [Rping(1)])
        request, d = self.service.requests[0]
        self.assertEqual(request.body, b"q")
        d.callback(b"a")
        self.assertEqual(c.written(), [Rdispatch(2, body=b"a")])
        self.assertFalse(c.protocol.session.negotiated)

    def test_dispatchFirst(self):
        """
        A session opening with Tdispatch is served.
        """
        c = self.connect()
        c.send(Tdispatch(2, [(b"k", b"v")], b"/dst", [(b"/a", b"/b")], b"q"))
        request, d = self.service.requests[0]
        self.assertEqual((request.contexts, request.dst, request.dtab), ([(b"k", b"v")], b"/dst", [(b"/a", b"/b")]))

    def test_requestForTests(self):
        """
        A Request built by hand has the attributes a service is given.
        """
        request = Request(b"q", [(b"k", b"v")], b"/dst")
        self.assertEqual((request.body, request.contexts, request.dst, request.dtab), (b"q", [(b"k", b"v")], b"/dst", ()))
        self.assertEqual(Request(b"q").contexts, ())

    def test_dispatchAfterMarkerWithoutTinit(self):
        """
        A Tdispatch after the marker, instead of Tinit, is served.
        """
        c = self.connect()
        c.protocol.dataReceived(MARKER_LEGACY)
        c.send(Tdispatch(2, body=b"q"))
        self.assertEqual(len(self.service.requests), 1)

    def test_unsupportedVersion(self):
        """
        A Tinit of another version gets an Rerr and the connection closes.
        """
        c = self.connect()
        c.protocol.dataReceived(MARKER_LEGACY)
        c.written()
        c.send(Tinit(1, 2, []))
        [reply] = c.written()
        self.assertEqual(reply, Rerr(1, b"Unsupported Mux version: 2"))
        self.assertTrue(c.closed)


class DispatchTests(ServerTestsMixin, SynchronousTestCase):
    """
    Concurrent dispatch, discards, duplicate tags and bad input.
    """

    def test_concurrentOutOfOrder(self):
        """
        Requests are dispatched concurrently and answered as they finish,
        each with its own tag.
        """
        c = self.connect()
        c.send(Tdispatch(2, body=b"a"), Tdispatch(3, body=b"b"), Treq(4, [], b"c"))
        (_, da), (_, db), (_, dc) = self.service.requests
        db.callback(b"B")
        dc.callback(b"C")
        da.callback(b"A")
        self.assertEqual(c.written(), [Rdispatch(3, body=b"B"), Rreq(4, 0, b"C"), Rdispatch(2, body=b"A")])

    def test_synchronousService(self):
        """
        A service returning bytes is answered at once.
        """
        factory = MuxServerFactory(lambda request: request.body * 2, self.clock)
        c = Connection(factory)
        c.send(Tdispatch(2, body=b"ab"))
        self.assertEqual(c.written(), [Rdispatch(2, body=b"abab")])

    def test_synchronousAnswersOfOneRead(self):
        """
        The requests of one read answered at once are written together,
        each in its own form; one discarded in the same read is not.
        """
        factory = MuxServerFactory(lambda request: request.body * 2, self.clock)
        c = Connection(factory)
        writes = []
        write = c.transport.write
        c.transport.write = lambda data: (writes.append(data), write(data))
        c.send(Tdispatch(2, body=b"ab"), Treq(3, [], b"c"), Tdispatch(4, body=b"d"), Tdiscarded(2, b"late"))
        self.assertEqual(c.written(), [Rdiscarded(2), Rreq(3, 0, b"cc"), Rdispatch(4, body=b"dd")])
        self.assertEqual(len(writes), 1)
        self.assertEqual(c.protocol.session.pendingCount, 0)

    def test_failures(self):
        """
        A nack from the service is a nack; another failure an error reply
        with its text; an exception raised synchronously too.
        """
        def service(request):
            if request.body == b"nack":
                raise RequestNackedError(flags=2)
            raise ValueError("bad input")

        c = Connection(MuxServerFactory(service, self.clock))
        c.send(Tdispatch(2, body=b"nack"), Tdispatch(3, body=b"x"))
        nack, error = c.written()
        self.assertEqual((nack.status, muxFailureFlags(nack.contexts)), (STATUS_NACK, 2))
        self.assertEqual((error.status, error.body), (STATUS_ERROR, b"ValueError: bad input"))
        self.flushLoggedErrors(ValueError)

    def test_discardCancelsHandler(self):
        """
        Tdiscarded cancels the handler's Deferred and is answered with
        Rdiscarded; the late answer is never written.
        """
        c = self.connect()
        c.send(Tdispatch(2, body=b"a"))
        _, d = self.service.requests[0]
        c.send(Tdiscarded(2, b"timeout"))
        self.assertEqual(c.written(), [Rdiscarded(2)])
        self.assertEqual(self.service.cancelled, [b"a"])
        self.assertEqual(c.written(), [])

    def test_serviceCancelledIsAnswered(self):
        """
        A handler whose Deferred fails with CancelledError without a
        Tdiscarded (the service cancelled its own work) still gets an error
        reply, so the tag does not stay pending.
        """
        c = self.connect()
        c.send(Tdispatch(2, body=b"a"))
        _, d = self.service.requests[0]
        d.cancel()
        (error,) = c.written()
        self.assertEqual((error.tag, error.status), (2, STATUS_ERROR))
        self.assertEqual(c.protocol.session.pendingCount, 0)
        self.flushLoggedErrors(CancelledError)

    def test_reusedTagAfterDiscardGetsOwnAnswer(self):
        """
        A tag reused right after Rdiscarded (as Scales does) gets the new
        request's answer, never the discarded one's.
        """
        answers = []

        def service(request):
            d = Deferred(lambda d: None)  # ignores cancellation
            answers.append(d)
            return d

        c = Connection(MuxServerFactory(service, self.clock))
        c.send(Tdispatch(2, body=b"slow"))
        c.send(Tdiscarded(2, b"timeout"))
        c.send(Tdispatch(2, body=b"fast"))
        self.assertEqual(c.written(), [Rdiscarded(2)])
        answers[1].callback(b"fast answer")
        self.assertEqual(c.written(), [Rdispatch(2, body=b"fast answer")])
        self.assertEqual(c.protocol.session.pendingCount, 0)

    def test_orphanDiscard(self):
        """
        A Tdiscarded for an unknown tag is counted and not answered.
        """
        c = self.connect()
        c.send(Tdiscarded(9, b"late"))
        self.assertEqual(c.written(), [])
        self.assertEqual(c.protocol.session.orphanedDiscards, 1)

    def test_duplicateTag(self):
        """
        A duplicate tag gets Rerr for every pending request and the session
        closes.
        """
        c = self.connect()
        c.send(Tdispatch(2, body=b"a"), Tdispatch(3, body=b"b"), Tdispatch(2, body=b"c"))
        replies = c.written()
        self.assertEqual([(type(r), r.tag) for r in replies], [(Rerr, 2), (Rerr, 3)])
        self.assertIn(b"duplicate tag 2", replies[0].why)
        self.assertTrue(c.closed)

    def test_unexpectedMessage(self):
        """
        A valid but unexpected message gets an Rerr naming its type.
        """
        c = self.connect()
        c.send(Rping(1))
        self.assertEqual(c.written(), [Rerr(1, b"Unexpected mux message type -65")])
        self.assertFalse(c.closed)

    def test_malformedClosesOnlyThatConnection(self):
        """
        A malformed frame closes its connection; another goes on.
        """
        bad, good = self.connect(), self.connect()
        good.send(Tping(1))
        bad.protocol.dataReceived(bytes.fromhex("000000054100000101"))
        self.assertTrue(bad.closed)
        good.send(Tdispatch(2, body=b"q"))
        self.service.requests[-1][1].callback(b"a")
        self.assertFalse(good.closed)
        self.assertEqual(good.written(), [Rping(1), Rdispatch(2, body=b"a")])

    def test_oversizedLengthRefused(self):
        """
        A 2 GiB length prefix closes the connection from its first bytes,
        buffering nothing; another connection goes on.
        """
        bad, good = self.connect(), self.connect()
        bad.send(Tping(1))
        bad.protocol.dataReceived(b"\x80\x00\x00\x00\x02\x00\x00\x02")
        self.assertTrue(bad.closed)
        self.assertEqual(bad.protocol.session._decoder.bufferedSize(), 0)
        good.send(Tping(1))
        self.assertEqual(good.written(), [Rping(1)])

    def test_handlerCancelledOnConnectionLoss(self):
        """
        Connection loss cancels the outstanding handlers.
        """
        c = self.connect()
        c.send(Tdispatch(2, body=b"a"))
        c.transport.loseConnection()
        self.assertEqual(self.service.cancelled, [b"a"])
        self.assertEqual(self.factory.protocols, set())


class DrainTests(ServerTestsMixin, SynchronousTestCase):
    """
    Graceful stop: Tdrain, nack new requests, close when done.
    """

    def negotiated(self):
        c = self.connect()
        c.protocol.dataReceived(MARKER_LEGACY + TINIT)
        c.written()
        return c

    def test_drainWaitsForRepliesAndRdrain(self):
        """
        A drained session sends Tdrain, nacks new requests with Finagle's
        exact nack, answers outstanding ones and closes after Rdrain.
        """
        c = self.negotiated()
        c.send(Tdispatch(2, body=b"a"))
        done = self.factory.drainAll(timeout=10)
        self.assertEqual(c.written(), [Tdrain(1)])
        c.send(Tdispatch(3, body=b"late"))
        self.assertEqual(c.transport.value(), bytes.fromhex("00000007fe000003020000"))
        c.written()
        self.assertEqual(len(self.service.requests), 1)
        c.send(Rdrain(1))
        self.assertFalse(c.closed)
        self.service.requests[0][1].callback(b"A")
        self.assertEqual(c.written(), [Rdispatch(2, body=b"A")])
        self.assertTrue(c.closed)
        self.successResultOf(done)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_legacySessionGrace(self):
        """
        A session without a handshake waits for Rdrain (nacking crossing
        requests, as Finagle does) but closes once idle after the grace
        period, since Scales never answers Tdrain.
        """
        c = self.connect()
        c.send(Tping(1))
        done = self.factory.drainAll(timeout=10)
        c.send(Tdispatch(2, body=b"crossing"))
        self.assertEqual([type(m) for m in c.written()], [Rping, Tdrain, Rdispatch])
        self.assertFalse(c.closed)
        self.clock.advance(1.0)
        self.assertTrue(c.closed)
        self.successResultOf(done)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_legacySessionClosesOnRdrain(self):
        """
        A session without a handshake that answers Tdrain closes at once.
        """
        c = self.connect()
        c.send(Tping(1))
        self.factory.drainAll(timeout=10)
        c.send(Rdrain(1))
        self.assertTrue(c.closed)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_deadlineForcesClose(self):
        """
        Sessions still busy at the drain deadline are aborted.
        """
        c = self.negotiated()
        c.send(Tdispatch(2, body=b"a"))
        done = self.factory.drainAll(timeout=3)
        self.clock.advance(2.9)
        self.assertNoResult(done)
        self.clock.advance(0.1)
        self.assertTrue(c.transport.disconnected)
        self.successResultOf(done)
        self.assertEqual(self.service.cancelled, [b"a"])

    def test_newConnectionWhileDraining(self):
        """
        A connection opened while draining is drained as soon as it speaks.
        """
        self.factory.drainAll()
        c = self.connect()
        c.protocol.dataReceived(MARKER_LEGACY + TINIT)
        c.send(Tdispatch(2, body=b"a"))
        self.assertEqual([type(m) for m in c.written()], [Rerr, Rinit, Tdrain, Rdispatch])
        self.assertEqual(self.service.requests, [])
