"""
Tests for the Redis client's own logic, over C{StringTransport} and
C{task.Clock}: options, the handshake, reconnection with backoff, routing
and metrics.
"""

from random import Random

from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txscales.errors import BadDestinationError, BadOptionError, ClientClosedError, ConnectionLostError, RequestTimeoutError
from txscales.redis import (
    KeylessCommandError,
    Redis,
    RedisHandshakeError,
    ServerDownError,
    TooManyPendingCommandsError,
    WrongPassError,
)
from txscales.redis._client import RedisClient
from txscales.redis._node import HEALTHY_AFTER, RedisNode, handshakeCommands
from txscales.redis._resp import encodeCommand, encodeCommands
from txscales.redis._routing import commandKeys
from txscales.redis._stats import MAX_COMMANDS, RedisStats


class OptionsTests(SynchronousTestCase):
    """
    Tests for the options of L{Redis.newClient} and L{Redis.newBuilder}.
    """

    def test_badOptions(self):
        """
        A bad value is a BadOptionError naming the option, before anything
        is made.
        """
        for name, value in [("protocol", 1), ("timeout", 0), ("connectTimeout", -1), ("maxPending", 0),
                            ("db", -1), ("clientName", "a b"), ("decodeResponses", 1), ("failFast", {"start": 2, "maximum": 1})]:
            error = self.assertRaises(BadOptionError, Redis.newClient, "tcp://127.0.0.1:1", reactor=Clock(),
                                      **{name: value})
            self.assertIn(name, str(error))
        self.assertRaises(BadOptionError, Redis.newClient, "tcp://127.0.0.1:1", username="u", reactor=Clock())
        self.assertRaises(BadDestinationError, Redis.newClient, "tcp://nowhere", reactor=Clock())

    def test_builder(self):
        """
        The builder's setters check their values and build a client of
        its destination.
        """
        self.assertRaises(BadOptionError, Redis.newBuilder().protocol, 4)
        self.assertRaises(BadDestinationError, Redis.newBuilder().build)
        client = (Redis.newBuilder().dest("tcp://127.0.0.1:1,127.0.0.1:2").protocol(3).timeout(1.0)
                  .stats(True, CollectorRegistry()).reactor(Clock()).random(Random(1)).build())
        self.assertEqual([n.address for n in client.nodes], [("127.0.0.1", 1), ("127.0.0.1", 2)])
        self.successResultOf(client.close())

    def test_keylessOnShards(self):
        """
        A sharded client refuses a keyless command, nothing sent; a client
        of one server takes it.
        """
        sharded = Redis.newClient("tcp://127.0.0.1:1,127.0.0.1:2", reactor=Clock(), stats=False)
        self.failureResultOf(sharded.execute("PING"), KeylessCommandError)
        self.failureResultOf(sharded.execute("EVAL", "return 1", 0), KeylessCommandError)
        self.assertEqual(sharded.nodes[0].connection, None)
        self.successResultOf(sharded.close())
        self.failureResultOf(sharded.get("k"), ClientClosedError)

    def test_commandKeys(self):
        """
        commandKeys finds the keys of single-key, multi-key, pair and
        script commands, and none for keyless ones.
        """
        self.assertEqual(commandKeys(["GET", "k"]), ["k"])
        self.assertEqual(commandKeys([b"del", "a", "b"]), ["a", "b"])
        self.assertEqual(commandKeys(["MSET", "a", 1, "b", 2]), ["a", "b"])
        self.assertEqual(commandKeys(["LMOVE", "a", "b", "LEFT", "RIGHT"]), ["a", "b"])
        self.assertEqual(commandKeys(["EVALSHA", "x", 2, "a", "b", "arg"]), ["a", "b"])
        self.assertIsNone(commandKeys(["PING"]))
        self.assertIsNone(commandKeys(["FLUSHDB", "ASYNC"]))


