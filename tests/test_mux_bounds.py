"""
Tests that what one peer can make a connection hold is bounded: pending
requests, unsent answers, unfinished fragments; and that the calls read with
a frame that breaks the protocol get a typed answer.  Fake transports, fake
clock.
"""

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from txscales.demo.gen import TestService
from txscales.errors import ConnectionLostError, FragmentLimitError, FrameTooLargeError
from txscales.mux._framing import FRAGMENT_OVERHEAD, MAX_FRAGMENTED_TAGS, FrameDecoder, encodeFrames
from txscales.mux._messages import (
    FLAG_REJECTED,
    FLAG_RETRYABLE,
    STATUS_NACK,
    Rdispatch,
    Rping,
    Tdispatch,
    Tping,
    encodeMessage,
    frameHeader,
    muxFailureFlags,
)
from txscales.mux.protocol import MuxClientProtocol, MuxServerFactory
from txscales.thrift import describeService, encodeCall
from txscales.thrift._server import ThriftServerFactory
from txscales.thriftmux._server import serverFactory as thriftMuxServerFactory

# A Tping with a body: a frame that does not decode.
BAD_FRAME = bytes.fromhex("0000000541000001ff")
DELAYED_QUERY = describeService(TestService.Iface)["delayedQuery"]


class SlowReaderTransport(StringTransportWithDisconnection):
    """
    A transport whose peer reads only when the test says so: like Twisted's
    TCP transport, it pauses its producer once more than C{bufferSize} bytes
    wait to be sent, and resumes it once they are all sent.
    """

    bufferSize = 1024

    def write(self, data):
        StringTransportWithDisconnection.write(self, data)
        if self.producer is not None and self.streaming and len(self.io.getvalue()) > self.bufferSize:
            self.producer.pauseProducing()

    def peerReads(self):
        """
        The peer reads everything written.

        @return: those bytes.
        """
        data = self.value()
        self.clear()
        if self.producer is not None:
            self.producer.resumeProducing()
        return data


class Held:
    """
    A Mux service that answers nothing until the test does.
    """

    def __init__(self):
        self.requests = []

    def __call__(self, request):
        d = Deferred()
        self.requests.append((request, d))
        return d


def connect(factory):
    protocol = factory.buildProtocol(None)
    transport = SlowReaderTransport()
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return protocol, transport


def dispatches(first, count, body=b"x"):
    return b"".join(encodeMessage(Tdispatch(tag, body=body)) for tag in range(first, first + count))


def framedCall(x, delayMs=0):
    message = encodeCall(DELAYED_QUERY, (x, delayMs), {})
    return len(message).to_bytes(4, "big") + message


class PendingCapTests(SynchronousTestCase):
    """
    A Mux server runs at most C{maxPending} requests of a connection and
    nacks the others, as Finagle's admission control does.
    """

    def test_defaultCapNacks(self):
        """
        By default, the 1001st pending request of a connection is nacked,
        retryable and rejected, without reaching the service.
        """
        service = Held()
        protocol, transport = connect(MuxServerFactory(service, Clock()))
        protocol.dataReceived(dispatches(2, 1001))
        self.assertEqual(len(service.requests), 1000)
        [nack] = FrameDecoder().feed(transport.peerReads())
        self.assertEqual((nack.tag, nack.status), (1002, STATUS_NACK))
        self.assertEqual(muxFailureFlags(nack.contexts), FLAG_RETRYABLE | FLAG_REJECTED)
        self.assertEqual(protocol.session.nacked, 1)

    def test_answeredMakesRoom(self):
        """
        A Mux connection at its cap is still read from, and once a pending
        request is answered, the next one is dispatched.
        """
        service = Held()
        protocol, transport = connect(MuxServerFactory(service, Clock(), maxPending=2))
        protocol.dataReceived(dispatches(2, 3))
        self.assertEqual(len(service.requests), 2)
        # Still read: later requests are nacked, discards are heard.
        self.assertEqual(transport.producerState, "producing")
        service.requests[0][1].callback(b"done")
        protocol.dataReceived(dispatches(5, 1))
        self.assertEqual([r.tag for r, _ in service.requests], [2, 3, 5])
        answers = FrameDecoder().feed(transport.peerReads())
        self.assertEqual([(a.tag, a.status) for a in answers], [(4, STATUS_NACK), (2, 0)])

    def test_downgradedStopsReading(self):
        """
        A downgraded Thrift client, which cannot be nacked, is not read from
        while C{maxPending} of its calls wait, and is read again once one is
        answered.
        """
        handler = _Waiting()
        factory = thriftMuxServerFactory(TestService.Iface, handler, Clock(), maxPending=2)
        protocol, transport = connect(factory)
        protocol.dataReceived(framedCall("a") + framedCall("b"))
        self.assertEqual(transport.producerState, "paused")
        handler.waiting[0].callback("aa")
        self.assertEqual(transport.producerState, "producing")

    def test_plainThriftStopsReading(self):
        """
        The plain Thrift server is not read from while C{maxPending} calls
        of a connection wait for their reply.
        """
        handler = _Waiting()
        from txscales.thrift._processor import ThriftProcessor

        factory = ThriftServerFactory(ThriftProcessor(TestService.Iface, handler).process, Clock(), maxPending=2)
        protocol, transport = connect(factory)
        protocol.dataReceived(framedCall("a"))
        self.assertEqual(transport.producerState, "producing")
        protocol.dataReceived(framedCall("b"))
        self.assertEqual(transport.producerState, "paused")
        handler.waiting[0].callback("aa")
        self.assertEqual(transport.producerState, "producing")

    def test_plainThriftHandlerCancelled(self):
        """
        A plain Thrift call whose handler fails with CancelledError while the
        connection is up closes the connection, as another failure does,
        rather than leaving the connection's later replies waiting forever.
        """
        handler = _Waiting()
        from txscales.thrift._processor import ThriftProcessor

        factory = ThriftServerFactory(ThriftProcessor(TestService.Iface, handler).process, Clock(), maxPending=2)
        protocol, transport = connect(factory)
        protocol.dataReceived(framedCall("a"))
        handler.waiting[0].cancel()
        self.flushLoggedErrors(CancelledError)
        self.assertFalse(transport.connected)


