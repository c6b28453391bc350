"""
Tests for the Mux client protocol, over a fake transport and a fake clock.
"""

import struct

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from txscales.errors import (
    ConnectError,
    ConnectionLostError,
    HandshakeError,
    PingTimeoutError,
    RequestNackedError,
    ServerError,
    SessionDrainingError,
    TagsExhaustedError,
)
from txscales.mux._framing import FrameDecoder, encodeFrames
from txscales.mux._messages import (
    STATUS_ERROR,
    STATUS_NACK,
    Rdiscarded,
    Rdispatch,
    Rerr,
    Rinit,
    Rping,
    Tdiscarded,
    Tdispatch,
    Tdrain,
    Tinit,
    Tlease,
    Tping,
    encodeMessage,
)
from txscales.mux._clientsession import ClientSession
from txscales.interfaces import BUSY, CLOSED, OPEN
from txscales.mux.protocol import DiscardedCall, MuxClientProtocol

from tests._memory import TracedMemory

MARKER = bytes.fromhex("0000000f7f00000174696e697420636865636b")
TINIT = bytes.fromhex(
    "0000002a4400000100010000000a6d75782d6672616d6572000000047fffffff00000003746c73000000036f6666"
)
RINIT = bytes.fromhex(
    "0000002abc00000100010000000a6d75782d6672616d6572000000047fffffff00000003746c73000000036f6666"
)


class ClientHarness:
    """
    A client protocol on a fake transport and clock, with the server's view
    of what it wrote.
    """

    def __init__(self, handshake=True, **options):
        self.clock = Clock()
        self.protocol = MuxClientProtocol(self.clock, handshake=handshake, **options)
        self.transport = StringTransportWithDisconnection()
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)
        self.decoder = FrameDecoder()

    def written(self):
        """
        @return: the messages written since the last call.
        """
        data = self.transport.value()
        self.transport.clear()
        return self.decoder.feed(data)

    def receive(self, *messages):
        self.protocol.dataReceived(b"".join(encodeMessage(m) for m in messages))

    def negotiate(self):
        self.protocol.dataReceived(MARKER)
        self.protocol.dataReceived(RINIT)
        self.transport.clear()


