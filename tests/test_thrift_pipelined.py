"""
The plain Thrift client's pipelined mode: the sans-IO session's tables of
replies (in order, out of order, unknown seqids), and the client in memory
(L{txscales.testing.MemoryNetwork}, time on a L{task.Clock}) against
txscales' server, which answers in order, and against scripted servers
that do not.
"""

import random

from twisted.internet.defer import CancelledError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from txscales.demo.gen import TestService
from txscales.demo.gen.ttypes import InvalidQueryException
from txscales.demo.handler import TestServiceHandler
from txscales.errors import (
    BadMessageError,
    ClientClosedError,
    ConnectError,
    ConnectionLostError,
    FrameTooLargeError,
    PoolExhaustedError,
    RequestTimeoutError,
    UnexpectedMessageError,
)
from txscales.testing import MemoryNetwork
from txscales.thrift import BINARY, BUFFERED, COMPACT, FRAMED, Thrift
from txscales.thrift._codec import describeService, encodeResult, readMessageBegin
from txscales.thrift._framing import FramedDecoder, encodeFrame
from txscales.thrift._pipeline import PipelinedThriftEndpoint
from txscales.thrift._protocol import ThriftClientProtocol
from txscales.thrift._server import serverFactory
from txscales.thrift._session import ClientSession

from tests.test_thrift_plain import assertOwnAnswers

METHODS = describeService(TestService.Iface)
QUERY = METHODS["query"]
DEST = "tcp://127.0.0.1:9090"


def reply(value, seqid, protocol=BINARY, method=QUERY):
    return encodeResult(method, seqid, protocol, value)


def oneByOne(data):
    return [data[i : i + 1] for i in range(len(data))]


# Three calls of query, seqids 1, 2, 3, wait; each row: the bytes the server
# sends, the values of the replies accepted before any error, and the error.
# Replies written out by hand: version|REPLY, "query", seqid, field 0
# (string), stop.
REPLY_1 = bytes.fromhex("80010002" "00000005" "7175657279" "00000001" "0b0000" "00000001" "61" "00")
REPLY_2 = bytes.fromhex("80010002" "00000005" "7175657279" "00000002" "0b0000" "00000001" "62" "00")
REPLY_3 = bytes.fromhex("80010002" "00000005" "7175657279" "00000003" "0b0000" "00000001" "63" "00")
REPLY_7 = bytes.fromhex("80010002" "00000005" "7175657279" "00000007" "0b0000" "00000001" "7a" "00")
PIPELINE_TABLE = [
    ("in order", [REPLY_1, REPLY_2, REPLY_3], ["a", "b", "c"], None),
    ("two of three", [REPLY_1, REPLY_2], ["a", "b"], None),
    ("out of order", [REPLY_2, REPLY_1], [], UnexpectedMessageError),
    ("in order, then out of order", [REPLY_1, REPLY_3, REPLY_2], ["a"], UnexpectedMessageError),
    ("unknown seqid", [REPLY_1, REPLY_7], ["a"], UnexpectedMessageError),
    ("one too many", [REPLY_1, REPLY_2, REPLY_3, REPLY_3], ["a", "b", "c"], UnexpectedMessageError),
    ("compact reply to a binary call", [REPLY_1, reply("b", 2, COMPACT)], ["a"], BadMessageError),
]