class HandshakeTests(SynchronousTestCase):
    """
    Tests for L{handshakeCommands}.
    """

    def test_resp2(self):
        """
        RESP2: AUTH (with the user when given), CLIENT SETNAME, SELECT.
        """
        self.assertEqual(handshakeCommands(2, None, None, 0, None), [])
        self.assertEqual(handshakeCommands(2, None, "pw", 3, "app"),
                         [["AUTH", "pw"], ["CLIENT", "SETNAME", "app"], ["SELECT", 3]])
        self.assertEqual(handshakeCommands(2, "u", "pw", 0, None), [["AUTH", "u", "pw"]])

    def test_resp3(self):
        """
        RESP3: AUTH and SETNAME inside HELLO 3 (user "default" without a
        user name), then SELECT.
        """
        self.assertEqual(handshakeCommands(3, None, None, 0, None), [["HELLO", 3]])
        self.assertEqual(handshakeCommands(3, None, "pw", 1, "app"),
                         [["HELLO", 3, "AUTH", "default", "pw", "SETNAME", "app"], ["SELECT", 1]])
        self.assertEqual(handshakeCommands(3, "u", "pw", 0, None), [["HELLO", 3, "AUTH", "u", "pw"]])


class NodeTests(SynchronousTestCase):
    """
    Tests for L{RedisNode}: connecting, the handshake, reconnection with
    backoff.
    """

    def setUp(self):
        self.clock = Clock()
        self.attempts = []
        self.results = []

    def tearDown(self):
        self.node.close()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def connect(self, address, protocol):
        self.attempts.append(self.clock.seconds())
        result = self.results.pop(0) if self.results else "ok"
        if result != "ok":
            return fail(result)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.protocol, self.transport = protocol, transport
        return succeed(protocol)

    def makeNode(self, handshake=(), timeout=None, maxPending=10, backoff=(1.0, 8.0)):
        self.node = RedisNode(("h", 1), self.clock, Random(3), handshake, timeout, 5.0, maxPending, None, backoff,
                              connect=self.connect)
        return self.node

    def test_handshakeFirst(self):
        """
        The handshake is written before the commands that waited for the
        connection, which are written once it is answered.
        """
        node = self.makeNode(handshakeCommands(3, None, "pw", 0, None))
        d = node.executeMany([["GET", "k"]])[0]
        self.assertEqual(self.transport.value(), encodeCommand(["HELLO", 3, "AUTH", "default", "pw"]))
        self.protocol.dataReceived(b"%1\r\n+proto\r\n:3\r\n")
        self.assertEqual(self.transport.value(), encodeCommands([["HELLO", 3, "AUTH", "default", "pw"],
                                                                 ["GET", "k"]]))
        self.protocol.dataReceived(b"$1\r\nv\r\n")
        self.assertEqual(self.successResultOf(d), b"v")

    def test_handshakeRefused(self):
        """
        A refused handshake fails the waiting commands with
        RedisHandshakeError carrying the server's error and closes the
        connection; later commands fail fast with ServerDownError until the
        backoff's attempt.
        """
        node = self.makeNode([["AUTH", "u", "bad"]])
        d = node.executeMany([["GET", "k"]])[0]
        self.protocol.dataReceived(b"-WRONGPASS invalid username-password pair\r\n")
        error = self.failureResultOf(d, RedisHandshakeError).value
        self.assertIsInstance(error.reason, WrongPassError)
        self.assertFalse(error.mayHaveReachedServer)
        self.assertTrue(self.transport.disconnecting)
        down = self.failureResultOf(node.executeMany([["GET", "k"]])[0], ServerDownError).value
        self.assertIs(down.reason, error)
        self.assertEqual(self.attempts, [0])
        self.clock.advance(1.0)
        self.assertEqual(self.attempts, [0, 1.0])

    def test_handshakeTimeout(self):
        """
        A handshake not answered within connectTimeout fails with
        RedisHandshakeError carrying a RequestTimeoutError.
        """
        node = self.makeNode([["AUTH", "pw"]])
        d = node.executeMany([["GET", "k"]], timeout=60)[0]
        self.clock.advance(5.0)
        error = self.failureResultOf(d, RedisHandshakeError).value
        self.assertIsInstance(error.reason, RequestTimeoutError)

    def test_backoff(self):
        """
        Failed connection attempts are repeated after exponential jittered
        delays (start 1 s, capped at 8 s), each failing commands fast; a
        success resets them.
        """
        node = self.makeNode()
        self.results = [ConnectionRefusedError()] * 6
        self.failureResultOf(node.executeMany([["GET", "k"]])[0], ServerDownError)
        for _ in range(6):
            self.clock.advance(self.clock.getDelayedCalls()[0].getTime() - self.clock.seconds())
        gaps = [b - a for a, b in zip(self.attempts, self.attempts[1:])]
        self.assertEqual(len(gaps), 6)
        for n, gap in enumerate(gaps):
            self.assertTrue(1.0 <= gap <= min(8.0, 2.0 ** n), (n, gaps))
        self.assertEqual(gaps[-1] > 1.0, True)
        self.assertIsNotNone(node.connection)
        self.assertIsNone(node.down)
        d = node.executeMany([["GET", "k"]])[0]
        self.protocol.dataReceived(b"$-1\r\n")
        self.assertIsNone(self.successResultOf(d))

    def test_lostYoung(self):
        """
        A lost connection fails what was in flight with ConnectionLostError
        (mayHaveReachedServer); a connection that lived less than
        HEALTHY_AFTER is followed by the backoff, commands failing fast.
        """
        node = self.makeNode()
        d = node.executeMany([["INCR", "k"]])[0]
        self.protocol.connectionLost(Failure(ConnectionDone()))
        error = self.failureResultOf(d, ConnectionLostError).value
        self.assertTrue(error.mayHaveReachedServer)
        self.failureResultOf(node.executeMany([["GET", "k"]])[0], ServerDownError)
        self.assertEqual(len(self.attempts), 1)
        self.clock.advance(1.0)
        self.assertEqual(len(self.attempts), 2)

    def test_lostHealthy(self):
        """
        After a connection that lived HEALTHY_AFTER, the client reconnects
        at once and commands wait for the new connection.
        """
        node = self.makeNode([["SELECT", 1]])
        node.executeMany([["PING"]])
        self.protocol.dataReceived(b"+OK\r\n+PONG\r\n")
        self.clock.advance(HEALTHY_AFTER)
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.attempts, [0, HEALTHY_AFTER])
        d = node.executeMany([["GET", "k"]])[0]
        self.assertNoResult(d)
        self.protocol.dataReceived(b"+OK\r\n$1\r\nv\r\n")
        self.assertEqual(self.successResultOf(d), b"v")

    def test_waitingBounded(self):
        """
        Commands waiting for a connection time out (not sent) and are
        bounded by maxPending.
        """
        node = self.makeNode([["AUTH", "pw"]], timeout=1.0, maxPending=2)
        first = node.executeMany([["GET", "a"]])[0]
        self.clock.advance(0.5)
        second = node.executeMany([["GET", "b"]])[0]
        self.failureResultOf(node.executeMany([["GET", "c"]])[0], TooManyPendingCommandsError)
        self.clock.advance(0.5)
        error = self.failureResultOf(first, RequestTimeoutError).value
        self.assertFalse(error.mayHaveReachedServer)
        self.protocol.dataReceived(b"+OK\r\n")
        self.assertEqual(self.transport.value(), encodeCommands([["AUTH", "pw"], ["GET", "b"]]))
        self.clock.advance(0.5)
        self.failureResultOf(second, RequestTimeoutError)

    def test_close(self):
        """
        Closing fails the waiting commands with ClientClosedError and stops
        the reconnection.
        """
        node = self.makeNode([["AUTH", "pw"]], timeout=1.0)
        d = node.executeMany([["GET", "a"]])[0]
        node.close()
        self.failureResultOf(d, ClientClosedError)
        self.failureResultOf(node.executeMany([["GET", "a"]])[0], ClientClosedError)