class HandshakeTests(SynchronousTestCase):
    """
    The client opens with the marker, Tinit and Rinit, as Finagle does.
    """

    def test_markerThenTinit(self):
        """
        The client writes Finagle's exact marker, then Finagle's exact Tinit
        once the server echoes it, and is ready after Rinit.
        """
        h = ClientHarness()
        self.assertEqual(h.transport.value(), MARKER)
        h.transport.clear()
        h.protocol.dataReceived(MARKER)
        self.assertEqual(h.transport.value(), TINIT)
        self.assertNoResult(h.protocol.ready)
        h.protocol.dataReceived(RINIT)
        self.assertIs(self.successResultOf(h.protocol.ready), h.protocol)
        self.assertEqual(h.protocol.status, OPEN)

    def test_olderServer(self):
        """
        A server that does not echo the marker gets a session without
        headers; its answer is dropped and queued calls are written.
        """
        h = ClientHarness()
        d = h.protocol.dispatch(b"body")
        h.transport.clear()
        h.receive(Rerr(1, b"unexpected message"))
        self.successResultOf(h.protocol.ready)
        self.assertEqual(h.written(), [Tdispatch(2, body=b"body")])
        self.assertNoResult(d)

    def test_callsQueueDuringHandshake(self):
        """
        Calls made before the session is ready are written after Rinit.
        """
        h = ClientHarness()
        h.protocol.dispatch(b"a")
        h.protocol.dispatch(b"b")
        self.assertEqual(h.transport.value(), MARKER)
        h.transport.clear()
        h.protocol.dataReceived(MARKER)
        h.transport.clear()
        h.protocol.dataReceived(RINIT)
        self.assertEqual(h.written(), [Tdispatch(2, body=b"a"), Tdispatch(3, body=b"b")])

    def test_cancelWhileQueuedSendsNothing(self):
        """
        Cancelling a call still queued behind the handshake frees its tag
        without any wire traffic.
        """
        h = ClientHarness()
        d = h.protocol.dispatch(b"a")
        h.transport.clear()
        d.cancel()
        self.assertFalse(self.failureResultOf(d, DiscardedCall).value.written)
        h.negotiate()
        self.assertEqual(h.written(), [])
        h.protocol.dispatch(b"b")
        self.assertEqual(h.written(), [Tdispatch(2, body=b"b")])

    def test_rerrFailsHandshake(self):
        """
        An Rerr answering Tinit fails the handshake and closes the
        connection; ready fails with a typed error.
        """
        h = ClientHarness()
        h.protocol.dataReceived(MARKER)
        h.receive(Rerr(1, b"no"))
        self.assertTrue(h.transport.disconnected)
        self.failureResultOf(h.protocol.ready, ConnectError)

    def test_requiredTlsRefused(self):
        """
        A server that requires TLS is refused with a HandshakeError.
        """
        session = ClientSession()
        session.start()
        session.receiveData(MARKER)
        self.assertRaises(
            HandshakeError, session.receiveData, encodeMessage(Rinit(1, 1, [(b"tls", b"required")]))
        )

    def test_peerWindowFragments(self):
        """
        Dispatches are fragmented to the window the server advertised.
        """
        h = ClientHarness()
        h.protocol.dataReceived(MARKER)
        h.receive(Rinit(1, 1, [(b"mux-framer", (16).to_bytes(4, "big"))]))
        h.transport.clear()
        h.protocol.dispatch(b"x" * 40)
        data = h.transport.value()
        self.assertEqual(data[4], 0x02)
        self.assertEqual(data[5], 0x80)
        self.assertEqual(FrameDecoder().feed(data), [Tdispatch(2, body=b"x" * 40)])