class _Waiting:
    """
    A TestService handler whose delayed answers the test fires.
    """

    def __init__(self):
        self.waiting = []

    def delayedQuery(self, x, delayMs):
        d = Deferred()
        self.waiting.append(d)
        return d


class BackpressureTests(SynchronousTestCase):
    """
    Connections stop reading while their unsent bytes pass the transport's
    high-water mark, and read again once they are sent.
    """

    def test_muxServer(self):
        """
        A Mux client that sends requests without reading the answers is not
        read from until it reads them.
        """
        protocol, transport = connect(MuxServerFactory(lambda request: b"y" * 100, Clock()))
        protocol.dataReceived(dispatches(2, 5))
        self.assertEqual(transport.producerState, "producing")
        protocol.dataReceived(dispatches(7, 20))
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(len(FrameDecoder().feed(transport.peerReads())), 25)
        self.assertEqual(transport.producerState, "producing")

    def test_plainThrift(self):
        """
        The plain Thrift server stops reading too while its replies back
        up.
        """
        from txscales.thrift._server import serverFactory
        from txscales.demo.handler import TestServiceHandler

        clock = Clock()
        protocol, transport = connect(serverFactory(TestService.Iface, TestServiceHandler(clock), clock))
        protocol.dataReceived(b"".join(framedCall("x" * 100) for _ in range(20)))
        clock.advance(0)
        self.assertEqual(transport.producerState, "paused")
        transport.peerReads()
        self.assertEqual(transport.producerState, "producing")

    def test_muxClientAnswersNothingWhileBackedUp(self):
        """
        A Mux client session does not answer the pings of a server that
        floods it with them and reads nothing, while its writes back up.
        """
        protocol = MuxClientProtocol(Clock(), handshake=False, pingInterval=None)
        transport = SlowReaderTransport()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        for _ in range(20):
            protocol.dataReceived(b"".join(encodeMessage(Tping(2)) for _ in range(100)))
        self.assertLess(len(transport.value()), 2 * transport.bufferSize)
        transport.peerReads()
        protocol.dataReceived(encodeMessage(Tping(2)))
        self.assertEqual(transport.value(), encodeMessage(Rping(2)))

    def test_muxClientReadsWhileBackedUp(self):
        """
        A Mux client whose requests back up still reads its answers: were
        it to stop, it and a server waiting for it to read would both wait
        forever.
        """
        protocol = MuxClientProtocol(Clock(), handshake=False, pingInterval=None)
        transport = SlowReaderTransport()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        calls = [protocol.dispatch(b"q" * 1000) for _ in range(10)]
        self.assertEqual(transport.producerState, "producing")
        protocol.dataReceived(encodeMessage(Rdispatch(2, body=b"answer")))
        self.assertEqual(self.successResultOf(calls[0]).body, b"answer")

    def test_answersWrittenPerBatch(self):
        """
        The answers to the requests of one read are written at once, whole:
        a peer that reads a byte at a time gets whole frames, one write per
        read.
        """
        protocol, transport = connect(MuxServerFactory(lambda request: b"y" * 10, Clock()))
        writes = []
        transport.write = lambda data, write=transport.write: (writes.append(data), write(data))
        protocol.dataReceived(dispatches(2, 50))
        self.assertEqual(len(writes), 1)
        self.assertEqual(len(FrameDecoder().feed(writes[0])), 50)


def fragment(tag, body):
    return frameHeader(Tdispatch.type, tag | 0x800000, len(body)) + body


