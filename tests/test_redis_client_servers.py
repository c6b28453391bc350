"""
Tests for L{txscales.redis.Redis}'s client against real redis-server
processes (C{tests._redis}).
"""

from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from txscales.errors import ConnectionLostError, RequestTimeoutError
from txscales.redis import (
    CrossShardError,
    KeylessCommandError,
    Redis,
    RedisHandshakeError,
    RedisReplyError,
    ServerDownError,
    WatchConflictError,
    WrongPassError,
    WrongTypeError,
)
from txscales.redis._hashing import KetamaRing, ketamaName
from tests._redis import RedisServer


class _ServerTestMixin:
    """
    One redis-server per test, and clients closed at cleanup.
    """

    timeout = 30

    @inlineCallbacks
    def setUp(self):
        self.server = RedisServer(reactor, self.addCleanup)
        yield self.server.start()

    def client(self, dest=None, **options):
        options.setdefault("registry", CollectorRegistry())
        client = Redis.newClient(dest or self.server.dest, reactor=reactor, **options)
        self.addCleanup(client.close)
        return client


class HelpersTestsMixin(_ServerTestMixin):
    """
    Every typed helper against a real server, with the protocol of
    C{protocol}.
    """

    protocol = 2

    @inlineCallbacks
    def test_strings(self):
        """
        get, set with ex/px/nx/xx, mget and mset give typed replies.
        """
        c = self.client(protocol=self.protocol)
        self.assertIs((yield c.set("k", "v")), True)
        self.assertEqual((yield c.get("k")), b"v")
        self.assertIsNone((yield c.get("missing")))
        self.assertIs((yield c.set("k", "w", nx=True)), False)
        self.assertIs((yield c.set("k", "w", xx=True)), True)
        self.assertIs((yield c.set("new", "x", xx=True)), False)
        yield c.set("e", 1, ex=100)
        self.assertTrue(0 < (yield c.ttl("e")) <= 100)
        yield c.set("p", 1, px=50000)
        self.assertTrue(0 < (yield c.ttl("p")) <= 50)
        self.assertIs((yield c.mset({"a": 1, "b": b"2"})), True)
        self.assertEqual((yield c.mget("a", "missing", "b")), [b"1", None, b"2"])

    @inlineCallbacks
    def test_keysAndCounters(self):
        """
        delete, exists, expire, ttl, incr, incrby and decr.
        """
        c = self.client(protocol=self.protocol)
        self.assertEqual((yield c.incr("n")), 1)
        self.assertEqual((yield c.incrby("n", 10)), 11)
        self.assertEqual((yield c.decr("n")), 10)
        self.assertEqual((yield c.exists("n", "n", "none")), 2)
        self.assertEqual((yield c.ttl("n")), -1)
        self.assertIs((yield c.expire("n", 30)), True)
        self.assertIs((yield c.expire("none", 30)), False)
        self.assertEqual((yield c.delete("n", "none")), 1)
        self.assertEqual((yield c.ttl("n")), -2)

    @inlineCallbacks
    def test_hashes(self):
        """
        hset, hget, hgetall (a dict) and hdel.
        """
        c = self.client(protocol=self.protocol)
        self.assertEqual((yield c.hset("h", "f", "1", mapping={"g": 2})), 2)
        self.assertEqual((yield c.hget("h", "f")), b"1")
        self.assertEqual((yield c.hgetall("h")), {b"f": b"1", b"g": b"2"})
        self.assertEqual((yield c.hgetall("none")), {})
        self.assertEqual((yield c.hdel("h", "f", "x")), 1)

    @inlineCallbacks
    def test_lists(self):
        """
        lpush, rpush, lpop, rpop and lrange.
        """
        c = self.client(protocol=self.protocol)
        self.assertEqual((yield c.rpush("l", "b", "c")), 2)
        self.assertEqual((yield c.lpush("l", "a")), 3)
        self.assertEqual((yield c.lrange("l", 0, -1)), [b"a", b"b", b"c"])
        self.assertEqual((yield c.lpop("l")), b"a")
        self.assertEqual((yield c.rpop("l")), b"c")
        self.assertIsNone((yield c.lpop("none")))

    @inlineCallbacks
    def test_sets(self):
        """
        sadd, srem and smembers (a set).
        """
        c = self.client(protocol=self.protocol)
        self.assertEqual((yield c.sadd("s", "a", "b", "a")), 2)
        self.assertEqual((yield c.srem("s", "a", "x")), 1)
        self.assertEqual((yield c.smembers("s")), {b"b"})

    @inlineCallbacks
    def test_sortedSets(self):
        """
        zadd, zrange (with scores as floats) and zscore.
        """
        c = self.client(protocol=self.protocol)
        self.assertEqual((yield c.zadd("z", {"a": 1, "b": 2.5})), 2)
        self.assertEqual((yield c.zrange("z", 0, -1)), [b"a", b"b"])
        self.assertEqual((yield c.zrange("z", 0, -1, withscores=True)), [(b"a", 1.0), (b"b", 2.5)])
        self.assertEqual((yield c.zscore("z", "b")), 2.5)
        self.assertIsNone((yield c.zscore("z", "x")))

    @inlineCallbacks
    def test_publishAndExecute(self):
        """
        publish counts the subscribers; execute sends any command; an error
        reply fails its command only.
        """
        c = self.client(protocol=self.protocol)
        self.assertEqual((yield c.publish("chan", "hello")), 0)
        self.assertEqual((yield c.execute("PING")), b"PONG")
        yield c.set("str", "x")
        yield self.assertFailure(c.lpush("str", "y"), WrongTypeError)
        yield self.assertFailure(c.execute("NOSUCHCOMMAND"), RedisReplyError)
        self.assertEqual((yield c.get("str")), b"x")

    @inlineCallbacks
    def test_decodeResponses(self):
        """
        decodeResponses=True gives str.
        """
        c = self.client(protocol=self.protocol, decodeResponses=True)
        yield c.hset("h", "f", "é")
        self.assertEqual((yield c.hgetall("h")), {"f": "é"})

    @inlineCallbacks
    def test_aclUser(self):
        """
        An ACL user authenticates with username and password; a wrong
        password fails with RedisHandshakeError carrying WrongPassError.
        """
        yield self.server.execute("ACL", "SETUSER", "alice", "on", ">secret", "~app:*", "+@all")
        c = self.client(protocol=self.protocol, username="alice", password="secret", clientName="app1", db=2)
        yield c.set("app:x", 1)
        self.assertEqual((yield c.execute("ACL", "WHOAMI")), b"alice")
        self.assertEqual((yield c.execute("CLIENT", "GETNAME")), b"app1")
        self.assertEqual((yield c.execute("DBSIZE")), 1)
        bad = self.client(protocol=self.protocol, username="alice", password="wrong")
        error = yield self.assertFailure(bad.get("app:x"), RedisHandshakeError)
        self.assertIsInstance(error.reason, WrongPassError)
        self.assertFalse(error.mayHaveReachedServer)
        yield self.assertFailure(bad.get("app:x"), ServerDownError)

    @inlineCallbacks
    def test_pipeline(self):
        """
        A pipeline's replies come in order; raiseOnError=False gives errors
        in the list.
        """
        c = self.client(protocol=self.protocol)
        p = c.pipeline().set("a", 1).incr("a").command("GET", "a").hgetall("a")
        self.assertEqual(len(p), 4)
        replies = yield p.execute(raiseOnError=False)
        self.assertEqual(replies[:3], [True, 2, b"2"])
        self.assertIsInstance(replies[3], WrongTypeError)
        yield self.assertFailure(c.pipeline().hgetall("a").get("a").execute(), WrongTypeError)