class DispatchTests(SynchronousTestCase):
    """
    One Deferred per tag; replies, errors, nacks and discards.
    """

    def setUp(self):
        self.h = ClientHarness(handshake=False, pingInterval=None)

    def test_smallestFreeTag(self):
        """
        Tags start at 2 and the smallest free one is reused.
        """
        p = self.h.protocol
        for _ in range(3):
            p.dispatch(b"")
        self.assertEqual([m.tag for m in self.h.written()], [2, 3, 4])
        self.h.receive(Rdispatch(3, body=b"r"))
        p.dispatch(b"")
        p.dispatch(b"")
        self.assertEqual([m.tag for m in self.h.written()], [3, 5])

    def test_repliesByTag(self):
        """
        Replies arriving out of order reach the calls with their tags.
        """
        p = self.h.protocol
        a, b = p.dispatch(b"a"), p.dispatch(b"b")
        self.h.receive(Rdispatch(3, body=b"B"), Rdispatch(2, body=b"A"))
        self.assertEqual(self.successResultOf(a).body, b"A")
        self.assertEqual(self.successResultOf(b).body, b"B")
        self.assertEqual(p.pending, 0)

    def test_replyForms(self):
        """
        A reply with contexts, a fragmented reply and a plain one all reach
        their calls with their contexts and bodies.
        """
        p = self.h.protocol
        a, b, c = p.dispatch(b"a"), p.dispatch(b"b"), p.dispatch(b"c")
        fragmented = encodeFrames(Rdispatch(4, body=b"C" * 40), window=16)
        self.h.protocol.dataReceived(encodeMessage(Rdispatch(2, contexts=[(b"k", b"v")], body=b"A")) + fragmented)
        self.h.receive(Rdispatch(3, body=b"B"))
        replies = [self.successResultOf(d) for d in (a, b, c)]
        self.assertEqual([(r.contexts, r.body) for r in replies], [([(b"k", b"v")], b"A"), ([], b"B"), ([], b"C" * 40)])
        self.assertEqual(p.pending, 0)

    def test_errorOutcomes(self):
        """
        RdispatchError, nack and Rerr fail their calls with typed errors that
        say whether the request may have reached the server.
        """
        p = self.h.protocol
        a, b, c = p.dispatch(b"a"), p.dispatch(b"b"), p.dispatch(b"c")
        self.h.receive(
            Rdispatch(2, STATUS_ERROR, body=b"boom"), Rdispatch(3, STATUS_NACK), Rerr(4, b"bad", legacy=True)
        )
        error = self.failureResultOf(a, ServerError).value
        self.assertEqual(error.message, "boom")
        self.assertTrue(error.mayHaveReachedServer)
        nack = self.failureResultOf(b, RequestNackedError).value
        self.assertFalse(nack.mayHaveReachedServer)
        self.assertTrue(nack.retryable)
        self.assertEqual(self.failureResultOf(c, ServerError).value.message, "bad")

    def test_cancelSendsTdiscardedAndHoldsTag(self):
        """
        Cancelling a written call sends Tdiscarded (canonical code 0x42) and
        holds its tag until the server answers for it.
        """
        p = self.h.protocol
        d = p.dispatch(b"a")
        self.h.transport.clear()
        d.cancel()
        self.assertTrue(self.failureResultOf(d, CancelledError).value.written)
        data = self.h.transport.value()
        self.assertEqual(data[4], 0x42)
        self.assertEqual(self.h.written(), [Tdiscarded(2, b"call cancelled by the client")])
        other = p.dispatch(b"b")
        self.assertEqual(self.h.written(), [Tdispatch(3, body=b"b")])
        # The late answer to the discarded call frees tag 2 and reaches
        # nobody; the other call gets only its own answer.
        self.h.receive(Rdispatch(2, body=b"late"))
        self.assertNoResult(other)
        p.dispatch(b"c")
        self.assertEqual(self.h.written(), [Tdispatch(2, body=b"c")])
        self.h.receive(Rdispatch(3, body=b"B"))
        self.assertEqual(self.successResultOf(other).body, b"B")

    def test_tagReusedInsideCallback(self):
        """
        When answers for tags 3 and 2 arrive in one read and the callback of
        tag 3 makes a new call (which reuses freed tag 2), the new call does
        not receive tag 2's answer, and the call of tag 2 does.
        """
        p = self.h.protocol
        a, b = p.dispatch(b"a"), p.dispatch(b"b")
        self.h.written()
        follow = []
        b.addCallback(lambda reply: follow.append(p.dispatch(b"c")))
        self.h.receive(Rdispatch(3, body=b"B"), Rdispatch(2, body=b"A"))
        self.assertEqual(self.successResultOf(a).body, b"A")
        self.assertEqual(self.h.written(), [Tdispatch(2, body=b"c")])
        self.assertNoResult(follow[0])
        self.h.receive(Rdispatch(2, body=b"C"))
        self.assertEqual(self.successResultOf(follow[0]).body, b"C")

    def test_rdiscardedFreesTag(self):
        """
        Rdiscarded frees a discarded call's tag.
        """
        p = self.h.protocol
        d = p.dispatch(b"a")
        d.cancel()
        self.failureResultOf(d, DiscardedCall)
        self.h.receive(Rdiscarded(2))
        self.h.written()
        p.dispatch(b"b")
        self.assertEqual(self.h.written(), [Tdispatch(2, body=b"b")])

    def test_unknownTagIgnored(self):
        """
        A reply for a tag with no call is ignored.
        """
        d = self.h.protocol.dispatch(b"a")
        self.h.receive(Rdispatch(9, body=b"x"))
        self.assertNoResult(d)
        self.assertFalse(self.h.transport.disconnecting)

    def test_serverPing(self):
        """
        A server Tping is answered with Rping of the same tag.
        """
        self.h.receive(Tping(1))
        self.assertEqual(self.h.written(), [Rping(1)])

    def test_serverDispatchRefused(self):
        """
        A Tdispatch from the server gets an Rerr and the session goes on.
        """
        self.h.receive(Tdispatch(7, body=b""))
        [reply] = self.h.written()
        self.assertIsInstance(reply, Rerr)
        self.assertEqual(reply.tag, 7)
        self.assertEqual(self.h.protocol.status, OPEN)

    def test_tagsExhausted(self):
        """
        When every tag is in use a call fails at once with a typed error.
        """
        p = self.h.protocol
        p._session._tags._max = 3
        p.dispatch(b"")
        p.dispatch(b"")
        self.failureResultOf(p.dispatch(b""), TagsExhaustedError)