class FragmentBudgetTests(SynchronousTestCase):
    """
    The unfinished fragmented messages of a connection are held to one
    budget, empty fragments included, and a bounded number of tags.
    """

    def test_budgetAcrossTags(self):
        """
        Fragments of several tags, each under the frame limit, are refused
        once together they pass the connection's budget.
        """
        decoder = FrameDecoder(maxFrameSize=1000)
        data = b"".join(fragment(tag, b"x" * 400) for tag in (2, 3, 4))
        self.assertRaises(FragmentLimitError, decoder.feed, data)

    def test_emptyFragmentsCount(self):
        """
        Empty fragments are charged too.
        """
        decoder = FrameDecoder(maxFrameSize=1000)
        count = 1000 // FRAGMENT_OVERHEAD + 2
        self.assertRaises(FragmentLimitError, decoder.feed, fragment(2, b"") * count)

    def test_openTagsCapped(self):
        """
        At most L{MAX_FRAGMENTED_TAGS} fragmented messages may be open at
        once.
        """
        decoder = FrameDecoder()
        decoder.feed(b"".join(fragment(tag, b"x") for tag in range(2, 2 + MAX_FRAGMENTED_TAGS)))
        self.assertRaises(FragmentLimitError, decoder.feed, fragment(1000, b"x"))

    def test_finishedMessagesFreeTheBudget(self):
        """
        A reassembled message gives its budget back: messages of nearly the
        limit, one after the other, all decode.
        """
        decoder = FrameDecoder(maxFrameSize=10000)
        for tag in range(2, 12):
            message = Tdispatch(tag, body=b"z" * 9000)
            self.assertEqual(decoder.feed(encodeFrames(message, 1024)), [message])
        self.assertEqual(decoder.fragmentBytes(), 0)

    def test_limitIsAFrameTooLargeError(self):
        """
        L{FragmentLimitError} is a L{FrameTooLargeError}.
        """
        self.assertTrue(issubclass(FragmentLimitError, FrameTooLargeError))

    def test_serverClosesThatConnectionOnly(self):
        """
        A server connection over its fragment budget is closed; another
        connection of the same server is not.
        """
        factory = MuxServerFactory(Held(), Clock(), maxFrameSize=10000)
        protocol, transport = connect(factory)
        other, otherTransport = connect(factory)
        protocol.dataReceived(b"".join(fragment(tag, b"x" * 9000) for tag in (2, 3)))
        self.assertFalse(transport.connected)
        self.assertTrue(otherTransport.connected)

    def test_clientAborts(self):
        """
        A client session whose server floods it with fragments is aborted:
        its calls fail with L{ConnectionLostError} caused by a
        L{FragmentLimitError}.
        """
        protocol = MuxClientProtocol(Clock(), maxFrameSize=10000, handshake=False, pingInterval=None)
        transport = SlowReaderTransport()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        d = protocol.dispatch(b"call")
        protocol.dataReceived(fragment(2, b"") * 1000)
        self.assertFalse(transport.connected)
        error = self.failureResultOf(d, ConnectionLostError).value
        self.assertIsInstance(error.reason, FragmentLimitError)
        self.assertTrue(error.mayHaveReachedServer)


class BadFrameTests(SynchronousTestCase):
    """
    Calls read in the same bytes as a frame that breaks the protocol get a
    typed answer before the connection closes.
    """

    def test_serverNacksCallsBeforeBadFrame(self):
        """
        A server nacks (retryable, not processed) the requests that came
        before an undecodable frame, and closes the connection.
        """
        service = Held()
        protocol, transport = connect(MuxServerFactory(service, Clock()))
        protocol.dataReceived(dispatches(2, 2) + BAD_FRAME)
        self.assertEqual(service.requests, [])
        answers = FrameDecoder().feed(transport.peerReads())
        self.assertEqual([(a.tag, a.status) for a in answers], [(2, STATUS_NACK), (3, STATUS_NACK)])
        self.assertEqual(muxFailureFlags(answers[0].contexts), FLAG_RETRYABLE | FLAG_REJECTED)
        self.assertFalse(transport.connected)

    def test_serverNacksCallsBeforeOversizedFrame(self):
        """
        The same for an oversized length prefix.
        """
        service = Held()
        protocol, transport = connect(MuxServerFactory(service, Clock(), maxFrameSize=1000))
        protocol.dataReceived(dispatches(2, 1) + b"\x00\x10\x00\x00")
        [answer] = FrameDecoder().feed(transport.peerReads())
        self.assertEqual((answer.tag, answer.status), (2, STATUS_NACK))
        self.assertFalse(transport.connected)

    def test_clientDeliversAnswersBeforeBadFrame(self):
        """
        A client delivers the answers that came before a bad frame; its
        other calls fail with a L{ConnectionLostError} saying that they may
        have reached the server.
        """
        protocol = MuxClientProtocol(Clock(), handshake=False, pingInterval=None)
        transport = SlowReaderTransport()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        answered = protocol.dispatch(b"one")
        waiting = protocol.dispatch(b"two")
        protocol.dataReceived(encodeMessage(Rdispatch(2, body=b"ONE")) + BAD_FRAME)
        self.assertEqual(self.successResultOf(answered).body, b"ONE")
        self.assertFalse(transport.connected)
        self.assertTrue(self.failureResultOf(waiting, ConnectionLostError).value.mayHaveReachedServer)
