"""
Tests for the Redis client's blocking commands over C{StringTransport} and
C{task.Clock}: which commands block, their pool and their timeouts.
"""

from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txscales.errors import BadOptionError, ClientClosedError, ConnectionLostError, RequestTimeoutError
from txscales.redis import CrossShardError, Redis, ServerDownError, TooManyPendingCommandsError, WrongTypeError
from txscales.redis._blockingcommands import FOREVER, blockingCommand
from txscales.redis._resp import encodeCommand
from tests._redisfake import FakeServers


class BlockingCommandTests(SynchronousTestCase):
    """
    Tests for L{blockingCommand}.
    """

    def test_table(self):
        """
        The keys and the server's timeout of each blocking command; None for
        other commands and XREAD without BLOCK.
        """
        cases = [
            (["BLPOP", "a", "b", 5], (["a", "b"], 5.0)),
            ([b"brpop", "a", b"0"], (["a"], FOREVER)),
            (["BLMOVE", "s", "d", "LEFT", "RIGHT", 0.5], (["s", "d"], 0.5)),
            (["BRPOPLPUSH", "s", "d", 2], (["s", "d"], 2.0)),
            (["BZPOPMIN", "z", 1], (["z"], 1.0)),
            (["BZPOPMAX", "z", "y", 0], (["z", "y"], FOREVER)),
            (["BLMPOP", 3, 2, "a", "b", "LEFT"], (["a", "b"], 3.0)),
            (["BZMPOP", 0, 1, "z", "MIN"], (["z"], FOREVER)),
            (["XREAD", "COUNT", 2, "BLOCK", 1500, "STREAMS", "s", "t", "0", "$"], (["s", "t"], 1.5)),
            (["XREADGROUP", "GROUP", "g", "c", "BLOCK", 0, "STREAMS", "s", ">"], (["s"], FOREVER)),
            (["BLPOP", "a", "nan"], (["a"], 0.0)),
            (["BLPOP", "a", "x"], (["a"], 0.0)),
        ]
        for args, expected in cases:
            self.assertEqual(blockingCommand(args), expected, args)
        for args in [["XREAD", "STREAMS", "s", "0"], ["GET", "k"], ["BLPOP"], ["WAIT", 1, 0], ["LPOP", "a"]]:
            self.assertIsNone(blockingCommand(args), args)

    def test_option(self):
        """
        blockingPoolSize is an int >= 1, set by newClient or the builder.
        """
        self.assertRaises(BadOptionError, Redis.newClient, "tcp://h:1", blockingPoolSize=0)
        self.assertRaises(BadOptionError, Redis.newBuilder().blockingPoolSize, 1.5)
        client = Redis.newBuilder().dest("tcp://h:1").blockingPoolSize(2).stats(False).build()
        self.assertEqual(client._pools._size, 2)
        self.successResultOf(client.close())


