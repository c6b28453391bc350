"""
Tests for the Redis client's blocking commands against real redis-server
processes (C{tests._redis}).
"""

import json
import os
import sys

from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, DeferredList, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from txscales.errors import RequestTimeoutError
from txscales.redis import Redis, TooManyPendingCommandsError
from tests._redis import RedisServer

HERE = os.path.dirname(os.path.abspath(__file__))


class BlockingCommandsTestsMixin:
    """
    Blocking commands against a real server, with the protocol of
    C{protocol}.
    """

    timeout = 60
    protocol = 2

    @inlineCallbacks
    def setUp(self):
        self.server = RedisServer(reactor, self.addCleanup)
        yield self.server.start()

    def client(self, **options):
        options.setdefault("registry", CollectorRegistry())
        options.setdefault("protocol", self.protocol)
        client = Redis.newClient(self.server.dest, reactor=reactor, **options)
        self.addCleanup(client.close)
        return client

    @inlineCallbacks
    def test_notStalled(self):
        """
        1,000 commands sent while a BLPOP waits all complete before the
        BLPOP is served by a later LPUSH: the BLPOP did not hold their
        connection.
        """
        c = self.client(timeout=5.0)
        done = []
        blpop = c.blpop("q", timeout=0).addCallback(lambda reply: done.append("blpop") or reply)
        raw = c.execute("BLPOP", "q2", 0).addCallback(lambda reply: done.append("raw") or reply)
        incrs = [c.incr("n").addCallback(lambda _: done.append("incr")) for _ in range(1000)]
        yield DeferredList(incrs, fireOnOneErrback=True)
        self.assertEqual(done, ["incr"] * 1000)
        self.assertEqual((yield c.get("n")), b"1000")
        yield c.lpush("q", "x")
        yield c.lpush("q2", "y")
        self.assertEqual((yield blpop), (b"q", b"x"))
        self.assertEqual((yield raw), [b"q2", b"y"])
        self.assertEqual(done[-2:], ["blpop", "raw"])

    @inlineCallbacks
    def test_helpers(self):
        """
        brpop, blmove, bzpopmin and bzpopmax give typed replies, None when
        the server's timeout passes.
        """
        c = self.client(timeout=5.0)
        yield c.rpush("l", "a", "b")
        self.assertEqual((yield c.brpop("none", "l", timeout=1)), (b"l", b"b"))
        self.assertEqual((yield c.blmove("l", "m", "LEFT", "RIGHT", timeout=1)), b"a")
        self.assertEqual((yield c.lrange("m", 0, -1)), [b"a"])
        self.assertIsNone((yield c.blmove("l", "m", timeout=0.05)))
        self.assertIsNone((yield c.blpop("none", timeout=0.05)))
        yield c.zadd("z", {"low": 1, "high": 2.5})
        self.assertEqual((yield c.bzpopmin("z", timeout=1)), (b"z", b"low", 1.0))
        self.assertEqual((yield c.bzpopmax("z", timeout=1)), (b"z", b"high", 2.5))
        self.assertIsNone((yield c.bzpopmax("z", timeout=0.05)))
        entry = yield c.execute("XADD", "s", "*", "f", "v")
        reply = yield c.execute("XREAD", "BLOCK", 1000, "STREAMS", "s", "0")
        flat = reply if isinstance(reply, list) else list(reply.items())
        self.assertEqual(flat[0][1][0][0], entry)

    @inlineCallbacks
    def test_poolExhausted(self):
        """
        With blockingPoolSize=2 and maxPending=2, two BLPOPs hold the two
        connections, two more wait in order, a fifth fails with
        TooManyPendingCommandsError; each LPUSH frees a connection for the
        next waiting command.
        """
        c = self.client(blockingPoolSize=2, maxPending=2)
        ds = [c.blpop("q%d" % i, timeout=0) for i in range(4)]
        error = yield self.assertFailure(c.blpop("q9", timeout=0), TooManyPendingCommandsError)
        self.assertFalse(error.mayHaveReachedServer)
        pool = c._pools.poolFor(c.nodeFor("q"))
        self.assertEqual(pool.waitingCount, 2)
        # q2 waits for a connection: a value pushed there stays in the list.
        yield self.server.execute("LPUSH", "q2", "early")
        self.assertEqual((yield self.server.execute("LLEN", "q2")), 1)
        yield self.server.execute("LPUSH", "q0", "a")
        self.assertEqual((yield ds[0]), (b"q0", b"a"))
        self.assertEqual((yield ds[2]), (b"q2", b"early"))
        yield self.server.execute("LPUSH", "q1", "b")
        yield self.server.execute("LPUSH", "q3", "c")
        self.assertEqual((yield ds[1]), (b"q1", b"b"))
        self.assertEqual((yield ds[3]), (b"q3", b"c"))
        self.assertEqual(pool.connectionCount, 2)
        self.assertEqual(pool.closedAfterTimeout, 0)

    @inlineCallbacks
    def test_waitForConnectionBounded(self):
        """
        A blocking command waits for a pooled connection at most the
        client's timeout, then fails with RequestTimeoutError, not sent.
        """
        c = self.client(blockingPoolSize=1, timeout=0.2)
        running = c.blpop("q", timeout=3)
        error = yield self.assertFailure(c.blpop("r", timeout=3), RequestTimeoutError)
        self.assertFalse(error.mayHaveReachedServer)
        yield self.server.execute("LPUSH", "q", "x")
        self.assertEqual((yield running), (b"q", b"x"))

    @inlineCallbacks
    def test_cancelledNotReused(self):
        """
        A cancelled BLPOP's connection is closed, not given to the next
        command: the value pushed after the cancel goes to the next BLPOP,
        and the server sees one blocked client at a time.
        """
        c = self.client(blockingPoolSize=1, timeout=5.0)
        yield c.set("k", "v")
        first = c.blpop("q", timeout=0)
        yield self.waitForBlocked(1)
        first.cancel()
        yield self.assertFailure(first, CancelledError)
        yield self.waitForBlocked(0)
        second = c.blpop("q", timeout=0)
        yield self.waitForBlocked(1)
        yield self.server.execute("LPUSH", "q", "x")
        self.assertEqual((yield second), (b"q", b"x"))
        pool = c._pools.poolFor(c.nodeFor("q"))
        self.assertEqual(pool.closedAfterTimeout, 1)

    @inlineCallbacks
    def test_timedOutNotReused(self):
        """
        A BLPOP that timed out (its server timeout plus the client's, the
        server paused) closes its connection: the value pushed after it
        goes to the next BLPOP, not to the timed-out one.
        """
        c = self.client(blockingPoolSize=1, timeout=0.1)
        yield self.server.execute("CLIENT", "PAUSE", "1000", "WRITE")
        error = yield self.assertFailure(c.blpop("q", timeout=0.1), RequestTimeoutError)
        self.assertEqual(error.timeout, 0.2)
        # Both held by the pause until it ends.
        push = self.server.execute("LPUSH", "q", "x")
        second = c.blpop("q", timeout=5)
        yield push
        self.assertEqual((yield second), (b"q", b"x"))
        self.assertEqual(c._pools.poolFor(c.nodeFor("q")).closedAfterTimeout, 1)

    @inlineCallbacks
    def waitForBlocked(self, count):
        """
        Wait until the server has C{count} clients blocked.
        """
        for _ in range(250):
            info = yield self.server.execute("INFO", "clients")
            if b"blocked_clients:%d\r\n" % (count,) in info:
                return
            yield deferLater(reactor, 0.02, lambda: None)
        self.fail("the server never had %d blocked clients: %r" % (count, info))