class HelpersResp2Tests(HelpersTestsMixin, TestCase):
    """
    The helpers over RESP2.
    """


class HelpersResp3Tests(HelpersTestsMixin, TestCase):
    """
    The helpers over RESP3 (HELLO 3).
    """

    protocol = 3

    @inlineCallbacks
    def test_resp3(self):
        """
        The connection speaks RESP3: HELLO's protocol is 3.
        """
        c = self.client(protocol=3)
        hello = yield c.execute("HELLO", 3)
        self.assertEqual(hello[b"proto"], 3)


class TransactionTests(_ServerTestMixin, TestCase):
    """
    Tests for L{RedisClient.transaction}.
    """

    @inlineCallbacks
    def test_watchConflict(self):
        """
        A watched key changed by a second connection before EXEC makes the
        transaction run again; its result is the second attempt's.
        """
        c = self.client()
        yield c.set("balance", 10)
        other = yield self.server.connect()
        self.addCleanup(other.close)
        attempts = []

        @inlineCallbacks
        def debit(tx):
            balance = int((yield tx.get("balance")))
            attempts.append(balance)
            if len(attempts) == 1:
                yield other.execute("INCRBY", "balance", 5)
            tx.multi().set("balance", balance - 3).get("balance")

        replies = yield c.transaction(debit, watch=["balance"])
        self.assertEqual(attempts, [10, 15])
        self.assertEqual(replies, [True, b"12"])
        self.assertEqual((yield c.get("balance")), b"12")

    @inlineCallbacks
    def test_conflictEveryTime(self):
        """
        After maxTransactionRetries conflicts, WatchConflictError; nothing
        queued ran.
        """
        c = self.client(maxTransactionRetries=1)
        other = yield self.server.connect()
        self.addCleanup(other.close)

        @inlineCallbacks
        def change(tx):
            yield other.execute("INCR", "w")
            tx.multi().set("done", 1)

        yield self.assertFailure(c.transaction(change, watch=["w"]), WatchConflictError)
        self.assertEqual((yield c.get("w")), b"2")
        self.assertIsNone((yield c.get("done")))


