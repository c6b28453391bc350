"""
Tests for L{txscales.kafka._connection}: one broker connection, byte by
byte over a fake transport, time on a L{task.Clock}.
"""

import struct

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from txscales.errors import ClientClosedError, ConnectionLostError, FrameTooLargeError, RequestTimeoutError
from txscales.kafka._connection import KafkaConnection, TooManyPendingRequestsError
from txscales.kafka._errors import KafkaProtocolError
from txscales.kafka._messages import API_VERSIONS, INIT_PRODUCER_ID, METADATA, PRODUCE

BROKER_VERSIONS = {PRODUCE: (0, 9), METADATA: (0, 12), API_VERSIONS: (0, 3), INIT_PRODUCER_ID: (0, 4)}


def frame(correlationId, body=b""):
    """
    A response frame: its length prefix, correlation id and body.
    """
    return struct.pack(">ii", 4 + len(body), correlationId) + body


def apiVersionsV3(versions=BROKER_VERSIONS, errorCode=0):
    """
    The body of an ApiVersions v3 response.
    """
    body = struct.pack(">hB", errorCode, len(versions) + 1)
    for key, (low, high) in sorted(versions.items()):
        body += struct.pack(">hhhB", key, low, high, 0)
    return body + struct.pack(">iB", 0, 0)


def requestHeader(data):
    """
    @return: (apiKey, version, correlationId, the frame's size) of the
        first request frame in C{data}.
    """
    length, apiKey, version, correlationId = struct.unpack(">ihhi", data[:12])
    return apiKey, version, correlationId, length + 4


