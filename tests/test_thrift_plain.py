"""
Plain Thrift client and server, in memory: L{txscales.testing.MemoryNetwork}
or C{StringTransport}, with time on a L{task.Clock}.
"""

import random

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from txscales.demo.gen import TestService
from txscales.demo.gen.ttypes import InvalidQueryException
from txscales.demo.handler import TestServiceHandler
from txscales.pool import WatermarkPool
from txscales.errors import (
    ApplicationError,
    BadMessageError,
    ClientClosedError,
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
from txscales.thrift._server import serverFactory

COMBINATIONS = [(t, p) for t in (FRAMED, BUFFERED) for p in (BINARY, COMPACT)]
METHODS = describeService(TestService.Iface)
DEST = "tcp://127.0.0.1:9090"



def assertOwnAnswers(case, client, clock, rng):
    """
    Make 500 calls of C{client}'s C{delayedQuery} (0 to 40 ms) a few ms
    apart under its timeout, and check that each answer a call receives is
    its own, and that both answers and timeouts occur.
    """
    outcomes = {"ok": 0, "timeout": 0, "wrong": 0, "other": 0}

    def check(result, x):
        outcomes["ok" if result == x + x else "wrong"] += 1

    def failed(failure):
        outcomes["timeout" if failure.check(RequestTimeoutError) else "other"] += 1

    for i in range(500):
        x = "c%d" % i
        client.delayedQuery(x, rng.randint(0, 40)).addCallback(check, x).addErrback(failed)
        clock.advance(rng.choice([0, 0.001, 0.005]))
    clock.pump([0.001] * 100)
    case.assertEqual(outcomes["wrong"] + outcomes["other"], 0, outcomes)
    case.assertEqual(sum(outcomes.values()), 500)
    case.assertGreater(outcomes["ok"], 0)
    case.assertGreater(outcomes["timeout"], 0)

class PartialHandler:
    """
    Serves C{query} and C{log} only: other methods are unknown to it.
    """

    def query(self, x):
        return x + x

    def log(self, message):
        pass


class MemoryTestCase(SynchronousTestCase):
    """
    A memory network with a plain Thrift server on 127.0.0.1:9090.
    """

    transport = FRAMED

    def setUp(self):
        self.network = MemoryNetwork()
        self.clock = self.network.clock
        self.handler = TestServiceHandler(self.clock)
        self.server = serverFactory(TestService.Iface, self.handler, self.clock, self.transport)
        self.network.listen(self.server, 9090)

    def client(self, dest=DEST, **options):
        options.setdefault("transport", self.transport)
        options.setdefault("stats", False)
        options.setdefault("endpointFactory", self.network.endpoint)
        client = Thrift.newClient(TestService.Iface, dest, reactor=self.clock, **options)
        self.addCleanup(self.closeClient, client)
        return client

    def closeClient(self, client):
        self.successResultOf(client.close())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def endpoint(self, client):
        return client.stack.nodes[0].endpoint


class ClientTests(MemoryTestCase):
    """
    Calls, outcomes and connections of the plain Thrift client.
    """

    def test_everyCombination(self):
        """
        Both transports and both protocols carry calls, delayed answers and
        declared exceptions, which arrive as themselves.
        """
        for transport, protocol in COMBINATIONS:
            network = MemoryNetwork(self.clock)
            network.listen(serverFactory(TestService.Iface, self.handler, self.clock, transport), 9090)
            client = Thrift.newClient(
                TestService.Iface,
                DEST,
                transport=transport,
                protocol=protocol,
                reactor=self.clock,
                endpointFactory=network.endpoint,
                stats=False,
            )
            self.assertEqual(self.successResultOf(client.query("x")), "xx")
            d = client.delayedQuery("d", 10)
            self.assertNoResult(d)
            self.clock.advance(0.01)
            self.assertEqual(self.successResultOf(d), "dd")
            error = self.failureResultOf(client.raiseError(7), InvalidQueryException).value
            self.assertEqual(error.errorCode, 7)
            self.assertEqual(network.connections, 1, (transport, protocol))
            self.successResultOf(client.close())

    def test_unknownMethod(self):
        """
        A method the server does not serve fails with ApplicationError and
        leaves the connection in use.
        """
        self.network.listen(serverFactory(TestService.Iface, PartialHandler(), self.clock), 9091)
        client = self.client("tcp://127.0.0.1:9091")
        error = self.failureResultOf(client.raiseError(1), ApplicationError).value
        self.assertEqual(error.type, 1)
        self.assertEqual(self.successResultOf(client.query("a")), "aa")
        self.assertEqual(self.network.connections, 1)

    def test_oneway(self):
        """
        A one-way call fires with None once written, and the connection
        carries the next call at once.
        """
        client = self.client()
        self.assertIsNone(self.successResultOf(client.log("hello")))
        self.assertEqual(self.handler.messages, ["hello"])
        self.assertEqual(self.successResultOf(client.query("after")), "afterafter")
        self.assertEqual(self.network.connections, 1)

    def test_timeoutDiscardsConnection(self):
        """
        A timed-out call closes its connection: its answer can never be
        read, the handler's work is cancelled, and the next call gets its
        own answer on a new connection.
        """
        client = self.client(timeout=0.02)
        d = client.delayedQuery("late", 40)
        self.clock.advance(0.02)
        error = self.failureResultOf(d, RequestTimeoutError).value
        self.assertTrue(error.mayHaveReachedServer)
        self.assertEqual(self.endpoint(client).discards, 1)
        self.assertEqual(self.server.protocols, set())
        self.assertEqual(self.successResultOf(client.query("next")), "nextnext")
        self.assertEqual(self.network.connections, 2)
        self.clock.advance(1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timeoutOnIdleConnection(self):
        """
        A call sent on an idle connection that times out closes it too, and
        gives its place in the pool back.
        """
        client = self.client(timeout=0.02, high=1)
        self.assertEqual(self.successResultOf(client.query("a")), "aa")
        d = client.delayedQuery("late", 40)
        self.clock.advance(0.02)
        self.failureResultOf(d, RequestTimeoutError)
        pool = self.endpoint(client).pool
        self.assertEqual((self.endpoint(client).discards, pool.size, pool.idle), (1, 0, 0))
        self.assertEqual(self.successResultOf(client.query("next")), "nextnext")
        self.assertEqual(self.network.connections, 2)

    def test_cancel(self):
        """
        Cancelling a call fails it with CancelledError and closes its
        connection.
        """
        client = self.client()
        d = client.delayedQuery("x", 1000)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.server.protocols, set())

    def test_encodeError(self):
        """
        Arguments that do not fit the method fail the call before anything
        is sent.
        """
        client = self.client()
        self.failureResultOf(client.query("a", "b", "c"), TypeError)
        self.assertEqual(self.network.connections, 0)

    def test_idleConnectionClosedByServer(self):
        """
        A pooled connection the server closed is dropped and the call goes
        out on a new one.
        """
        client = self.client()
        self.assertEqual(self.successResultOf(client.query("a")), "aa")
        for p in list(self.server.protocols):
            p.transport.loseConnection()
        self.assertEqual(self.successResultOf(client.query("b")), "bb")
        self.assertEqual(self.network.connections, 2)

    def test_connectRefusedIsRequeued(self):
        """
        A server that refuses connections is skipped: the call is sent again
        to another server of the destination.
        """
        client = self.client("tcp://127.0.0.1:9099,127.0.0.1:9090", failFast={"start": 60, "maximum": 60})
        results = [self.successResultOf(client.query(str(i))) for i in range(10)]
        self.assertEqual(results, [str(i) * 2 for i in range(10)])
        self.assertEqual(client.stack.dispatcher.requeues, 1)

    def test_builder(self):
        """
        The builder sets the transport, protocol, pool and timeout.
        """
        network = MemoryNetwork(self.clock)
        network.listen(serverFactory(TestService.Iface, self.handler, self.clock, BUFFERED), 9090)
        client = (
            Thrift.newBuilder(TestService.Iface)
            .dest(DEST)
            .transport(BUFFERED)
            .protocol(COMPACT)
            .pool(low=1, high=1, maxWaiters=5)
            .timeout(0.5)
            .reactor(self.clock)
            .stats(False)
            .build()
        )
        client.stack.nodes[0].endpoint._endpointFactory = network.endpoint
        self.assertEqual(self.successResultOf(client.query("b")), "bb")
        self.assertEqual(client.stack.nodes[0].endpoint.pool._maxWaiters, 5)
        self.successResultOf(client.close())

    def test_badOptions(self):
        """
        Unknown transports, protocols and options are refused when the
        client is made.
        """
        self.assertRaises(ValueError, Thrift.newClient, TestService.Iface, DEST, transport="http")
        self.assertRaises(ValueError, Thrift.newClient, TestService.Iface, DEST, protocol="json")
        self.assertRaises(TypeError, Thrift.newClient, TestService.Iface, DEST, clientId="x")
        self.assertRaises(ValueError, Thrift.newServer, TestService.Iface, self.handler, "tcp:0", transport="x")

    def test_close(self):
        """
        Closing closes the connections; later calls fail without being sent.
        """
        client = Thrift.newClient(
            TestService.Iface, DEST, reactor=self.clock, endpointFactory=self.network.endpoint, stats=False
        )
        self.successResultOf(client.query("a"))
        self.successResultOf(client.close())
        self.assertEqual(self.server.protocols, set())
        self.assertFalse(self.failureResultOf(client.query("b"), ClientClosedError).value.mayHaveReachedServer)


class PoolTests(MemoryTestCase):
    """
    One call at a time per connection, within the pool's watermarks.
    """

    def test_callsWaitAtHigh(self):
        """
        Beyond C{high} connections, calls wait for one and are answered in
        turn on it.
        """
        client = self.client(high=1)
        first = client.delayedQuery("a", 10)
        second = client.delayedQuery("b", 10)
        self.assertEqual(self.endpoint(client).pool.waiting, 1)
        self.assertEqual(self.endpoint(client).status, "busy")
        self.clock.advance(0.01)
        self.assertEqual(self.successResultOf(first), "aa")
        self.clock.advance(0.01)
        self.assertEqual(self.successResultOf(second), "bb")
        self.assertEqual(self.network.connections, 1)

    def test_exhausted(self):
        """
        Beyond C{maxWaiters}, calls fail at once, without reaching a server.
        """
        client = self.client(high=1, maxWaiters=0)
        first = client.delayedQuery("a", 10)
        error = self.failureResultOf(client.query("b"), PoolExhaustedError).value
        self.assertFalse(error.mayHaveReachedServer)
        self.clock.advance(0.01)
        self.assertEqual(self.successResultOf(first), "aa")

    def test_waiterTimesOut(self):
        """
        A call that times out while waiting for a connection was never
        sent, and leaves the connection to the call using it.
        """
        client = self.client(high=1)
        first = client.withOptions(timeout=None).delayedQuery("a", 50)
        second = client.withOptions(timeout=0.01).query("b")
        self.clock.advance(0.01)
        self.assertFalse(self.failureResultOf(second, RequestTimeoutError).value.mayHaveReachedServer)
        self.clock.advance(0.04)
        self.assertEqual(self.successResultOf(first), "aa")
        self.assertEqual(self.successResultOf(client.query("c")), "cc")
        self.assertEqual((self.network.connections, self.endpoint(client).pool.waiting), (1, 0))

    def test_timeoutReplacesConnectionForWaiter(self):
        """
        When a call times out, its connection is closed and a waiting call
        gets a new one.
        """
        client = self.client(high=1)
        first = client.withOptions(timeout=0.01).delayedQuery("a", 50)
        second = client.query("b")
        self.clock.advance(0.01)
        self.failureResultOf(first, RequestTimeoutError)
        self.assertEqual(self.successResultOf(second), "bb")
        self.assertEqual(self.network.connections, 2)

    def test_noCallReceivesAnotherCallsAnswer(self):
        """
        Under 20 ms timeouts against a server answering after 0 to 40 ms,
        every answer a call receives is its own, and both outcomes occur.
        """
        client = self.client(timeout=0.02, high=8)
        assertOwnAnswers(self, client, self.clock, random.Random(5))


class SlowEndpoint:
    """
    A client endpoint of a L{MemoryNetwork} whose connections take
    C{delay} seconds; cancelling an attempt fails it as
    C{HostnameEndpoint} does, with C{ConnectingCancelledError}.
    """

    def __init__(self, network, host, port, delay):
        self._network = network
        self._address = (host, port)
        self._delay = delay

    def connect(self, factory):
        def cancel(d):
            timer.cancel()
            d.errback(ConnectingCancelledError(self._address))

        d = Deferred(cancel)
        timer = self._network.clock.callLater(
            self._delay, lambda: self._network._connect(factory, *self._address).chainDeferred(d)
        )
        return d


class SlowConnectTests(MemoryTestCase):
    """
    Calls that give up while their connection is being made.
    """

    def slowClient(self, **options):
        def endpointFactory(reactor, host, port, timeout):
            return SlowEndpoint(self.network, host, port, 0.005)

        return self.client(endpointFactory=endpointFactory, **options)

    def test_timeoutWhileConnecting(self):
        """
        A call that times out while connecting was never sent, and does not
        mark the server down.
        """
        client = self.slowClient(timeout=0.002)
        d = client.query("a")
        self.clock.advance(0.002)
        self.assertFalse(self.failureResultOf(d, RequestTimeoutError).value.mayHaveReachedServer)
        self.assertFalse(client.stack.nodes[0].failFast.down)
        d = client.withOptions(timeout=1).query("b")
        self.clock.advance(0.005)
        self.assertEqual(self.successResultOf(d), "bb")

    def test_waiterTimesOutWhileConnecting(self):
        """
        A waiting call whose new connection is still being made when it
        times out fails alone; the connection, once made, serves the next
        call.
        """
        if not hasattr(WatermarkPool, "_cancelWaiter"):
            raise SkipTest("needs the WatermarkPool cancellation fix (watermark-pool-cancel.diff)")
        client = self.slowClient(high=1)
        first = client.withOptions(timeout=0.01).delayedQuery("a", 50)
        second = client.withOptions(timeout=0.012).query("b")
        self.clock.advance(0.005)
        self.clock.advance(0.005)
        self.failureResultOf(first, RequestTimeoutError)
        self.clock.advance(0.002)
        self.assertFalse(self.failureResultOf(second, RequestTimeoutError).value.mayHaveReachedServer)
        self.clock.advance(0.003)
        self.assertEqual(self.successResultOf(client.query("c")), "cc")
        self.assertEqual(self.network.connections, 2)


class ScriptedServer(Protocol):
    """
    A framed Thrift server whose answer to each call is what
    C{factory.answer(name, seqid)} returns (bytes to write, C{"close"}, or
    None for no answer).
    """

    def connectionMade(self):
        self.decoder = FramedDecoder()

    def dataReceived(self, data):
        for message in self.decoder.feed(data):
            _, name, _, seqid, _ = readMessageBegin(message)
            self.factory.received.append((name, seqid))
            answer = self.factory.answer(name, seqid)
            if answer == "close":
                self.transport.loseConnection()
            elif answer is not None:
                self.transport.write(answer)


class BrokenServerTests(MemoryTestCase):
    """
    Replies that do not answer the call fail it with a typed error and
    discard the connection.
    """

    def script(self, answer):
        factory = Factory.forProtocol(ScriptedServer)
        factory.received = []
        factory.answer = answer
        self.network.listen(factory, 9092)
        return factory, self.client("tcp://127.0.0.1:9092", failureAccrual=False)

    def assertDiscarded(self, d, error, client):
        self.assertTrue(self.failureResultOf(d, error).value.mayHaveReachedServer)
        self.assertEqual(self.endpoint(client).discards, 1)
        self.assertEqual(self.endpoint(client).pool.size, 0)

    def test_seqidsCountPerConnection(self):
        """
        Each connection numbers its calls from 1, and replies echoing them
        are accepted.
        """
        factory, client = self.script(lambda name, seqid: encodeFrame(encodeResult(METHODS[name], seqid, BINARY, "ok")))
        for _ in range(3):
            self.assertEqual(self.successResultOf(client.query("x")), "ok")
        self.assertEqual(factory.received, [("query", 1), ("query", 2), ("query", 3)])

    def test_seqidMismatch(self):
        """
        A reply with another seqid fails the call with
        UnexpectedMessageError.
        """
        _, client = self.script(lambda name, seqid: encodeFrame(encodeResult(METHODS[name], seqid + 1, BINARY, "ok")))
        self.assertDiscarded(client.query("x"), UnexpectedMessageError, client)

    def test_nameMismatch(self):
        """
        A reply for another method fails the call with
        UnexpectedMessageError.
        """
        _, client = self.script(lambda name, seqid: encodeFrame(encodeResult(METHODS["delayedQuery"], seqid, BINARY, "ok")))
        self.assertDiscarded(client.query("x"), UnexpectedMessageError, client)

    def test_malformedReply(self):
        """
        An undecodable reply fails the call with BadMessageError.
        """
        _, client = self.script(lambda name, seqid: encodeFrame(b"\x80\x01\x00\x02garbage"))
        self.assertDiscarded(client.query("x"), BadMessageError, client)

    def test_oversizedReply(self):
        """
        A reply frame above the maximum fails the call with
        FrameTooLargeError from its length prefix.
        """
        factory, client = self.script(lambda name, seqid: b"\x00\x10\x00\x00")
        client = self.client("tcp://127.0.0.1:9092", maxMessageSize=1024)
        self.assertDiscarded(client.query("x"), FrameTooLargeError, client)

    def test_connectionLost(self):
        """
        A connection closed during a call fails it with ConnectionLostError,
        which may have reached the server.
        """
        _, client = self.script(lambda name, seqid: "close")
        self.assertDiscarded(client.query("x"), ConnectionLostError, client)

    def test_replyAfterOneway(self):
        """
        A reply to a one-way call is unexpected: the connection it arrives
        on is closed, and the next call gets its own answer on a new one.
        """
        factory, client = self.script(lambda name, seqid: encodeFrame(encodeResult(METHODS["query"], seqid, BINARY, name)))
        self.successResultOf(client.log("m"))
        self.assertEqual(self.successResultOf(client.query("y")), "query")
        self.assertEqual(self.network.connections, 2)


class FailFastTests(MemoryTestCase):
    """
    Fail-fast probes a server marked down with the endpoint's connections.
    """

    def test_probeReconnects(self):
        """
        A server that refused connections is probed in the background and
        takes calls again once it accepts them.
        """
        self.network.stopListening(9090)
        client = self.client(failFast={"start": 1.0, "maximum": 1.0}, random=random.Random(0))
        self.failureResultOf(client.query("a"))
        node = client.stack.nodes[0]
        self.assertTrue(node.failFast.down)
        self.network.listen(self.server, 9090)
        self.clock.advance(1.0)
        self.assertFalse(node.failFast.down)
        self.assertEqual(self.successResultOf(client.query("b")), "bb")
        self.assertEqual(self.network.connections, 1)