class StatsTests(SynchronousTestCase):
    """
    Tests for L{RedisStats}.
    """

    def test_counts(self):
        """
        Calls, errors by class and latency are counted per command and read
        when the registry is collected.
        """
        clock, registry = Clock(), CollectorRegistry()
        stats = RedisStats("c", clock, registry)
        ok, bad = Deferred(), Deferred()
        stats.observe(b"get", ok)
        stats.observe("GET", bad)
        clock.advance(0.002)
        ok.callback(b"v")
        bad.errback(Failure(WrongPassError("WRONGPASS x")))
        self.failureResultOf(bad)
        sample = registry.get_sample_value
        self.assertEqual(sample("txscales_redis_client_calls_total", {"client": "c", "command": "GET"}), 2)
        self.assertEqual(sample("txscales_redis_client_errors_total",
                                {"client": "c", "command": "GET", "error": "WrongPassError"}), 1)
        self.assertEqual(sample("txscales_redis_client_latency_seconds_bucket",
                                {"client": "c", "command": "GET", "le": "0.001"}), 0)
        self.assertEqual(sample("txscales_redis_client_latency_seconds_count", {"client": "c", "command": "GET"}), 2)

    def test_namesAndBounds(self):
        """
        A command's name counts alike however it is spelt, past
        C{MAX_COMMANDS} names as C{OTHER}; a latency equal to a bucket's
        bound counts in that bucket.
        """
        clock, registry = Clock(), CollectorRegistry()
        stats = RedisStats("c", clock, registry)
        for name in [b"get", "get", "GET", b"GET", "Get"] + ["X%d" % (i,) for i in range(MAX_COMMANDS)] * 2:
            d = Deferred()
            stats.observe(name, d)
            clock.advance(0.001)
            d.callback(None)
        sample = registry.get_sample_value
        self.assertEqual(sample("txscales_redis_client_calls_total", {"client": "c", "command": "GET"}), 5)
        self.assertEqual(sample("txscales_redis_client_latency_seconds_bucket",
                                {"client": "c", "command": "GET", "le": "0.001"}), 5)
        self.assertEqual(sample("txscales_redis_client_latency_seconds_bucket",
                                {"client": "c", "command": "GET", "le": "0.0005"}), 0)
        self.assertEqual(sample("txscales_redis_client_calls_total", {"client": "c", "command": "X0"}), 2)
        self.assertEqual(sample("txscales_redis_client_calls_total", {"client": "c", "command": "OTHER"}), 2)


