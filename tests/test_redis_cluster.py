"""
Tests for the Redis Cluster client's own logic: the slot map's parsers
(tables of replies), and L{ClusterClient}'s routing, redirects, refreshes
and retries over fake nodes and C{task.Clock}.
"""

from random import Random

from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txscales.errors import BadOptionError, ClientClosedError, ConnectionLostError
from txscales.redis import (
    AskError,
    ClusterClient,
    ClusterDownError,
    ClusterMapError,
    CrossSlotError,
    MovedError,
    Redis,
    RedirectError,
    RedisReplyError,
    ServerDownError,
    TooManyRedirectsError,
)
from txscales.redis._cluster import MAX_REDIRECT_NODES
from txscales.redis._slotmap import SlotMapError, masters, served, slotMapFromShards, slotMapFromSlots
from txscales.redis._slots import SLOTS, keySlot

A = ("10.0.0.1", 7000)
B = ("10.0.0.2", 7001)
C = ("10.0.0.3", 7002)


def shard(first, last, *nodes, resp3=False):
    """
    @param nodes: C{(ip, port, role, health)} of each node.
    @return: a CLUSTER SHARDS entry, a RESP2 flat list or a RESP3 dict.
    """
    def mapping(pairs):
        return dict(pairs) if resp3 else [x for pair in pairs for x in pair]

    infos = [mapping([(b"id", b"x"), (b"port", port), (b"ip", ip.encode()), (b"endpoint", ip.encode()),
                      (b"role", role.encode()), (b"replication-offset", 1), (b"health", health.encode())])
             for ip, port, role, health in nodes]
    return mapping([(b"slots", [first, last]), (b"nodes", infos)])


class SlotMapTests(SynchronousTestCase):
    """
    Tests for L{slotMapFromShards} and L{slotMapFromSlots}.
    """

    def test_shards(self):
        """
        Each shard's ranges go to its healthy master, in RESP2 and RESP3,
        bytes or str; a failed master or a shard without master leaves its
        slots unserved.
        """
        for resp3 in (False, True):
            reply = [shard(0, 5460, ("10.0.0.1", 7000, "master", "online"), ("10.0.0.9", 7009, "replica", "online"),
                           resp3=resp3),
                     shard(5461, 10922, ("10.0.0.2", 7001, "replica", "online"),
                           ("10.0.0.8", 7008, "master", "failed"), resp3=resp3),
                     shard(10923, 16383, ("10.0.0.3", 7002, "master", "loading"), resp3=resp3)]
            slots = slotMapFromShards(reply, "via")
            self.assertEqual(len(slots), SLOTS)
            self.assertEqual((slots[0], slots[5460], slots[5461], slots[10922], slots[10923], slots[16383]),
                             (A, A, None, None, C, C))
            self.assertEqual(masters(slots), [A, C])
            self.assertEqual(served(slots), 5461 + 5461)

    def test_table(self):
        """
        A table of replies and the owners of slots 0, 1 and 16383 they give.
        """
        table = [
            # CLUSTER SLOTS: the first node of a range is its master.
            (slotMapFromSlots, [[0, 0, [b"10.0.0.1", 7000, b"id"], [b"10.0.0.9", 7009, b"id2"]],
                                [1, 16383, ["10.0.0.2", "7001"]]], (A, B, B)),
            # An unknown endpoint (? or empty) is the answering node's host.
            (slotMapFromSlots, [[0, 16383, [b"?", 7000]]], (("via", 7000),) * 3),
            (slotMapFromSlots, [[0, 1, [b"", 7000]]], (("via", 7000), ("via", 7000), None)),
            (slotMapFromShards, [[b"slots", [0, 1], b"nodes", [[b"port", 7000, b"ip", b"10.0.0.1",
                                                               b"endpoint", b"?", b"role", b"master"]]]],
             (A, A, None)),
            # A TLS-only master (no port) is not usable.
            (slotMapFromShards, [[b"slots", [0, 1], b"nodes", [[b"tls-port", 7000, b"ip", b"h", b"role",
                                                               b"master"]]]], (None, None, None)),
            (slotMapFromShards, [], (None, None, None)),
        ]
        for parse, reply, owners in table:
            slots = parse(reply, "via")
            self.assertEqual((slots[0], slots[1], slots[16383]), owners, reply)

    def test_badReplies(self):
        """
        A reply of another shape is a SlotMapError, never an index or type
        error: slots out of range, odd bounds, bad ports, wrong types.
        """
        bad = [
            (slotMapFromSlots, [[0, 16384, [b"h", 7000]]]),
            (slotMapFromSlots, [[5, 4, [b"h", 7000]]]),
            (slotMapFromSlots, [[0, 1]]),
            (slotMapFromSlots, [[0, 1, [b"h"]]]),
            (slotMapFromSlots, [[0, 1, [b"h", 70000]]]),
            (slotMapFromSlots, [[b"x", 1, [b"h", 7000]]]),
            (slotMapFromSlots, b"ERR"),
            (slotMapFromSlots, [[True, 1, [b"h", 7000]]]),
            (slotMapFromShards, [[b"slots", [0], b"nodes", []]]),
            (slotMapFromShards, [[b"slots"]]),
            (slotMapFromShards, [[b"slots", [0, 1], b"nodes", [[b"port", 1.5, b"role", b"master"]]]]),
            (slotMapFromShards, 7),
        ]
        for parse, reply in bad:
            self.assertRaises(SlotMapError, parse, reply, "via")


