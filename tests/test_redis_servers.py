"""
Tests against real Redis servers: of the helpers in L{tests._redis} (a
server, a Redis Cluster), and of txscales' RESP code and key slots against
what a real server sends and computes.
"""

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase

from txscales.errors import RequestTimeoutError
from txscales.redis import _errors as errors
from txscales.redis._connection import RedisConnection
from txscales.redis._resp import ReplyReader, encodeCommand, encodeCommands
from txscales.redis._slots import keySlot

from tests._redis import RedisCluster, RedisServer, parseClusterNodes

SLOT_KEYS = [
    b"",
    b"foo",
    b"bar",
    b"123456789",
    b"{user1000}.following",
    b"{user1000}.followers",
    b"foo{}{bar}",
    b"foo{{bar}}zap",
    b"foo{bar}{zap}",
    b"}{a}",
    b"\x00\xff\xfe binary",
    "cl\u00e9".encode("utf-8"),
] + [b"key:%d" % (i,) for i in range(200)]


class WireClient(Protocol):
    """
    A client made of txscales' encoder and reader, for these tests only:
    sends commands as one write and collects C{count} replies.
    """

    def __init__(self):
        self.reader = ReplyReader()
        self.replies = []
        self.error = None
        self._waiting = None

    def dataReceived(self, data):
        try:
            self.replies.extend(self.reader.feed(data))
        except Exception as e:
            self.error = e
            self.transport.loseConnection()
            return
        if self._waiting is not None and len(self.replies) >= self._waiting[0]:
            count, d = self._waiting
            self._waiting = None
            replies, self.replies = self.replies[:count], self.replies[count:]
            d.callback(replies)

    def send(self, *commands):
        """
        @return: a Deferred firing with the replies to C{commands}.
        """
        d = Deferred()
        self._waiting = (len(commands), d)
        self.transport.write(encodeCommands(commands))
        return d


def connectWire(port):
    return connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5), WireClient())