class LifecycleTests(SynchronousTestCase):
    """
    Pings, drains, leases and connection loss.
    """

    def test_pingsAndTimeout(self):
        """
        The client pings at once when ready and every interval after an
        answer; an unanswered ping closes the session and fails its calls.
        """
        h = ClientHarness(pingInterval=5.0, pingTimeout=4.0)
        h.negotiate()
        h.clock.advance(0)
        self.assertEqual(h.written(), [Tping(1)])
        h.receive(Rping(1))
        h.clock.advance(4.9)
        self.assertEqual(h.written(), [])
        h.clock.advance(0.1)
        self.assertEqual(h.written(), [Tping(1)])
        d = h.protocol.dispatch(b"a")
        h.clock.advance(4.0)
        self.assertTrue(h.transport.disconnected)
        error = self.failureResultOf(d, ConnectionLostError).value
        self.assertIsInstance(error.reason, PingTimeoutError)
        self.assertTrue(error.mayHaveReachedServer)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_drain(self):
        """
        Tdrain is answered with Rdrain; new calls fail locally without
        reaching the server; the session closes when the last call ends.
        """
        h = ClientHarness(handshake=False, pingInterval=None)
        seen = []
        h.protocol.statusObservers.append(lambda p: seen.append(p.status))
        d = h.protocol.dispatch(b"a")
        h.written()
        h.receive(Tdrain(1))
        self.assertEqual([type(m).__name__ for m in h.written()], ["Rdrain"])
        self.assertEqual(seen, [BUSY])
        refused = self.failureResultOf(h.protocol.dispatch(b"b"), SessionDrainingError).value
        self.assertFalse(refused.mayHaveReachedServer)
        self.assertEqual(h.written(), [])
        self.assertFalse(h.transport.disconnecting)
        h.receive(Rdispatch(2, body=b"A"))
        self.assertEqual(self.successResultOf(d).body, b"A")
        self.assertEqual(h.protocol.status, CLOSED)
        self.successResultOf(h.protocol.closed)

    def test_lease(self):
        """
        A lease of 1000 ms keeps the session open for one second, then busy.
        """
        h = ClientHarness(handshake=False, pingInterval=None)
        h.receive(Tlease(0, 1000))
        self.assertEqual(h.protocol.status, OPEN)
        h.clock.advance(1.0)
        self.assertEqual(h.protocol.status, BUSY)

    def test_connectionLost(self):
        """
        Connection loss fails written calls as "may have reached the
        server" and queued ones as not; later calls fail at once.
        """
        h = ClientHarness(pingInterval=None)
        queued = h.protocol.dispatch(b"q")
        h.protocol.connectionLost(None)
        self.assertFalse(self.failureResultOf(queued, ConnectionLostError).value.mayHaveReachedServer)
        self.assertFalse(self.failureResultOf(h.protocol.dispatch(b"x"), ConnectionLostError).value.mayHaveReachedServer)
        self.failureResultOf(h.protocol.ready, ConnectError)

        h = ClientHarness(handshake=False, pingInterval=None)
        written = h.protocol.dispatch(b"w")
        h.transport.loseConnection()
        error = self.failureResultOf(written, ConnectionLostError).value
        self.assertTrue(error.mayHaveReachedServer)
        self.assertFalse(error.retryable)

    def test_malformedServerFrameClosesSession(self):
        """
        A malformed frame from the server closes the session and fails its
        calls with the protocol error as the reason.
        """
        h = ClientHarness(handshake=False, pingInterval=None)
        d = h.protocol.dispatch(b"a")
        h.protocol.dataReceived(b"\x00\x00\x00\x04\x00\x00\x00\x02")
        self.assertTrue(h.transport.disconnected)
        self.failureResultOf(d, ConnectionLostError)

    def test_tinitOnOpenSessionCloses(self):
        """
        A Tinit from the server on an open session closes it.
        """
        h = ClientHarness(handshake=False, pingInterval=None)
        h.receive(Tinit(1, 1, []))
        self.assertTrue(h.transport.disconnected)