class ShardingTests(TestCase):
    """
    A client sharded over 3 servers.
    """

    timeout = 60

    @inlineCallbacks
    def setUp(self):
        self.servers = [RedisServer(reactor, self.addCleanup) for _ in range(3)]
        yield DeferredList([s.start() for s in self.servers], fireOnOneErrback=True, consumeErrors=True)
        self.dest = "tcp://" + ",".join(s.address for s in self.servers)
        self.client = Redis.newClient(self.dest, reactor=reactor, registry=CollectorRegistry(),
                                      backoff=(0.05, 0.1), timeout=5.0)
        self.addCleanup(self.client.close)
        self.ring = KetamaRing([(ketamaName("127.0.0.1", s.port), 1, s) for s in sorted(
            self.servers, key=lambda s: s.port)])

    @inlineCallbacks
    def test_keysOnTheirServers(self):
        """
        Each key is on the server KetamaRing picks, every server gets some,
        and split mget/mset/delete/exists join in order.
        """
        keys = ["key:%d" % i for i in range(300)]
        yield self.client.mset({k: k for k in keys})
        counts = []
        for server in self.servers:
            counts.append((yield server.execute("DBSIZE")))
        self.assertEqual(sum(counts), 300)
        self.assertTrue(all(n > 50 for n in counts), counts)
        for key in keys[:60]:
            server = self.ring.nodeFor(key)
            self.assertEqual((yield server.execute("GET", key)), key.encode())
            self.assertEqual(self.client.nodeFor(key).address, ("127.0.0.1", server.port))
        values = yield self.client.mget(*keys)
        self.assertEqual(values, [k.encode() for k in keys])
        self.assertEqual((yield self.client.exists(*keys)), 300)
        self.assertEqual((yield self.client.delete(*keys[:100])), 100)
        replies = yield self.client.pipeline().get(keys[0]).get(keys[150]).get(keys[299]).execute()
        self.assertEqual(replies, [None, keys[150].encode(), keys[299].encode()])

    @inlineCallbacks
    def test_keylessAndCrossShard(self):
        """
        A keyless command, and a command or transaction over keys of
        several servers, fail with typed errors, nothing sent.
        """
        yield self.assertFailure(self.client.execute("PING"), KeylessCommandError)
        keys = ["a%d" % i for i in range(20)]
        first = self.ring.nodeFor(keys[0])
        other = next(k for k in keys if self.ring.nodeFor(k) is not first)
        error = yield self.assertFailure(self.client.execute("DEL", keys[0], other), CrossShardError)
        self.assertFalse(error.mayHaveReachedServer)
        yield self.assertFailure(self.client.pipeline().delete(keys[0], other).execute(), CrossShardError)
        yield self.assertFailure(self.client.transaction(lambda tx: None, watch=[keys[0], other]), CrossShardError)

        def write(tx):
            tx.multi().set(other, 1)

        yield self.assertFailure(self.client.transaction(write, watch=[keys[0]]), CrossShardError)
        yield self.client.transaction(lambda tx: tx.multi().set(keys[0], 1), watch=[keys[0]])
        self.assertEqual((yield first.execute("GET", keys[0])), b"1")

    @inlineCallbacks
    def test_killUnderLoad(self):
        """
        kill -9 of one server: the commands in flight on it fail with
        ConnectionLostError (mayHaveReachedServer), those of the other
        servers succeed, its keys fail fast with ServerDownError while it
        is down and succeed again once it is back.
        """
        keys = ["load:%d" % i for i in range(300)]
        victim = self.servers[1]
        yield self.client.mset({k: 1 for k in keys})
        # The victim holds every command from now on: those sent to it stay
        # in flight until it is killed.
        yield victim.execute("CLIENT", "PAUSE", "10000", "ALL")
        ds = [self.client.incr(key) for key in keys]
        yield DeferredList([d for d, k in zip(ds, keys) if self.ring.nodeFor(k) is not victim])
        yield victim.kill()
        outcomes = [value for _, value in (yield DeferredList(ds, consumeErrors=True))]
        onVictim = [self.ring.nodeFor(k) is victim for k in keys]
        failed = [o for o, v in zip(outcomes, onVictim) if v]
        succeeded = [o for o, v in zip(outcomes, onVictim) if not v]
        self.assertTrue(failed)
        self.assertEqual(succeeded, [2] * len(succeeded))
        for outcome in failed:
            self.assertIsInstance(outcome.value, ConnectionLostError)
            self.assertTrue(outcome.value.mayHaveReachedServer)
        victimKey = keys[onVictim.index(True)]
        otherKey = keys[onVictim.index(False)]
        yield self.assertFailure(self.client.get(victimKey), ServerDownError)
        self.assertEqual((yield self.client.get(otherKey)), b"2")
        yield victim.start()
        for _ in range(100):
            try:
                yield self.client.set(victimKey, "back")
            except ServerDownError:
                yield deferLater(reactor, 0.05, lambda: None)
            else:
                break
        self.assertEqual((yield victim.execute("GET", victimKey)), b"back")