class RedisServerTests(TestCase):
    """
    Tests for L{RedisServer} and for txscales' RESP code against it.
    """

    timeout = 30

    @inlineCallbacks
    def setUp(self):
        self.server = RedisServer(reactor, self.addCleanup)
        yield self.server.start()

    @inlineCallbacks
    def test_killAndRestart(self):
        """
        A server answers once started; killed (SIGKILL) and started again, it
        answers on the same port, without the data it had.
        """
        self.assertEqual((yield self.server.execute("SET", "k", "v")), b"OK")
        self.assertEqual((yield self.server.execute("GET", "k")), b"v")
        port, pid = self.server.port, self.server.process.pid
        result = yield self.server.kill()
        self.assertEqual(result.signal, 9)
        yield self.server.start()
        self.assertEqual(self.server.port, port)
        self.assertNotEqual(self.server.process.pid, pid)
        self.assertIsNone((yield self.server.execute("GET", "k")))
        yield self.server.restart()
        self.assertEqual((yield self.server.execute("PING")), b"PONG")

    @inlineCallbacks
    def test_resp2(self):
        """
        Replies of every RESP2 type from a real server parse, and the
        commands txscales encodes (binary, str, int and float arguments)
        reach it intact.
        """
        client = yield connectWire(self.server.port)
        self.addCleanup(client.transport.loseConnection)
        value = bytes(range(256)) * 3
        replies = yield client.send(
            (b"SET", b"bin", value),
            (b"GET", b"bin"),
            ("SET", "cl\u00e9", "caf\u00e9"),
            (b"GET", "cl\u00e9".encode("utf-8")),
            (b"INCRBY", b"n", -12),
            (b"INCRBYFLOAT", b"f", 0.1),
            (b"INCRBYFLOAT", b"f", 1e-3),
            (b"HSET", b"h", b"a", 1, b"b", 2.5),
            (b"HGETALL", b"h"),
            (b"GET", b"missing"),
            (b"LPUSH", b"h", b"x"),
            (b"EVALSHA", b"0" * 40, 0),
            (b"PING",),
        )
        self.assertEqual(replies[:7], [b"OK", value, b"OK", "caf\u00e9".encode("utf-8"), -12, b"0.1", b"0.101"])
        self.assertEqual(replies[7:10], [2, [b"a", b"1", b"b", b"2.5"], None])
        self.assertIsInstance(replies[10], errors.WrongTypeError)
        self.assertIsInstance(replies[11], errors.NoScriptError)
        self.assertEqual(replies[12], b"PONG")

    @inlineCallbacks
    def test_resp3(self):
        """
        After C{HELLO 3}, the server's RESP3 replies parse: maps, sets,
        doubles, nulls, booleans, pushes.
        """
        client = yield connectWire(self.server.port)
        self.addCleanup(client.transport.loseConnection)
        [hello] = yield client.send((b"HELLO", 3))
        self.assertEqual(hello[b"proto"], 3)
        replies = yield client.send(
            (b"HSET", b"h", b"a", 1),
            (b"HGETALL", b"h"),
            (b"SADD", b"s", b"x"),
            (b"SMEMBERS", b"s"),
            (b"ZADD", b"z", 1.5, b"m"),
            (b"ZSCORE", b"z", b"m"),
            (b"GET", b"missing"),
            (b"EVAL", b"redis.setresp(3); return {double=2.25}", 0),
            (b"EVAL", b"redis.setresp(3); return false", 0),
            (b"EVAL", b"redis.setresp(3); return true", 0),
            (b"SUBSCRIBE", b"ch"),
        )
        self.assertEqual(replies[:7], [1, {b"a": b"1"}, 1, [b"x"], 1, 1.5, None])
        self.assertEqual(replies[7:10], [2.25, False, True])
        self.assertEqual(list(replies[10]), [b"subscribe", b"ch", 1])
        publisher = yield connectWire(self.server.port)
        self.addCleanup(publisher.transport.loseConnection)
        waiting = Deferred()
        client._waiting = (1, waiting)
        self.assertEqual((yield publisher.send((b"PUBLISH", b"ch", b"hi"))), [1])
        [push] = yield waiting
        self.assertEqual(list(push), [b"message", b"ch", b"hi"])
        self.assertEqual(type(push).__name__, "PushNotification")

    @inlineCallbacks
    def test_largeReplyRefused(self):
        """
        A reply larger than the reader's bound raises L{ReplyTooLargeError}
        before the reader holds much more than the bound.
        """
        client = yield connectWire(self.server.port)
        self.addCleanup(client.transport.loseConnection)
        yield client.send((b"SET", b"big", b"x" * (4 * 1024 * 1024)))
        client.reader = ReplyReader(maxReplyBytes=1024 * 1024)
        received = []
        original = client.reader.feed

        def feed(data):
            received.append(len(data))
            return original(data)

        client.reader.feed = feed
        lost = Deferred()
        client.connectionLost = lambda reason: lost.callback(None)
        client.transport.write(encodeCommand((b"GET", b"big")))
        yield lost
        self.assertIsInstance(client.error, errors.ReplyTooLargeError)
        self.assertLessEqual(sum(received), 1024 * 1024 + max(received))