class AbortedSessionMemoryTests(TracedMemory, SynchronousTestCase):
    """
    An aborted session keeps none of the bytes it received reachable: not
    from the errors it fails calls with, nor from the log events reporting
    them, which Twisted keeps while logging has not started.
    """

    size = 8 * 1024 * 1024

    def setUp(self):
        # What Twisted's buffer of events does before logging starts.
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.startTracing()

    def partialFrame(self, h):
        """
        Receive all but the last byte of a large Rdispatch frame, in the
        chunks a socket gives.
        """
        h.protocol.dataReceived(struct.pack(">I", self.size) + b"\x02\x00\x00\x01")
        left = self.size - 5
        while left >= 65536:
            h.protocol.dataReceived(bytes(65536))
            left -= 65536
        h.protocol.dataReceived(bytes(left))

    def test_badFrameAfterLargeBuffer(self):
        """
        A session aborted by a bad length prefix right after a large frame
        holds nothing of that frame once collected, though its log event and
        its call's failure are kept.
        """
        before = self.traced()
        h = ClientHarness(handshake=False, pingInterval=None)
        d = h.protocol.dispatch(b"a")
        self.partialFrame(h)
        h.protocol.dataReceived(b"\x00" + struct.pack(">I", 0xFFFFFFFF))
        self.assertTrue(h.transport.disconnected)
        failure = self.failureResultOf(d, ConnectionLostError)
        del h, d
        self.assertLess(self.traced() - before, self.size // 8)
        self.assertIn("closing Mux session", [e.get("log_format") for e in self.events][-1])
        self.assertIsNotNone(failure)

    def test_lostWithLargePartialFrame(self):
        """
        A session lost with a large partial frame buffered drops it at once.
        """
        h = ClientHarness(handshake=False, pingInterval=None)
        before = self.traced()
        self.partialFrame(h)
        self.assertGreater(self.traced() - before, self.size // 2)
        h.transport.loseConnection()
        self.assertLess(self.traced() - before, self.size // 8)


class TagSetTests(SynchronousTestCase):
    """
    Tags are handed out smallest first within 2..0x7fffff.
    """

    def test_smallestFirst(self):
        """
        Freed tags are reused smallest first, before new ones.
        """
        from txscales.mux._tags import TagSet

        tags = TagSet()
        self.assertEqual([tags.allocate() for _ in range(5)], [2, 3, 4, 5, 6])
        tags.release(5)
        tags.release(3)
        self.assertEqual([tags.allocate() for _ in range(3)], [3, 5, 7])
        self.assertEqual(tags.inUse, 6)

    def test_exhaustion(self):
        """
        The last tag is 0x7fffff; then allocation fails with a typed error.
        """
        from txscales.mux._tags import TagSet

        tags = TagSet(minTag=0x7FFFFE)
        self.assertEqual([tags.allocate(), tags.allocate()], [0x7FFFFE, 0x7FFFFF])
        self.assertRaises(TagsExhaustedError, tags.allocate)