class FakeNode:
    """
    A L{RedisNode} stand-in: each command is answered by the test's
    C{answer(address, command)}, and recorded.
    """

    def __init__(self, address, test):
        self.address = address
        self.test = test
        self.connection = object()
        self.closed = False
        self.reactor = test.clock
        self.timeout = None
        self.encoding = None

    def executeMany(self, commands, timeout=-1.0):
        self.test.sent.append((self.address, [list(c) for c in commands]))
        return [self.test.answer(self.address, list(command)) for command in commands]

    def close(self):
        self.closed = True

    def newConnection(self):
        return succeed(FakeConnection(self))


class FakeConnection:
    """
    A transaction's connection of a L{FakeNode}: its commands are answered
    as the node's.
    """

    def __init__(self, node):
        self.node = node

    def execute(self, *args):
        return self.node.executeMany([args])[0]

    def executeMany(self, commands):
        return self.node.executeMany(commands)

    def close(self):
        pass


def full(address):
    """
    @return: a CLUSTER SLOTS reply giving every slot to C{address}.
    """
    return [[0, SLOTS - 1, [address[0].encode(), address[1]]]]


class ClusterClientTests(SynchronousTestCase):
    """
    Tests for L{ClusterClient} over fake nodes.
    """

    def setUp(self):
        self.clock = Clock()
        self.sent = []
        self.nodes = {}
        self.maps = {}
        self.replies = {}

    def makeNode(self, address):
        node = self.nodes[address] = FakeNode(address, self)
        return node

    def answer(self, address, command):
        """
        Answer CLUSTER SHARDS with ERR (as Redis 6), CLUSTER SLOTS with
        C{self.maps[address]}, others with C{self.replies}.
        """
        if command == ["CLUSTER", "SHARDS"]:
            if self.maps.get(address) is None:
                return fail(ServerDownError(address, "refused"))
            return fail(RedisReplyError("ERR unknown subcommand 'shards'"))
        if command == ["CLUSTER", "SLOTS"]:
            reply = self.maps.get(address)
            return fail(ServerDownError(address, "refused")) if reply is None else succeed(reply)
        reply = self.replies.get((address, command[0]), self.replies.get(command[0], b"OK"))
        if callable(reply):
            reply = reply(address, command)
        if isinstance(reply, Deferred):
            return reply
        return fail(reply) if isinstance(reply, Exception) else succeed(reply)

    def client(self, seeds=(A,), **kwargs):
        options = dict(maxPending=100, maxTransactionRetries=1, maxRedirects=3, maxRetries=3, backoff=(0.1, 1.0),
                       refreshTimeout=1.0)
        options.update(kwargs)
        client = ClusterClient(self.makeNode, list(seeds), self.clock, Random(1), None, **options)
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))
        self.addCleanup(client.close)
        return client

    def commands(self, name):
        return [(address, c) for address, batch in self.sent for c in batch if c[0] == name]

    def test_firstMapFromASeed(self):
        """
        The first command waits for the map, asked of the seeds in turn
        (SLOTS after SHARDS is unknown); it goes to its slot's master, and
        seeds that serve no slot are closed.
        """
        self.maps[B] = full(A)
        client = self.client(seeds=[C, B])
        d = client.get("k")
        self.assertEqual(self.successResultOf(d), b"OK")
        self.assertEqual(self.commands("GET"), [(A, ["GET", "k"])])
        self.assertEqual(client.refreshes, 1)
        self.assertTrue(self.nodes[B].closed and self.nodes[C].closed)
        self.assertEqual(client.nodes, [self.nodes[A]])
        self.assertEqual(self.commands("CLUSTER"), [(C, ["CLUSTER", "SHARDS"]), (B, ["CLUSTER", "SHARDS"]),
                                                    (B, ["CLUSTER", "SLOTS"])])
        self.sent[:] = []
        self.maps[A] = full(A)
        client.requestRefresh()
        self.clock.advance(1)
        # SHARDS is not asked again.
        self.assertEqual(self.commands("CLUSTER"), [(A, ["CLUSTER", "SLOTS"])])

    def test_noMap(self):
        """
        When no seed gives a map, the waiting commands fail with
        ClusterMapError, not sent; the next command asks again.
        """
        client = self.client(seeds=[A, B])
        error = self.failureResultOf(client.get("k"), ClusterMapError).value
        self.assertFalse(error.mayHaveReachedServer)
        self.assertIsInstance(error.reason, ServerDownError)
        self.maps[A] = full(A)
        d = client.get("k")
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(d), b"OK")

    def test_moved(self):
        """
        MOVED updates the slot's owner, the command goes there, and one
        refresh follows.
        """
        self.maps[A] = full(A)
        client = self.client()
        self.successResultOf(client.get("x"))
        self.replies[(A, "GET")] = MovedError("MOVED %d 10.0.0.2:7001" % (keySlot("k"),))
        self.assertEqual(self.successResultOf(client.get("k")), b"OK")
        self.assertEqual(self.commands("GET")[1:], [(A, ["GET", "k"]), (B, ["GET", "k"])])
        self.assertEqual(client.slots[keySlot("k")], B)
        self.assertEqual(client.slots[keySlot("x")], A)
        self.assertEqual(client.refreshes, 1)
        self.clock.advance(0.1)
        self.assertEqual(client.refreshes, 2)

    def test_redirectBound(self):
        """
        A node redirecting for ever: the command fails with
        TooManyRedirectsError after maxRedirects, sent maxRedirects + 1
        times.
        """
        self.maps[A] = full(A)
        client = self.client(maxRedirects=3)
        self.successResultOf(client.get("x"))
        self.replies["GET"] = lambda address, _: MovedError(
            "MOVED %d %s:%d" % (keySlot("k"), (B if address == A else A)[0], (B if address == A else A)[1]))
        error = self.failureResultOf(client.get("k"), TooManyRedirectsError).value
        self.assertFalse(error.mayHaveReachedServer)
        self.assertIsInstance(error.last, MovedError)
        self.assertEqual(len(self.commands("GET")), 1 + 4)
        self.clock.advance(1)

    def test_redirectNodesBound(self):
        """
        Nodes that answer MOVED and ASK to ever new addresses make the client
        connect to at most MAX_REDIRECT_NODES nodes outside the slot map
        until the next refresh: a redirect to one more fails its command
        with the redirect's error, and the refresh closes them all.
        """
        self.maps[A] = full(A)
        client = self.client(refreshInterval=60)
        self.successResultOf(client.get("x"))
        ports = iter(range(8000, 9000))

        def redirect(address, command):
            if address != A:
                return b"there"
            port = next(ports)
            kind, error = ("MOVED", MovedError) if port % 2 else ("ASK", AskError)
            return error("%s %d 10.0.0.9:%d" % (kind, keySlot(command[1]), port))

        self.replies["GET"] = redirect
        results = [client.get("k%d" % (i,)) for i in range(40)]
        answered = [self.successResultOf(d) for d in results[:MAX_REDIRECT_NODES]]
        self.assertEqual(answered, [b"there"] * MAX_REDIRECT_NODES)
        failures = [self.failureResultOf(d, RedirectError).value for d in results[MAX_REDIRECT_NODES:]]
        self.assertEqual({type(f) for f in failures}, {MovedError, AskError})
        self.assertEqual({f.mayHaveReachedServer for f in failures}, {False})
        outside = set(self.nodes) - {A}
        self.assertEqual(len(outside), MAX_REDIRECT_NODES)
        self.clock.advance(60)
        self.assertEqual([a for a in outside if not self.nodes[a].closed], [])
        self.assertEqual(client.nodes, [self.nodes[A]])

    def test_refreshCoalesced(self):
        """
        Many MOVED at once start one refresh; while it is in flight, however
        long, no other starts; one more is queued, and refreshes start at
        least refreshInterval apart.
        """
        self.maps[A] = full(A)
        client = self.client(refreshInterval=0.5)
        self.successResultOf(client.get("x"))
        self.clock.advance(1)
        self.sent[:] = []
        pending = Deferred()
        self.replies["GET"] = lambda address, command: (
            MovedError("MOVED %d 10.0.0.2:7001" % (keySlot(command[1]),)) if address == A else b"OK")
        original = self.answer
        self.answer = lambda address, command: pending if command[0] == "CLUSTER" else original(address, command)
        for i in range(50):
            self.successResultOf(client.get("key%d" % (i,)))
        self.assertEqual((client.refreshes, len(self.commands("CLUSTER"))), (2, 1))
        self.clock.advance(1)
        self.assertEqual((client.refreshes, len(self.commands("CLUSTER"))), (2, 1))
        # The queued refresh starts once the first is done.
        self.answer = original
        self.maps[B] = full(B)
        pending.callback(full(B))
        self.assertEqual((client.refreshes, len(self.commands("CLUSTER"))), (3, 2))
        self.assertEqual(client.slots[0], B)
        self.assertTrue(self.nodes[A].closed)
        client.requestRefresh()
        client.requestRefresh()
        self.clock.advance(0.49)
        self.assertEqual(client.refreshes, 3)
        self.clock.advance(0.01)
        self.assertEqual(client.refreshes, 4)

    def test_ask(self):
        """
        ASK sends ASKING and the command to the target in one write; the
        map does not change and no refresh follows.
        """
        self.maps[A] = full(A)
        client = self.client()
        self.successResultOf(client.get("x"))
        self.replies[(A, "GET")] = AskError("ASK %d :7001" % (keySlot("k"),))
        self.replies[(("10.0.0.1", 7001), "GET")] = b"there"
        self.assertEqual(self.successResultOf(client.get("k")), b"there")
        self.assertEqual(self.sent[-1], (("10.0.0.1", 7001), [["ASKING"], ["GET", "k"]]))
        self.assertEqual(client.slots[keySlot("k")], A)
        self.clock.advance(1)
        self.assertEqual(client.refreshes, 1)

    def test_crossSlot(self):
        """
        A command over keys of several slots fails with CrossSlotError and
        nothing is sent; split helpers send one command per slot.
        """
        self.maps[A] = full(A)
        client = self.client()
        self.successResultOf(client.get("x"))
        sent = len(self.sent)
        for d in [client.execute("RENAME", "a", "b"), client.execute("SUNIONSTORE", "d", "s1", "s2"),
                  client.pipeline().get("a").mget("a", "b").execute(),
                  client.transaction(lambda tx: None, watch=["a", "b"])]:
            error = self.failureResultOf(d, CrossSlotError).value
            self.assertFalse(error.mayHaveReachedServer)
        self.assertEqual(len(self.sent), sent)
        self.replies["MGET"] = lambda address, command: [c.encode() for c in command[1:]]
        self.assertEqual(self.successResultOf(client.mget("a", "b", "{a}c")), [b"a", b"b", b"{a}c"])
        self.assertEqual(sorted(c for _, c in self.commands("MGET")), [["MGET", "a", "{a}c"], ["MGET", "b"]])

    def test_transactionMoved(self):
        """
        A transaction runs on its slot's master; MOVED fails it (not sent
        again) and updates the map.
        """
        self.maps[A] = full(A)
        client = self.client()
        self.successResultOf(client.get("x"))
        self.replies[(A, "WATCH")] = MovedError("MOVED %d 10.0.0.2:7001" % (keySlot("{t}a"),))
        self.failureResultOf(client.transaction(lambda tx: None, watch=["{t}a", "{t}b"]), MovedError)
        self.assertEqual(self.commands("WATCH"), [(A, ["WATCH", "{t}a", "{t}b"])])
        self.assertEqual(client.slots[keySlot("t")], B)
        self.replies["EXEC"] = [b"OK"]
        replies = self.successResultOf(client.transaction(lambda tx: tx.multi().set("{t}c", 1), shardKey="t"))
        self.assertEqual(self.commands("MULTI"), [(B, ["MULTI"])])
        self.assertEqual(replies, [True])
        self.clock.advance(1)

    def test_retryAfterFailover(self):
        """
        A command refused without reaching a server (ServerDownError,
        CLUSTERDOWN) is sent again after a refresh and a delay; one that
        may have reached it (a lost connection) fails at once.
        """
        self.maps[A] = full(A)
        client = self.client()
        self.successResultOf(client.get("x"))
        self.replies[(A, "GET")] = ServerDownError(A, "refused")
        self.maps[B] = full(B)
        client.seeds.append(B)
        self.maps[A] = None
        d = client.get("k")
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.assertEqual(client.slots[0], B)
        self.assertEqual(self.successResultOf(d), b"OK")
        self.assertEqual(self.commands("GET")[-1], (B, ["GET", "k"]))
        self.replies[(B, "GET")] = ClusterDownError("CLUSTERDOWN The cluster is down")
        d = client.get("k")
        self.clock.pump([0.1, 0.2, 0.4, 1.0])
        self.failureResultOf(d, ClusterDownError)
        self.assertEqual(len(self.commands("GET")), 3 + 4)
        self.replies[(B, "GET")] = ConnectionLostError("lost", mayHaveReachedServer=True)
        self.failureResultOf(client.get("k"), ConnectionLostError)
        self.assertEqual(len(self.commands("GET")), 3 + 4 + 1)
        self.clock.advance(1)

    def test_closeCancelsRetries(self):
        """
        Closing the client fails the commands waiting to be sent again with
        ClientClosedError, and leaves no delayed call.
        """
        self.maps[A] = full(A)
        client = self.client()
        self.successResultOf(client.get("x"))
        self.replies[(A, "GET")] = ClusterDownError("CLUSTERDOWN")
        d = client.get("k")
        client.close()
        self.failureResultOf(d, ClientClosedError)
        self.assertTrue(self.nodes[A].closed)

    def test_options(self):
        """
        A redis-cluster:// destination makes a ClusterClient; db must be 0,
        maxRedirects and maxClusterRetries are bounded.
        """
        client = Redis.newClient("redis-cluster://127.0.0.1:1,127.0.0.1:2", reactor=self.clock,
                                 registry=CollectorRegistry())
        self.assertIsInstance(client, ClusterClient)
        self.assertEqual(client.seeds, [("127.0.0.1", 1), ("127.0.0.1", 2)])
        self.assertRaises(BadOptionError, Redis.newClient, "redis-cluster://h:1", db=1, reactor=self.clock)
        self.assertRaises(BadOptionError, Redis.newClient, "redis-cluster://h:1", maxRedirects=1000,
                          reactor=self.clock)
        self.assertRaises(BadOptionError, Redis.newBuilder().maxClusterRetries, -1)
        built = Redis.newBuilder().dest("redis-cluster://h:1").maxRedirects(2).reactor(self.clock).stats(False).build()
        self.assertIsInstance(built, ClusterClient)