class TimeoutStormTests(TestCase):
    """
    Tests for L{RedisConnection} against a real server.
    """

    timeout = 60

    @inlineCallbacks
    def test_timeoutStorm(self):
        """
        Commands with 1 ms timeouts, pipelined behind C{DEBUG SLEEP}s that
        make most of them time out, among commands without a timeout: no
        command ever gets another's reply, and every late reply is
        dropped.
        """
        server = RedisServer(reactor, self.addCleanup, args=("--enable-debug-command", "yes"))
        yield server.start()
        connection = yield connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", server.port, timeout=5), RedisConnection(reactor)
        )
        self.addCleanup(connection.close)
        right = wrong = timedOut = 0
        for round in range(20):
            sent = [(b"OK", connection.execute(b"DEBUG", b"SLEEP", b"0.003", timeout=0.001))]
            for i in range(50):
                value = b"%d-%d" % (round, i)
                sent.append((value, connection.execute(b"ECHO", value, timeout=0.001 if i % 5 else None)))
            results = yield DeferredList([d for _, d in sent], consumeErrors=True)
            for (expected, _), (ok, result) in zip(sent, results):
                if not ok:
                    result.trap(RequestTimeoutError)
                    timedOut += 1
                elif result == expected:
                    right += 1
                else:
                    wrong += 1
        self.assertEqual((yield connection.execute(b"ECHO", b"last")), b"last")
        self.assertEqual(wrong, 0)
        self.assertGreater(timedOut, 500)
        self.assertGreaterEqual(right, 200)
        self.assertEqual(connection.droppedReplies, timedOut)
        self.assertEqual(connection.pendingCount, 0)


class RedisClusterTests(TestCase):
    """
    Tests for L{RedisCluster} and for key slots against its nodes.
    """

    timeout = 60

    @inlineCallbacks
    def test_cluster(self):
        """
        Three masters serve all 16384 slots, each with one replica; every
        key's slot is the one the server computes (C{CLUSTER KEYSLOT}); a
        command sent to a node without the key's slot gets a typed MOVED to
        the master that has it, and a multi-key command across slots a
        typed CROSSSLOT.
        """
        cluster = RedisCluster(reactor, self.addCleanup)
        yield cluster.start()
        masters = yield cluster.masters()
        self.assertEqual(len(masters), 3)
        nodes = yield cluster.clusterNodes()
        self.assertEqual(len(nodes), 6)
        ranges = sorted(r for n in nodes for r in n["slots"])
        self.assertEqual(ranges[0][0], 0)
        self.assertEqual(ranges[-1][1], 16383)
        self.assertEqual(sum(last - first + 1 for first, last in ranges), 16384)
        for master in masters:
            self.assertEqual(len((yield cluster.replicasOf(master))), 1)

        client = yield connectWire(masters[0].port)
        self.addCleanup(client.transport.loseConnection)
        replies = yield client.send(*[(b"CLUSTER", b"KEYSLOT", key) for key in SLOT_KEYS])
        self.assertEqual(replies, [keySlot(key) for key in SLOT_KEYS])

        owner = {}
        for n in nodes:
            for first, last in n["slots"]:
                owner[(first, last)] = n["address"]
        slot = keySlot(b"foo")
        [address] = [a for (first, last), a in owner.items() if first <= slot <= last]
        other = next(m for m in masters if m.address != address)
        client2 = yield connectWire(other.port)
        self.addCleanup(client2.transport.loseConnection)
        moved, crossSlot = yield client2.send((b"GET", b"foo"), (b"MGET", b"foo", b"bar"))
        self.assertIsInstance(moved, errors.MovedError)
        self.assertEqual((moved.slot, "%s:%d" % (moved.host, moved.port)), (slot, address))
        self.assertIsInstance(crossSlot, errors.CrossSlotError)

    def test_parseClusterNodes(self):
        """
        C{CLUSTER NODES} lines give each node's address, flags, master and
        slot ranges (migrating slots left out).
        """
        text = (
            "e7d1 127.0.0.1:30004@40004 slave 67ed 0 1426238317239 4 connected\n"
            "67ed 127.0.0.1:30002@40002 myself,master - 0 0 2 connected 5461-10922 11000 [11001->-abcd]\n"
        )
        self.assertEqual(
            parseClusterNodes(text),
            [
                {"id": "e7d1", "address": "127.0.0.1:30004", "flags": {"slave"}, "master": "67ed",
                 "connected": True, "slots": []},
                {"id": "67ed", "address": "127.0.0.1:30002", "flags": {"myself", "master"}, "master": None,
                 "connected": True, "slots": [(5461, 10922), (11000, 11000)]},
            ],
        )