class PipelinedSessionTests(SynchronousTestCase):
    """
    A client session with several calls waiting accepts their replies in
    call order only.
    """

    def session(self, transport=BUFFERED, calls=3):
        session = ClientSession(transport, BINARY, maxOutstanding=3)
        for _ in range(calls):
            session.call(QUERY, b"\x00")
        return session

    def test_table(self):
        """
        Each row fed whole, one byte at a time, and followed by the start of
        another reply gives its replies, then its error (closing the
        session) or none.
        """
        for transport in (BUFFERED, FRAMED):
            frame = encodeFrame if transport == FRAMED else bytes
            for name, messages, values, error in PIPELINE_TABLE:
                label = (transport, name)
                data = b"".join(frame(m) for m in messages)
                for chunks in ([data], oneByOne(data), [data + frame(REPLY_3)[:5]]):
                    session = self.session(transport)
                    got = []
                    failed = None
                    for chunk in chunks:
                        replies, failed = session.receive(chunk)
                        got.extend(r.result() for r in replies)
                        if failed is not None:
                            break
                    self.assertEqual(got, values, label)
                    self.assertEqual(type(failed) if failed else None, error, label)
                    self.assertEqual(session.state, "closed" if error else "open", label)
                    self.assertEqual(session.outstanding, 0 if error else 3 - len(values), label)

    def test_receiveDataRaises(self):
        """
        C{receiveData} raises the error that closed the session.
        """
        self.assertRaises(UnexpectedMessageError, self.session().receiveData, REPLY_2)

    def test_bound(self):
        """
        A call beyond C{maxOutstanding} is refused; a reply makes room.
        """
        session = self.session()
        self.assertRaises(RuntimeError, session.call, QUERY, b"\x00")
        session.receiveData(REPLY_1)
        self.assertEqual(session.call(QUERY, b"\x00"), QUERY.callHeader(4) + b"\x00")
        self.assertRaises(ValueError, ClientSession, BUFFERED, BINARY, maxOutstanding=0)

    def test_compactPipeline(self):
        """
        Compact replies are matched by seqid too.
        """
        session = ClientSession(BUFFERED, COMPACT, maxOutstanding=2)
        session.call(QUERY, b"\x00")
        session.call(QUERY, b"\x00")
        self.assertEqual([r.result() for r in session.receiveData(reply("a", 1, COMPACT) + reply("b", 2, COMPACT))], ["a", "b"])
        session.call(QUERY, b"\x00")
        self.assertRaises(UnexpectedMessageError, session.receiveData, reply("c", 4, COMPACT))


class CountingTransport(StringTransport):
    """
    A C{StringTransport} that counts writes.
    """

    writes = 0

    def write(self, data):
        self.writes += 1
        StringTransport.write(self, data)


class ProtocolTests(SynchronousTestCase):
    """
    The pipelined connection itself, on a C{StringTransport}.
    """

    def test_callsFromRepliesWrittenOnce(self):
        """
        The calls that replies' callbacks make go out in one write, after
        the last reply is handled.
        """
        protocol = ThriftClientProtocol(FRAMED, BINARY, maxOutstanding=4)
        transport = CountingTransport()
        protocol.makeConnection(transport)
        args = b"\x0b\x00\x01\x00\x00\x00\x01x\x00"
        calls = [protocol.call(QUERY, args) for _ in range(3)]
        self.assertEqual(transport.writes, 3)
        transport.clear()
        again = []
        for d in calls:
            d.addCallback(lambda _: again.append(protocol.call(QUERY, args)))
        protocol.dataReceived(answer("a", 1) + answer("b", 2) + answer("c", 3))
        self.assertEqual((transport.writes, len(again)), (4, 3))
        self.assertEqual(transport.value(), b"".join(encodeFrame(QUERY.callHeader(seqid) + args) for seqid in (4, 5, 6)))
        self.assertEqual(protocol.outstanding, 3)

    def test_noWriteAfterProtocolError(self):
        """
        Calls made by the callbacks of replies that came before a bad reply
        fail at once, unsent; the calls waiting fail with the error.
        """
        protocol = ThriftClientProtocol(FRAMED, BINARY, maxOutstanding=4)
        transport = CountingTransport()
        protocol.makeConnection(transport)
        first, second = protocol.call(QUERY, b"\x00"), protocol.call(QUERY, b"\x00")
        again = []
        first.addCallback(lambda _: again.append(protocol.call(QUERY, b"\x00")))
        transport.clear()
        protocol.dataReceived(answer("a", 1) + answer("z", 9))
        self.assertEqual(self.successResultOf(first), None)
        self.failureResultOf(second, UnexpectedMessageError)
        self.assertFalse(self.failureResultOf(again[0], ConnectionLostError).value.mayHaveReachedServer)
        self.assertEqual((transport.value(), transport.disconnecting), (b"", True))