class ConnectionTests(SynchronousTestCase):
    """
    Tests for L{KafkaConnection}.
    """

    def connect(self, **kwargs):
        """
        A connection over a L{StringTransport}, its ApiVersions request
        answered.
        """
        self.clock = Clock()
        self.transport = StringTransport()
        connection = KafkaConnection(self.clock, **kwargs)
        connection.makeConnection(self.transport)
        apiKey, version, correlationId, size = requestHeader(self.transport.value())
        self.assertEqual((apiKey, version), (API_VERSIONS, 3))
        self.transport.clear()
        connection.dataReceived(frame(correlationId, apiVersionsV3()))
        self.assertIs(self.successResultOf(connection.ready), connection)
        return connection

    def sent(self):
        """
        @return: the headers of the requests written since the last call.
        """
        data = self.transport.value()
        self.transport.clear()
        headers = []
        while data:
            header = requestHeader(data)
            headers.append(header[:3])
            data = data[header[3]:]
        return headers

    def test_writtenAtOnce(self):
        """
        A request (and an unanswered one) is handed to a TCP transport's
        socket at once, not at the reactor's next turn.
        """
        connection = self.connect()
        self.transport.connected, self.transport.disconnecting = True, False
        writes = []
        self.transport.doWrite = lambda: writes.append(self.transport.value())
        connection.request(PRODUCE, 9, b"")
        connection.send(PRODUCE, 9, b"")
        self.assertEqual(len(writes), 2)
        self.assertTrue(writes[0] and writes[1].startswith(writes[0]))
        self.assertEqual(writes[1], self.transport.value())
        self.assertEqual([h[0] for h in self.sent()], [PRODUCE, PRODUCE])

    def test_notWrittenWhileDisconnecting(self):
        """
        A transport that is closing is left to the reactor.
        """
        connection = self.connect()
        self.transport.connected, self.transport.disconnecting = True, True
        writes = []
        self.transport.doWrite = lambda: writes.append(None)
        connection.request(PRODUCE, 9, b"")
        self.assertEqual(writes, [])

    def test_apiVersionsFirst(self):
        """
        The connection asks ApiVersions first and chooses each API's
        version from the broker's answer.
        """
        connection = self.connect()
        self.assertEqual(connection.version(PRODUCE), 9)
        self.assertEqual(connection.version(METADATA), 12)
        self.assertEqual(connection.brokerVersions[INIT_PRODUCER_ID], (0, 4))

    def test_apiVersionsFallback(self):
        """
        A broker that does not speak ApiVersions v3 answers
        UNSUPPORTED_VERSION with its range, and the connection asks again
        in the highest version it speaks.
        """
        clock, transport = Clock(), StringTransport()
        connection = KafkaConnection(clock)
        connection.makeConnection(transport)
        _, _, first, _ = requestHeader(transport.value())
        transport.clear()
        refusal = struct.pack(">hihhh", 35, 1, API_VERSIONS, 0, 2)
        connection.dataReceived(frame(first, refusal))
        apiKey, version, second, _ = requestHeader(transport.value())
        self.assertEqual((apiKey, version), (API_VERSIONS, 2))
        answer = struct.pack(">hi", 0, 1) + struct.pack(">hhh", PRODUCE, 3, 8) + struct.pack(">i", 0)
        connection.dataReceived(frame(second, answer))
        self.successResultOf(connection.ready)
        self.assertEqual(connection.version(PRODUCE), 8)

    def test_matchedByCorrelationId(self):
        """
        Responses answered out of order fire the Deferreds of their own
        requests.
        """
        connection = self.connect()
        first = connection.request(METADATA, 12, b"one")
        second = connection.request(METADATA, 12, b"two")
        (_, _, id1), (_, _, id2) = self.sent()
        self.assertNotEqual(id1, id2)
        connection.dataReceived(frame(id2, b"B") + frame(id1, b"A")[:5])
        self.assertEqual(self.successResultOf(second), struct.pack(">i", id2) + b"B")
        self.assertNoResult(first)
        connection.dataReceived(frame(id1, b"A")[5:])
        self.assertEqual(self.successResultOf(first), struct.pack(">i", id1) + b"A")
        self.assertEqual(connection.pendingCount(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timedOutKeepsItsId(self):
        """
        A request that timed out keeps its correlation id until its late
        response arrives, which is dropped: the next request never receives
        it.
        """
        connection = self.connect(requestTimeout=1.0)
        late = connection.request(METADATA, 12, b"slow")
        [(_, _, lateId)] = self.sent()
        self.clock.advance(1.0)
        self.failureResultOf(late, RequestTimeoutError)
        self.assertEqual(connection.pendingCount(), 1)
        # Wrap the ids around so that the next id would be the late one's.
        connection._nextId = lateId
        following = connection.request(METADATA, 12, b"next")
        [(_, _, nextId)] = self.sent()
        self.assertNotEqual(nextId, lateId)
        connection.dataReceived(frame(lateId, b"late answer"))
        self.assertNoResult(following)
        self.assertEqual(connection.pendingCount(), 1)
        connection.dataReceived(frame(nextId, b"right answer"))
        self.assertEqual(self.successResultOf(following), struct.pack(">i", nextId) + b"right answer")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancelledKeepsItsId(self):
        """
        A cancelled request keeps its id until its response arrives, and
        the response is dropped.
        """
        connection = self.connect()
        d = connection.request(METADATA, 12, b"x")
        [(_, _, correlationId)] = self.sent()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(connection.pendingCount(), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        connection.dataReceived(frame(correlationId, b"dropped"))
        self.assertEqual(connection.pendingCount(), 0)
        self.assertTrue(self.transport.connected)

    def test_unknownCorrelationId(self):
        """
        A response answering no request closes the connection with a
        protocol error.
        """
        connection = self.connect()
        d = connection.request(METADATA, 12, b"x")
        connection.dataReceived(frame(12345))
        self.failureResultOf(d, KafkaProtocolError)
        self.assertTrue(self.transport.disconnecting)

    def test_frameTooLarge(self):
        """
        A length prefix above maxFrameSize fails the pending requests with
        L{FrameTooLargeError} before any of the frame is buffered.
        """
        connection = self.connect(maxFrameSize=1000)
        d = connection.request(METADATA, 12, b"x")
        connection.dataReceived(struct.pack(">i", 1001))
        self.failureResultOf(d, FrameTooLargeError)
        self.assertTrue(self.transport.disconnecting)
        self.failureResultOf(connection.request(METADATA, 12, b"x"), ClientClosedError)

    def test_boundedPending(self):
        """
        Past maxPending outstanding requests (timed-out ones included) a
        request fails at once with L{TooManyPendingRequestsError} and is not
        sent.
        """
        connection = self.connect(maxPending=2, requestTimeout=1.0)
        connection.request(METADATA, 12, b"a").addErrback(lambda f: None)
        connection.request(METADATA, 12, b"b").addErrback(lambda f: None)
        self.clock.advance(1.0)
        self.sent()
        f = self.failureResultOf(connection.request(METADATA, 12, b"c"), TooManyPendingRequestsError)
        self.assertFalse(f.value.mayHaveReachedServer)
        self.assertEqual(self.sent(), [])

    def test_noResponseExpected(self):
        """
        A request sent without expecting a response (Produce with acks 0)
        is written and reserves no id.
        """
        connection = self.connect()
        connection.send(PRODUCE, 9, b"records")
        self.assertEqual([h[:2] for h in self.sent()], [(PRODUCE, 9)])
        self.assertEqual(connection.pendingCount(), 0)

    def test_connectionLost(self):
        """
        A lost connection fails every pending request with
        L{ConnectionLostError} and cancels their timers.
        """
        connection = self.connect(requestTimeout=5.0)
        d = connection.request(METADATA, 12, b"x")
        connection.connectionLost()
        self.failureResultOf(d, ConnectionLostError)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.failureResultOf(connection.request(METADATA, 12, b"x"), ClientClosedError)

    def test_lostBeforeReady(self):
        """
        A connection lost before ApiVersions is answered fails C{ready}.
        """
        connection = KafkaConnection(Clock())
        connection.makeConnection(StringTransport())
        connection.connectionLost()
        self.failureResultOf(connection.ready, ConnectionLostError)
