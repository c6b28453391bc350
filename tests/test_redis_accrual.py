"""
Tests for the Redis client's failure accrual, fail-fast and
C{ejectFailedHosts} options, over C{StringTransport}s and a C{task.Clock}.
"""

from random import Random

from twisted.internet.error import ConnectionRefusedError
from twisted.trial.unittest import SynchronousTestCase

from tests._redisfake import FakeServers
from txscales.errors import BadOptionError, RequestTimeoutError
from txscales.redis import Redis, ServerDeadError, ServerDownError, WrongTypeError
from txscales.redis._client import RedisClient
from txscales.redis._hashing import KetamaRing, ketamaName
from txscales.redis._health import NodeHealth
from txscales.redis._node import RedisNode
from txscales.redis._resp import encodeCommand
from txscales.stack import ALIVE, DEAD

ACCRUAL = {"consecutiveFailures": 3, "markDeadFor": (5.0, 5.0)}

SERVERS = [("h", 1), ("h", 2), ("h", 3)]


class AccrualTests(SynchronousTestCase):
    """
    Tests for failure accrual on one server and on a sharded client.
    """

    def setUp(self):
        self.servers = FakeServers()
        self.clock = self.servers.clock

    def tearDown(self):
        self.successResultOf(self.client.close())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def makeClient(self, addresses=SERVERS[:1], eject=False, accrual=ACCRUAL, timeout=1.0):
        def makeNode(address):
            return RedisNode(address, self.clock, Random(3), [], timeout, 5.0, 100, None, (0.5, 0.5),
                             connect=self.servers.connect,
                             health=NodeHealth(address, self.clock, Random(4), accrual))

        self.client = RedisClient(makeNode, list(addresses), None, len(addresses) == 1, None, 100, 10,
                                  ejectFailedHosts=eject)
        return self.client

    def connectionTo(self, address):
        return [c for c in self.servers.connections if c.address == address][-1]

    def timeOut(self, client, key, count):
        """
        Send C{count} GETs of C{key} that time out, and their late
        replies (dropped).
        """
        node = client.nodeFor(key)
        sent = [client.get(key) for _ in range(count)]
        self.clock.advance(1.0)
        for d in sent:
            self.failureResultOf(d, RequestTimeoutError)
        node.connection.dataReceived(b"$-1\r\n" * count)

    def test_deadAfterTimeouts(self):
        """
        A server whose commands time out consecutiveFailures times in a row
        is marked dead; the timeouts before do not.
        """
        client = self.makeClient()
        self.timeOut(client, "k", 2)
        health = client.nodes[0].health
        self.assertEqual(health.accrual.state, ALIVE)
        self.timeOut(client, "k", 1)
        self.assertEqual(health.accrual.state, DEAD)

    def test_failFastWhileDead(self):
        """
        While the server is dead its commands fail at once with
        ServerDeadError, a ServerDownError not sent.
        """
        client = self.makeClient()
        self.timeOut(client, "k", 3)
        connection = self.connectionTo(SERVERS[0])
        connection.written()
        error = self.failureResultOf(client.get("k"), ServerDeadError).value
        self.assertIsInstance(error, ServerDownError)
        self.assertFalse(error.mayHaveReachedServer)
        self.assertEqual(error.address, SERVERS[0])
        self.assertEqual(connection.written(), b"")

    def test_probeRevives(self):
        """
        After markDeadFor one command is sent as the probe: its reply
        revives the server, a failed probe marks it dead again.
        """
        client = self.makeClient()
        self.timeOut(client, "k", 3)
        health = client.nodes[0].health
        self.clock.advance(5.0)
        self.timeOut(client, "k", 1)
        self.assertEqual(health.accrual.state, DEAD)
        self.clock.advance(5.0)
        connection = self.connectionTo(SERVERS[0])
        connection.written()
        probe = client.get("k")
        self.assertEqual(connection.written(), encodeCommand(["GET", "k"]))
        connection.feed(b"$1\r\nv\r\n")
        self.assertEqual(self.successResultOf(probe), b"v")
        self.assertEqual(health.accrual.state, ALIVE)
        self.assertEqual(health.accrual.revivals, 1)

    def test_errorRepliesDoNotCount(self):
        """
        Error replies (WRONGTYPE) answer for the server: they break a run of
        timeouts and never mark it dead.
        """
        client = self.makeClient()
        self.timeOut(client, "k", 2)
        connection = self.connectionTo(SERVERS[0])
        for _ in range(20):
            d = client.get("k")
            connection.feed(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
            self.failureResultOf(d, WrongTypeError)
        self.timeOut(client, "k", 2)
        self.assertEqual(client.nodes[0].health.accrual.state, ALIVE)

    def test_connectionFailuresCount(self):
        """
        Failed connection attempts count: a refused server is marked dead
        after consecutiveFailures attempts, and probed at once when it
        accepts a connection again.
        """
        self.servers.refuse[SERVERS[0]] = ConnectionRefusedError()
        client = self.makeClient()
        health = client.nodes[0].health
        self.failureResultOf(client.get("k"), ServerDownError)
        self.clock.advance(0.5)
        self.clock.advance(0.5)
        self.assertEqual(health.accrual.state, DEAD)
        self.failureResultOf(client.get("k"), ServerDeadError)
        del self.servers.refuse[SERVERS[0]]
        self.clock.advance(0.5)
        self.assertNotEqual(health.accrual.state, DEAD)
        probe = client.get("k")
        self.connectionTo(SERVERS[0]).feed(b"+OK\r\n")
        self.successResultOf(probe)
        self.assertEqual(health.accrual.state, ALIVE)

    def test_ejectAndReturn(self):
        """
        With ejectFailedHosts, a dead server's keys go to the next server on
        the ring, the others' keys stay; they come back when it may be
        probed, and the probe's success keeps it in.
        """
        client = self.makeClient(SERVERS, eject=True)
        ring = KetamaRing([(ketamaName(h, p), 1, (h, p)) for h, p in SERVERS])
        keys = ["key%d" % (i,) for i in range(60)]
        home = {key: ring.nodeFor(key) for key in keys}
        mine = [key for key in keys if home[key] == SERVERS[0]]
        others = [key for key in keys if home[key] != SERVERS[0]]
        self.assertTrue(mine and others)
        self.assertEqual({key: client.nodeFor(key).address for key in keys}, home)
        self.timeOut(client, mine[0], 3)
        self.assertTrue(client.nodes[0].health.dead)
        moved = {key: client.nodeFor(key).address for key in keys}
        self.assertNotIn(SERVERS[0], set(moved[key] for key in mine))
        self.assertEqual({key: moved[key] for key in others}, {key: home[key] for key in others})
        d = client.get(mine[0])
        self.connectionTo(moved[mine[0]]).feed(b"$1\r\nv\r\n")
        self.assertEqual(self.successResultOf(d), b"v")
        self.clock.advance(5.0)
        self.assertEqual({key: client.nodeFor(key).address for key in keys}, home)
        probe = client.get(mine[0])
        self.connectionTo(SERVERS[0]).feed(b"$1\r\nw\r\n")
        self.assertEqual(self.successResultOf(probe), b"w")
        self.assertEqual({key: client.nodeFor(key).address for key in keys}, home)

    def test_ejectMovesChannels(self):
        """
        With ejectFailedHosts, the channels of a dead server are subscribed
        on the server that now receives their PUBLISH, and again on their
        own server once it is back.
        """
        client = self.makeClient(SERVERS[:2], eject=True)
        channels = ["c%d" % (i,) for i in range(20)]
        placed = {c: client.nodeFor(c).address for c in channels}
        mine = [c.encode() for c in channels if placed[c] == SERVERS[0]]
        d = client.subscribe(*channels, onMessage=lambda *m: None)
        subscribers = {c.address: c for c in self.servers.connections}
        for connection in subscribers.values():
            connection.written()
            ours = [c for c in channels if placed[c] == connection.address]
            for count, channel in enumerate(ours, 1):
                connection.feed(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:%d\r\n"
                                % (len(channel), channel.encode(), count))
        self.successResultOf(d)
        self.timeOut(client, mine[0], 3)
        self.assertEqual(subscribers[SERVERS[1]].written(), encodeCommand(["SUBSCRIBE"] + mine))
        self.assertEqual(client.nodeFor(mine[0]).address, SERVERS[1])
        self.assertEqual(subscribers[SERVERS[0]].written(), encodeCommand(["UNSUBSCRIBE"] + mine))
        self.clock.advance(5.0)
        self.assertEqual(client.nodeFor(mine[0]).address, SERVERS[0])
        self.assertEqual(subscribers[SERVERS[0]].written(), encodeCommand(["SUBSCRIBE"] + mine))
        self.assertEqual(subscribers[SERVERS[1]].written(), encodeCommand(["UNSUBSCRIBE"] + mine))

    def test_noEjectByDefault(self):
        """
        Without ejectFailedHosts a dead server's keys stay on it and fail
        fast.
        """
        client = self.makeClient(SERVERS)
        ring = KetamaRing([(ketamaName(h, p), 1, (h, p)) for h, p in SERVERS])
        key = next(k for k in ("key%d" % (i,) for i in range(60)) if ring.nodeFor(k) == SERVERS[0])
        self.timeOut(client, key, 3)
        self.assertEqual(client.nodeFor(key).address, SERVERS[0])
        self.failureResultOf(client.get(key), ServerDeadError)
        self.clock.advance(5.0)

    def test_allDead(self):
        """
        When every server is dead none is ejected: commands fail fast.
        """
        client = self.makeClient(SERVERS[:2], eject=True)
        for address in SERVERS[:2]:
            key = next(k for k in ("key%d" % (i,) for i in range(60)) if client.nodeFor(k).address == address)
            self.timeOut(client, key, 3)
        self.failureResultOf(client.get("key1"), ServerDeadError)
        self.clock.advance(5.0)

    def test_off(self):
        """
        failureAccrual=False makes nodes without accrual: timeouts never
        fail commands fast.
        """
        self.client = Redis.newClient("tcp://h:1", failureAccrual=False, reactor=self.clock, stats=False)
        self.assertIsNone(self.client.nodes[0].health)


class AccrualOptionsTests(SynchronousTestCase):
    """
    Tests for the options failFast, failureAccrual and ejectFailedHosts.
    """

    def test_bad(self):
        """
        Bad values are BadOptionErrors naming the option.
        """
        for name, value in [("failFast", (1, 2)), ("failFast", {"start": 2, "maximum": 1}),
                            ("failFast", {"begin": 1}), ("failureAccrual", True),
                            ("failureAccrual", {"consecutive": 1}), ("failureAccrual", {"successRate": 2}),
                            ("failureAccrual", {"markDeadFor": (2, 1)}), ("ejectFailedHosts", 1)]:
            error = self.assertRaises(BadOptionError, Redis.newClient, "tcp://h:1", **{name: value})
            self.assertIn(name, str(error))
        self.assertRaises(BadOptionError, Redis.newBuilder().failFast, 2.0, 1.0)
        self.assertRaises(BadOptionError, Redis.newBuilder().failureAccrual, window=0)
        self.assertRaises(BadOptionError, Redis.newBuilder().ejectFailedHosts, "yes")

    def test_builder(self):
        """
        The builder's setters reach the nodes: failFast's delays, failure
        accrual's options (or none) and ejectFailedHosts.
        """
        builder = (Redis.newBuilder().dest("tcp://h:1,h:2").stats(False).failFast(2.0, 2.0)
                   .failureAccrual(consecutiveFailures=1, markDeadFor=(7.0, 7.0)).ejectFailedHosts())
        client = builder.build()
        node = client.nodes[0]
        self.assertEqual(next(node.backoffDelays()), 2.0)
        self.assertTrue(client._ejectFailedHosts)
        self.assertEqual(node.health.accrual._limit, 1)
        client = Redis.newBuilder().dest("tcp://h:1").stats(False).failureAccrual(False).build()
        self.assertIsNone(client.nodes[0].health)