class ScriptedServer(Protocol):
    """
    A framed Thrift server: each call received goes to C{factory.script},
    which returns the bytes to write now (or C{"close"}).
    """

    def connectionMade(self):
        self.decoder = FramedDecoder()
        self.factory.servers.append(self)

    def dataReceived(self, data):
        for message in self.decoder.feed(data):
            _, name, _, seqid, _ = readMessageBegin(message)
            self.factory.received.append((len(self.factory.servers), name, seqid))
            answer = self.factory.script(self, name, seqid)
            if answer == "close":
                self.transport.loseConnection()
            elif answer:
                self.transport.write(answer)


def answer(value, seqid):
    return encodeFrame(reply(value, seqid))


class PipelinedTestCase(SynchronousTestCase):
    """
    A memory network with txscales' plain Thrift server on 127.0.0.1:9090,
    and pipelined clients.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.clock = self.network.clock
        self.handler = TestServiceHandler(self.clock)
        self.server = serverFactory(TestService.Iface, self.handler, self.clock, FRAMED)
        self.network.listen(self.server, 9090)

    def client(self, dest=DEST, **options):
        options.setdefault("stats", False)
        options.setdefault("endpointFactory", self.network.endpoint)
        options.setdefault("failureAccrual", False)
        client = Thrift.newClient(TestService.Iface, dest, reactor=self.clock, pipelined=True, **options)
        self.addCleanup(self.closeClient, client)
        return client

    def closeClient(self, client):
        self.clock.advance(1)
        self.successResultOf(client.close())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def endpoint(self, client):
        return client.stack.nodes[0].endpoint

    def script(self, script):
        factory = Factory.forProtocol(ScriptedServer)
        factory.received = []
        factory.servers = []
        factory.script = script
        self.network.listen(factory, 9092)
        return factory


class PipelinedClientTests(PipelinedTestCase):
    """
    Many calls on one connection, answered in order.
    """

    def test_oneConnection(self):
        """
        Calls go out at once on one connection, each getting its own
        answer, with declared exceptions and one-way calls among them.
        """
        client = self.client()
        calls = [client.delayedQuery("q%d" % i, 10) for i in range(50)]
        error = client.raiseError(3)
        logged = client.log("hello")
        self.assertEqual(self.handler.messages, ["hello"])
        self.assertIsNone(self.successResultOf(logged))
        self.assertNoResult(calls[0])
        self.clock.advance(0.01)
        self.assertEqual([self.successResultOf(d) for d in calls], ["q%dq%d" % (i, i) for i in range(50)])
        self.assertEqual(self.failureResultOf(error, InvalidQueryException).value.errorCode, 3)
        self.assertEqual((self.network.connections, self.endpoint(client).connects), (1, 1))
        self.assertIsInstance(self.endpoint(client), PipelinedThriftEndpoint)

    def test_bounds(self):
        """
        Beyond C{maxOutstanding}, calls wait and go out as replies come;
        beyond C{maxWaiters} more, they fail at once, unsent.
        """
        client = self.client(maxOutstanding=2, maxWaiters=1)
        endpoint = self.endpoint(client)
        first, second, third = [client.delayedQuery(x, 10) for x in "abc"]
        self.assertEqual((endpoint.connection.outstanding, endpoint.waiting, endpoint.status), (2, 1, "busy"))
        error = self.failureResultOf(client.query("d"), PoolExhaustedError).value
        self.assertFalse(error.mayHaveReachedServer)
        self.clock.advance(0.01)
        self.assertEqual([self.successResultOf(d) for d in (first, second)], ["aa", "bb"])
        self.assertEqual((endpoint.connection.outstanding, endpoint.waiting, endpoint.status), (1, 0, "open"))
        self.clock.advance(0.01)
        self.assertEqual(self.successResultOf(third), "cc")

    def test_timeoutInTheMiddle(self):
        """
        A call timing out between two others fails at once, and keeps its
        place: its late answer is dropped, the calls around it get their
        own, and the connection stays.
        """
        client = self.client()
        first = client.delayedQuery("a", 30)
        middle = client.withOptions(timeout=0.01).delayedQuery("b", 20)
        last = client.delayedQuery("c", 10)
        self.clock.advance(0.01)
        self.assertTrue(self.failureResultOf(middle, RequestTimeoutError).value.mayHaveReachedServer)
        self.assertEqual(self.endpoint(client).connection.outstanding, 3)
        self.clock.advance(0.02)
        self.assertEqual((self.successResultOf(first), self.successResultOf(last)), ("aa", "cc"))
        self.assertEqual(self.successResultOf(client.query("d")), "dd")
        self.assertEqual(self.network.connections, 1)

    def test_cancel(self):
        """
        A cancelled call fails at once with CancelledError and keeps its
        place; the next calls get their own answers on the same connection.
        """
        client = self.client()
        d = client.delayedQuery("x", 10)
        after = client.delayedQuery("y", 10)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.clock.advance(0.01)
        self.assertEqual(self.successResultOf(after), "yy")
        self.assertEqual(self.successResultOf(client.query("z")), "zz")
        self.assertEqual((self.network.connections, self.endpoint(client).connection.outstanding), (1, 0))

    def test_waiterCancelled(self):
        """
        A call cancelled while waiting for room was never sent, and leaves
        the queue.
        """
        client = self.client(maxOutstanding=1)
        first = client.delayedQuery("a", 10)
        second = client.query("b")
        second.cancel()
        self.assertFalse(self.failureResultOf(second, CancelledError).value.written)
        self.assertEqual(self.endpoint(client).waiting, 0)
        self.clock.advance(0.01)
        self.assertEqual(self.successResultOf(first), "aa")
        self.assertEqual([m for m in self.handler.messages], [])

    def test_waiterTimesOut(self):
        """
        A call that times out while waiting for room was never sent: its
        RequestTimeoutError says so.
        """
        client = self.client(maxOutstanding=1)
        first = client.delayedQuery("a", 20)
        second = client.withOptions(timeout=0.01).query("b")
        self.clock.advance(0.01)
        self.assertFalse(self.failureResultOf(second, RequestTimeoutError).value.mayHaveReachedServer)
        self.clock.advance(0.01)
        self.assertEqual(self.successResultOf(first), "aa")
        self.assertEqual(self.endpoint(client).connection.outstanding, 0)

    def test_everyPlaceAbandoned(self):
        """
        A connection whose every place is held by an abandoned call (a
        server that stopped answering) is closed, and the next call goes
        out on a new one.
        """
        factory = self.script(lambda server, name, seqid: None if len(factory.servers) == 1 else answer("ok", seqid))
        client = self.client("tcp://127.0.0.1:9092", maxOutstanding=2, timeout=0.01)
        calls = [client.query("a"), client.query("b")]
        self.clock.advance(0.01)
        for d in calls:
            self.failureResultOf(d, RequestTimeoutError)
        self.assertEqual(self.successResultOf(client.query("c")), "ok")
        self.assertEqual(self.network.connections, 2)

    def test_noCallReceivesAnotherCallsAnswer(self):
        """
        Under 20 ms timeouts against a server answering after 0 to 40 ms
        (in call order), every answer a call receives is its own, and both
        outcomes occur.
        """
        client = self.client(timeout=0.02)
        assertOwnAnswers(self, client, self.clock, random.Random(7))
        self.assertEqual(self.network.connections, 1)

    def test_close(self):
        """
        Closing fails the calls waiting for room, unsent, lets the calls
        sent get their answers, then closes the connection; later calls
        fail unsent.
        """
        client = Thrift.newClient(
            TestService.Iface, DEST, reactor=self.clock, endpointFactory=self.network.endpoint, stats=False,
            pipelined=True, maxOutstanding=1,
        )
        sent = client.delayedQuery("a", 10)
        waiting = client.query("b")
        closed = client.close()
        self.assertFalse(self.failureResultOf(waiting, ClientClosedError).value.mayHaveReachedServer)
        self.assertNoResult(closed)
        self.clock.advance(0.01)
        self.assertEqual(self.successResultOf(sent), "aa")
        self.successResultOf(closed)
        self.assertEqual(self.server.protocols, set())
        self.assertFalse(self.failureResultOf(client.query("c"), ClientClosedError).value.mayHaveReachedServer)

    def test_connectRefused(self):
        """
        A server that refuses connections fails the calls waiting with
        ConnectError, unsent.
        """
        client = self.client("tcp://127.0.0.1:9099", failFast=False)
        self.assertFalse(self.failureResultOf(client.query("a"), ConnectError).value.mayHaveReachedServer)
        self.assertEqual(self.failureResultOf(self.endpoint(client).getProtocol(), ConnectError).type, ConnectError)

    def test_options(self):
        """
        The builder's C{pipelined()} sets the mode and its bound;
        C{maxOutstanding} without it, or below 1, is refused.
        """
        client = (
            Thrift.newBuilder(TestService.Iface).dest(DEST).pipelined(maxOutstanding=5).reactor(self.clock).stats(False).build()
        )
        endpoint = self.endpoint(client)
        endpoint._endpointFactory = self.network.endpoint
        self.assertEqual(self.successResultOf(client.query("b")), "bb")
        self.assertEqual(endpoint.connection._maxOutstanding, 5)
        self.successResultOf(client.close())
        self.assertRaises(ValueError, Thrift.newClient, TestService.Iface, DEST, maxOutstanding=5)
        self.assertRaises(ValueError, Thrift.newClient, TestService.Iface, DEST, pipelined=True, maxOutstanding=0)


class Answers:
    """
    A script: answers each call in order, but makes the first connection
    hold the answer to seqid 1 and send C{first(seqid)} for seqid 2 instead.
    """

    def __init__(self, first):
        self.first = first

    def __call__(self, server, name, seqid):
        if len(server.factory.servers) == 1 and server is server.factory.servers[0]:
            if seqid == 1:
                return None
            return self.first(seqid)
        return answer("ok", seqid)


class BrokenPipelineTests(PipelinedTestCase):
    """
    A reply out of order, with an unknown seqid, malformed, or a lost
    connection fails every call of the connection, each as possibly
    received; calls not yet sent go out on a new connection.
    """

    def check(self, first, error):
        factory = self.script(Answers(first))
        client = self.client("tcp://127.0.0.1:9092", maxOutstanding=2, maxMessageSize=1024)
        sent = [client.query("a"), client.query("b")]
        unsent = client.query("c")
        for d in sent:
            self.assertTrue(self.failureResultOf(d, error).value.mayHaveReachedServer)
        self.assertEqual(self.successResultOf(unsent), "ok")
        self.assertEqual(factory.received, [(1, "query", 1), (1, "query", 2), (2, "query", 1)])
        self.assertEqual(self.network.connections, 2)

    def test_outOfOrder(self):
        """
        The second call's answer before the first's is an
        UnexpectedMessageError.
        """
        self.check(lambda seqid: answer("b", seqid), UnexpectedMessageError)

    def test_unknownSeqid(self):
        """
        A seqid no call waits for is an UnexpectedMessageError.
        """
        self.check(lambda seqid: answer("b", 99), UnexpectedMessageError)

    def test_oversized(self):
        """
        A reply frame above the maximum is a FrameTooLargeError.
        """
        self.check(lambda seqid: b"\x00\x10\x00\x00", FrameTooLargeError)

    def test_connectionLost(self):
        """
        A connection lost with calls outstanding fails them with
        ConnectionLostError.
        """
        self.check(lambda seqid: "close", ConnectionLostError)