class _Destination:
    """
    An L{IDestination} the test changes by hand.
    """

    def __init__(self):
        self.addresses = None
        self.ready = Deferred()
        self.watchers = []
        self.closed = False

    def watch(self, callback):
        self.watchers.append(callback)
        if self.addresses is not None:
            callback(self.addresses)
        return lambda: self.watchers.remove(callback)

    def set(self, addresses):
        self.addresses = addresses
        for callback in list(self.watchers):
            callback(addresses)
        if not self.ready.called:
            self.ready.callback(addresses)

    def close(self):
        self.closed = True
        return succeed(None)


class DiscoveryTests(SynchronousTestCase):
    """
    Tests for a L{RedisClient} of a discovered member set.
    """

    def setUp(self):
        self.clock = Clock()
        self.made = []
        self.destination = _Destination()
        self.client = RedisClient(self.makeNode, None, self.destination, False, None, 2, 0)

    def makeNode(self, address):
        node = RedisNode(address, self.clock, Random(1), (), None, 5.0, 10, None, connect=self.connect)
        self.made.append(node)
        return node

    def connect(self, address, protocol):
        protocol.makeConnection(StringTransport())
        return succeed(protocol)

    def test_waitsThenFollows(self):
        """
        Commands wait (bounded by maxPending) for the first member set; a
        change of members rebuilds the ring, keeping the nodes of the
        members that stay and closing the others.
        """
        first, second = self.client.get("k"), self.client.get("j")
        self.failureResultOf(self.client.get("x"), TooManyPendingCommandsError)
        self.destination.set([("a", 1), ("b", 2)])
        self.assertNoResult(first)
        for d, key in [(first, "k"), (second, "j")]:
            node = self.client.nodeFor(key)
            node.connection.dataReceived(b"$1\r\n" + key.encode() + b"\r\n")
        self.assertEqual(self.successResultOf(first), b"k")
        self.assertEqual(self.successResultOf(second), b"j")
        a, b = self.made
        self.destination.set([("b", 2), ("c", 3)])
        self.assertEqual([n.address for n in self.client.nodes], [("b", 2), ("c", 3)])
        self.assertIs(self.client.nodes[0], b)
        self.failureResultOf(a.executeMany([["GET", "k"]])[0], ClientClosedError)
        self.successResultOf(self.client.close())
        self.assertTrue(self.destination.closed)
        self.assertEqual(self.destination.watchers, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