class BlockingCommandsResp2Tests(BlockingCommandsTestsMixin, TestCase):
    """
    Blocking commands over RESP2.
    """


class BlockingCommandsResp3Tests(BlockingCommandsTestsMixin, TestCase):
    """
    Blocking commands over RESP3.
    """

    protocol = 3


class BlockingClientTests(TestCase):
    """
    A Redis client used through L{txscales.blocking.BlockingClient} from a
    plain script.
    """

    timeout = 60

    @inlineCallbacks
    def test_blockingClient(self):
        """
        Helpers return their values or raise their typed errors, a pipeline
        and a subscription work through their blocking views, a BLPOP is
        served by another thread's LPUSH, a call after close raises
        ClientClosedError.
        """
        server = RedisServer(reactor, self.addCleanup)
        yield server.start()
        out, err, code = yield getProcessOutputAndValue(
            sys.executable, [os.path.join(HERE, "peers", "blocking_redis.py"), server.dest],
            env=dict(os.environ), path=os.path.dirname(HERE))
        self.assertEqual(code, 0, err.decode("utf-8", "replace"))
        result = json.loads(out.decode("utf-8").strip().splitlines()[-1])
        self.assertEqual(result, {
            "set": True,
            "get": "v",
            "pipeline": [True, 2, "2"],
            "wrongType": "WrongTypeError",
            "blpop": ["q", "pushed"],
            "active": True,
            "receivers": 1,
            "message": ["news", "hello"],
            "afterUnsubscribe": [False, 0],
            "afterClose": "ClientClosedError",
        })