class PoolTests(SynchronousTestCase):
    """
    Tests for the pool of blocking commands.
    """

    def setUp(self):
        self.servers = FakeServers()
        self.clock = self.servers.clock

    def tearDown(self):
        self.successResultOf(self.client.close())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def makeClient(self, **options):
        self.client = self.servers.client(**options)
        return self.client

    def pool(self):
        return self.client._pools.poolFor(self.client.nodes[0])

    def test_ownConnection(self):
        """
        A blocking command goes on a connection of its own, other commands
        on the pipelined one; once answered, the connection is used again.
        """
        client = self.makeClient()
        blpop = client.blpop("q", timeout=0)
        get = client.get("k")
        pooled, pipelined = self.servers.connections
        self.assertEqual(pooled.written(), encodeCommand(["BLPOP", "q", 0]))
        self.assertEqual(pipelined.written(), encodeCommand(["GET", "k"]))
        pipelined.feed(b"$1\r\nv\r\n")
        self.assertEqual(self.successResultOf(get), b"v")
        self.assertNoResult(blpop)
        pooled.feed(b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n")
        self.assertEqual(self.successResultOf(blpop), (b"q", b"x"))
        raw = client.execute("BRPOP", "q", 1)
        self.assertEqual(pooled.written(), encodeCommand(["BRPOP", "q", 1]))
        pooled.feed(b"*-1\r\n")
        self.assertIsNone(self.successResultOf(raw))
        self.assertEqual(len(self.servers.connections), 2)

    def test_timeoutIsServerPlusOption(self):
        """
        A blocking command times out after its server timeout plus the
        client's timeout; its connection is then closed, and the next
        command gets a new one, so the late reply goes to nobody.
        """
        client = self.makeClient(timeout=1.0)
        d = client.blpop("q", timeout=5)
        first = self.servers.connections[0]
        self.clock.advance(5.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        error = self.failureResultOf(d, RequestTimeoutError).value
        self.assertEqual(error.timeout, 6.0)
        self.assertTrue(first.transport.disconnecting)
        forever = client.blpop("q")
        second = self.servers.connections[1]
        self.assertEqual(second.written(), encodeCommand(["BLPOP", "q", 0]))
        first.feed(b"*2\r\n$1\r\nq\r\n$4\r\nlate\r\n")
        self.clock.advance(1000)
        self.assertNoResult(forever)
        second.feed(b"*2\r\n$1\r\nq\r\n$3\r\nnew\r\n")
        self.assertEqual(self.successResultOf(forever), (b"q", b"new"))
        self.assertEqual(self.pool().closedAfterTimeout, 1)

    def test_cancelled(self):
        """
        A cancelled blocking command's connection is closed; one waiting
        for a connection is taken out of the queue.
        """
        client = self.makeClient(blockingPoolSize=1)
        running = client.blpop("a")
        waiting = client.blpop("b")
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(self.pool().waitingCount, 0)
        running.cancel()
        self.failureResultOf(running, CancelledError)
        self.assertTrue(self.servers.connections[0].transport.disconnecting)
        self.assertEqual(self.pool().connectionCount, 0)

    def test_cancelledAfterWaiting(self):
        """
        Cancelling a command that waited for a connection and now runs on
        it closes that connection.
        """
        client = self.makeClient(blockingPoolSize=1)
        first = client.blpop("a")
        second = client.blpop("b")
        connection = self.servers.connections[0]
        connection.written()
        connection.feed(b"*-1\r\n")
        self.assertIsNone(self.successResultOf(first))
        self.assertEqual(connection.written(), encodeCommand(["BLPOP", "b", 0]))
        second.cancel()
        self.failureResultOf(second, CancelledError)
        self.assertTrue(connection.transport.disconnecting)

    def test_bounded(self):
        """
        At most blockingPoolSize connections; commands past them wait in
        order, at most maxPending of them (then TooManyPendingCommandsError)
        and at most the client's timeout (then RequestTimeoutError, not
        sent).
        """
        client = self.makeClient(blockingPoolSize=2, maxPending=2, timeout=3.0)
        ds = [client.blpop("q%d" % i, timeout=10) for i in range(4)]
        self.failureResultOf(client.blpop("x"), TooManyPendingCommandsError)
        self.assertEqual(len(self.servers.connections), 2)
        self.assertEqual(self.pool().waitingCount, 2)
        first = self.servers.connections[0]
        first.written()
        self.clock.advance(1.0)
        first.feed(b"*-1\r\n")
        self.assertIsNone(self.successResultOf(ds[0]))
        self.assertEqual(first.written(), encodeCommand(["BLPOP", "q2", 10]))
        self.clock.advance(2.0)
        error = self.failureResultOf(ds[3], RequestTimeoutError).value
        self.assertFalse(error.mayHaveReachedServer)
        self.assertEqual(self.pool().waitingCount, 0)
        self.assertEqual(len(self.servers.connections), 2)
        for d in ds[1:3]:
            d.addErrback(lambda f: f.trap(ClientClosedError))

    def test_errorReplyKeepsConnection(self):
        """
        An error reply fails its command; the connection stays in the pool.
        """
        client = self.makeClient()
        d = client.blpop("s")
        connection = self.servers.connections[0]
        connection.feed(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
        self.failureResultOf(d, WrongTypeError)
        self.assertFalse(connection.transport.disconnecting)
        client.blpop("s").addErrback(lambda f: f.trap(ClientClosedError))
        self.assertEqual(len(self.servers.connections), 1)

    def test_lost(self):
        """
        A lost connection fails its command with ConnectionLostError and
        leaves the pool; an idle one that is lost leaves it too.
        """
        client = self.makeClient()
        d = client.blpop("q")
        connection = self.servers.connections[0]
        connection.protocol.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(d, ConnectionLostError)
        self.assertEqual(self.pool().connectionCount, 0)
        d = client.blpop("q")
        self.servers.connections[1].feed(b"*-1\r\n")
        self.successResultOf(d)
        self.servers.connections[1].protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.pool().connectionCount, 0)

    def test_connectFails(self):
        """
        When a pooled connection cannot be made, the commands waiting for
        one fail with ServerDownError.
        """
        client = self.makeClient(blockingPoolSize=1)
        self.servers.refuse[("h", 1)] = ConnectionRefusedError()
        self.failureResultOf(client.blpop("q"), ServerDownError)
        self.assertEqual(self.pool().connectionCount, 0)

    def test_crossShard(self):
        """
        On a sharded client, a blocking command's keys must be on one
        server.
        """
        client = self.makeClient(addresses=[("h", 1), ("h", 2)])
        keys = ["k%d" % i for i in range(20)]
        other = next(k for k in keys if client.nodeFor(k) is not client.nodeFor(keys[0]))
        self.failureResultOf(client.blpop(keys[0], other), CrossShardError)
        self.failureResultOf(client.blmove(keys[0], other), CrossShardError)
        self.assertEqual(self.servers.connections, [])

    def test_close(self):
        """
        Closing the client fails running and waiting blocking commands with
        ClientClosedError.
        """
        client = self.makeClient(blockingPoolSize=1)
        running, waiting = client.blpop("a"), client.blpop("b")
        self.successResultOf(client.close())
        self.failureResultOf(running, ClientClosedError)
        self.failureResultOf(waiting, ClientClosedError)
        self.failureResultOf(client.blpop("c"), ClientClosedError)