class TimeoutTests(_ServerTestMixin, TestCase):
    """
    The client's timeout and metrics against a real server.
    """

    @inlineCallbacks
    def test_timeoutKeepsSlot(self):
        """
        A command that timed out keeps its place: the command after it gets
        its own reply once the late one arrives; the metrics count the
        timeout.
        """
        registry = CollectorRegistry()
        c = self.client(timeout=0.5, registry=registry, label="t")
        yield c.set("k", "v")
        # The server holds every command for 0.8 s: INCR times out at 0.5 s,
        # GET is answered after it.
        yield self.server.execute("CLIENT", "PAUSE", "800", "ALL")
        yield self.assertFailure(c.execute("INCR", "n"), RequestTimeoutError)
        after = c.get("k")
        self.assertEqual((yield after), b"v")
        self.assertEqual(c.nodeFor("k").connection.droppedReplies, 1)
        sample = registry.get_sample_value
        self.assertEqual(sample("txscales_redis_client_calls_total", {"client": "t", "command": "INCR"}), 1)
        self.assertEqual(sample("txscales_redis_client_errors_total",
                                {"client": "t", "command": "INCR", "error": "RequestTimeoutError"}), 1)
        self.assertEqual(sample("txscales_redis_client_latency_seconds_count", {"client": "t", "command": "GET"}), 1)
