"""
Tests for L{txscales.redis.ClusterClient} against a real Redis Cluster of 3
masters with a replica each (C{tests._redis.RedisCluster}): every helper,
C{MOVED} during a resharding, C{ASK} during a migration, and a failover.
"""

from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, DeferredQueue, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from txscales.errors import ConnectionLostError, RequestTimeoutError
from txscales.redis import ClusterClient, CrossSlotError, KeylessCommandError, Redis
from txscales.redis._slots import keySlot
from tests._redis import REDIS_CLI, RedisCluster
from tests._twistd import runPeer
from tests.test_redis_client_servers import HelpersTestsMixin


def sleep(seconds):
    """
    @return: a Deferred firing after C{seconds} of the reactor.
    """
    return deferLater(reactor, seconds, lambda: None)


class _ClusterTestMixin:
    """
    A Redis Cluster per test, and clients closed at cleanup.
    """

    timeout = 120

    @inlineCallbacks
    def setUp(self):
        self.cluster = RedisCluster(reactor, self.addCleanup)
        yield self.cluster.start()

    def client(self, **options):
        options.setdefault("registry", CollectorRegistry())
        options.setdefault("timeout", 5.0)
        client = Redis.newClient(self.cluster.dest, reactor=reactor, **options)
        self.addCleanup(client.close)
        return client

    @inlineCallbacks
    def ids(self):
        """
        @return: a Deferred firing with a dict of the nodes' ids by address.
        """
        nodes = yield self.cluster.clusterNodes()
        return {n["address"]: n["id"] for n in nodes}

    @inlineCallbacks
    def ownerOf(self, slot):
        """
        @return: a Deferred firing with the L{RedisServer} serving C{slot}.
        """
        nodes = yield self.cluster.clusterNodes()
        for n in nodes:
            if "master" in n["flags"] and any(a <= slot <= b for a, b in n["slots"]):
                return self.cluster.node(n["address"])


class HelpersTests(_ClusterTestMixin, TestCase):
    """
    The typed helpers, pipelines and transactions through the cluster.
    """

    @inlineCallbacks
    def flush(self):
        for master in (yield self.cluster.masters()):
            yield master.execute("FLUSHALL")

    @inlineCallbacks
    def test_helpers(self):
        """
        Every helper of the single-server tests gives the same replies
        through the cluster, over RESP2 and RESP3.
        """
        names = ["test_strings", "test_keysAndCounters", "test_hashes", "test_lists", "test_sets",
                 "test_sortedSets", "test_publishAndExecute", "test_decodeResponses", "test_pipeline"]
        for protocol in (2, 3):
            self.protocol = protocol
            for name in names:
                yield getattr(HelpersTestsMixin, name)(self)
                yield self.flush()

    @inlineCallbacks
    def test_keysOnTheirMasters(self):
        """
        Each key is on the master of its slot, every master gets some, and
        mget/mset/delete/exists split per slot join in order.
        """
        c = self.client()
        keys = ["key:%d" % i for i in range(200)]
        yield c.mset({k: k for k in keys})
        counts = []
        for master in (yield self.cluster.masters()):
            counts.append((yield master.execute("DBSIZE")))
        self.assertEqual(sum(counts), 200)
        self.assertTrue(all(n > 30 for n in counts), counts)
        for key in keys[:20]:
            owner = yield self.ownerOf(keySlot(key))
            self.assertEqual((yield owner.execute("GET", key)), key.encode())
            self.assertEqual(c.nodeFor(key).address, ("127.0.0.1", owner.port))
        self.assertEqual((yield c.mget(*keys)), [k.encode() for k in keys])
        self.assertEqual((yield c.exists(*keys)), 200)
        self.assertEqual((yield c.delete(*keys[:50])), 50)
        replies = yield c.pipeline().get(keys[0]).get(keys[100]).mget("{t}a", "{t}b").execute()
        self.assertEqual(replies, [None, keys[100].encode(), [None, None]])
        self.assertEqual(len(c.nodes), 3)
        self.assertEqual(c.refreshes, 1)

    @inlineCallbacks
    def test_crossSlot(self):
        """
        Commands, pipelines and transactions over keys of several slots
        fail with CrossSlotError before anything is sent; over one slot
        (hash tags), they run.
        """
        c = self.client()
        yield c.set("a", 1)
        for d in [c.execute("RENAME", "a", "b"), c.execute("SUNIONSTORE", "d", "s1", "s2"),
                  c.pipeline().set("x", 1).mget("a", "b").execute(),
                  c.transaction(lambda tx: None, watch=["a", "b"]),
                  c.transaction(lambda tx: tx.multi().set("b", 1), watch=["a"])]:
            error = yield self.assertFailure(d, CrossSlotError)
            self.assertFalse(error.mayHaveReachedServer)
        self.assertIsNone((yield c.get("x")))
        self.assertEqual((yield c.get("a")), b"1")
        yield self.assertFailure(c.transaction(lambda tx: None), KeylessCommandError)
        yield c.set("{u}a", 1)
        yield c.execute("RENAME", "{u}a", "{u}b")
        self.assertEqual((yield c.get("{u}b")), b"1")

    @inlineCallbacks
    def test_watchConflict(self):
        """
        A transaction over hash-tagged keys runs on their master and runs
        again after a WATCH conflict made by a second connection.
        """
        c = self.client()
        yield c.set("{acct}balance", 10)
        owner = yield self.ownerOf(keySlot("acct"))
        other = yield owner.connect()
        self.addCleanup(other.close)
        attempts = []

        @inlineCallbacks
        def debit(tx):
            balance = int((yield tx.get("{acct}balance")))
            attempts.append(balance)
            if len(attempts) == 1:
                yield other.execute("INCRBY", "{acct}balance", 5)
            tx.multi().set("{acct}balance", balance - 3).get("{acct}balance").incr("{acct}count")

        replies = yield c.transaction(debit, watch=["{acct}balance"])
        self.assertEqual(attempts, [10, 15])
        self.assertEqual(replies, [True, b"12", 1])


class PubSubAndBlockingTests(_ClusterTestMixin, TestCase):
    """
    Pub/sub and blocking commands through the cluster.
    """

    @inlineCallbacks
    def test_pubSubOnce(self):
        """
        Channels and patterns subscribed through the cluster get each
        message once, whichever master it was published on.
        """
        c = self.client()
        received = DeferredQueue()
        yield c.subscribe("ch:a", "ch:b", onMessage=lambda *m: received.put(m))
        yield c.psubscribe("p.*", onMessage=lambda *m: received.put(m))
        masters = yield self.cluster.masters()
        yield c.publish("ch:a", "1")
        for master in masters:
            yield master.execute("PUBLISH", "ch:b", "via %d" % (master.port,))
        yield c.publish("p.x", "2")
        # A message published on another master crosses the cluster bus, in
        # order per master: once each master's "end" arrived, every earlier
        # message (and any duplicate) did too.
        for master in masters:
            yield master.execute("PUBLISH", "ch:a", "end %d" % (master.port,))
        messages = []
        ends = set()
        while len(ends) < len(masters):
            message = yield received.get()
            if message[1].startswith(b"end "):
                ends.add(message)
            else:
                messages.append(message)
        expected = [(b"ch:a", b"1"), (b"p.*", b"p.x", b"2")] + [(b"ch:b", b"via %d" % (m.port,)) for m in masters]
        self.assertEqual(sorted(messages), sorted(expected))
        self.assertEqual(len(received.pending), 0)

    @inlineCallbacks
    def test_blpop(self):
        """
        A BLPOP waits on its key's master, on a connection of its own,
        while other commands go on, and gets what another client pushes.
        """
        c = self.client(blockingPoolSize=2)
        other = self.client()
        popped = c.blpop("{q}jobs", timeout=10)
        for i in range(100):
            yield c.set("k%d" % (i,), i)
        self.assertNoResult(popped)
        yield other.rpush("{q}jobs", "job")
        self.assertEqual((yield popped), (b"{q}jobs", b"job"))


class _Load:
    """
    Commands going on while the cluster changes: each worker alternates a
    SET of its own key with a GET of a key whose value never changes, so
    that a reply given to the wrong command is seen.
    """

    def __init__(self, client, keys):
        self.client = client
        self.keys = keys
        self.running = True
        self.done = 0
        self.failures = []
        self.wrong = []

    @inlineCallbacks
    def prepare(self):
        yield self.client.mset({"fixed:" + k: "value-of-" + k for k in self.keys})

    @inlineCallbacks
    def worker(self, key, successes):
        n = 0
        while self.running:
            n += 1
            for command, expected in [(self.client.set(key, "%s-%d" % (key, n)), True),
                                      (self.client.get("fixed:" + key), ("value-of-" + key).encode())]:
                try:
                    reply = yield command
                except Exception as e:
                    self.failures.append(e)
                    successes[key] = 0
                    if len(self.failures) > 1000:
                        self.running = False
                    # Not a busy loop when commands fail at once.
                    yield sleep(0.01)
                else:
                    self.done += 1
                    successes[key] = successes.get(key, 0) + 1
                    if reply != expected:
                        self.wrong.append((key, reply, expected))

    def start(self):
        self.successes = {}
        self.workers = DeferredList([self.worker(k, self.successes) for k in self.keys], consumeErrors=True)

    @inlineCallbacks
    def stop(self):
        self.running = False
        results = yield self.workers
        for ok, result in results:
            if not ok:
                raise AssertionError("a worker failed: %s" % (result,))


class ReshardTests(_ClusterTestMixin, TestCase):
    """
    MOVED and ASK while slots move between masters.
    """

    @inlineCallbacks
    def test_reshardUnderLoad(self):
        """
        redis-cli --cluster reshard of slots holding keys in use, while
        commands go on: they follow MOVED and ASK, 0 wrong replies, 0
        failed.
        """
        c = self.client(backoff=(0.02, 0.2), maxClusterRetries=20)
        masters = yield self.cluster.masters()
        ids = yield self.ids()
        source, target = masters[0], masters[1]
        # redis-cli moves the source's lowest slots first: use keys there.
        keys = []
        i = 0
        while len(keys) < 40:
            key = "r%d" % (i,)
            if keySlot(key) < 300:
                keys.append(key)
            i += 1
        load = _Load(c, keys)
        yield load.prepare()
        load.start()
        yield sleep(0.2)
        before = load.done
        result = yield runPeer([REDIS_CLI, "--cluster", "reshard", source.address, "--cluster-from",
                                ids[source.address], "--cluster-to", ids[target.address], "--cluster-slots", "300",
                                "--cluster-yes"], reactor, timeout=60)
        self.assertEqual(result.exitCode, 0, result.output)
        during = load.done - before
        yield sleep(0.3)
        yield load.stop()
        for key in keys:
            self.assertEqual((yield self.ownerOf(keySlot(key))).address, target.address)
        print("\nreshard of 300 slots: %d commands during, %d in all, %d failed (%s), %d wrong, %d refreshes"
              % (during, load.done, len(load.failures), sorted(set(repr(e)[:200] for e in load.failures)),
                 len(load.wrong), c.refreshes))
        self.assertEqual(load.wrong, [])
        self.assertEqual(load.failures, [])
        self.assertTrue(during > 0)
        self.assertTrue(c.refreshes > 1)
        for key in keys:
            self.assertEqual(c.slots[keySlot(key)], ("127.0.0.1", target.port))

    @inlineCallbacks
    def test_ask(self):
        """
        During a migration driven by hand, a key moved already is read
        from the target after ASKING, a key not moved yet from the source,
        a new key is written on the target; the map changes only once the
        slot is handed over (MOVED).
        """
        c = self.client()
        masters = yield self.cluster.masters()
        ids = yield self.ids()
        slot = keySlot("m")
        source = yield self.ownerOf(slot)
        target = next(m for m in masters if m is not source)
        yield c.set("{m}moved", "a")
        yield c.set("{m}stays", "b")
        self.assertEqual(c.nodeFor("m").address, ("127.0.0.1", source.port))
        yield target.execute("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.address])
        yield source.execute("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.address])
        reply = yield source.execute("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", "{m}moved")
        self.assertEqual(reply, b"OK")
        refreshes = c.refreshes
        self.assertEqual((yield c.get("{m}moved")), b"a")
        self.assertEqual((yield c.get("{m}stays")), b"b")
        self.assertIs((yield c.set("{m}new", "c")), True)
        other = yield target.connect()
        self.addCleanup(other.close)
        yield other.execute("ASKING")
        self.assertEqual((yield other.execute("GET", "{m}new")), b"c")
        replies = yield c.pipeline().get("{m}moved").get("{m}new").get("{m}stays").execute()
        self.assertEqual(replies, [b"a", b"c", b"b"])
        self.assertEqual(c.slots[slot], ("127.0.0.1", source.port))
        self.assertEqual(c.refreshes, refreshes)
        yield source.execute("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", "{m}stays")
        for node in masters:
            yield node.execute("CLUSTER", "SETSLOT", slot, "NODE", ids[target.address])
        self.assertEqual((yield c.get("{m}stays")), b"b")
        self.assertEqual(c.slots[slot], ("127.0.0.1", target.port))
        self.assertEqual(c.nodeFor("{m}x").address, ("127.0.0.1", target.port))


class FailoverTests(_ClusterTestMixin, TestCase):
    """
    kill -9 of a master while commands go on.
    """

    @inlineCallbacks
    def test_killMaster(self):
        """
        Its replica takes over; the commands on its slots succeed again
        once the map is refreshed; only commands that may have reached it
        fail, none gets a wrong reply.
        """
        c = self.client(backoff=(0.05, 0.5), maxClusterRetries=30, timeout=2.0)
        masters = yield self.cluster.masters()
        victim = masters[1]
        replicas = yield self.cluster.replicasOf(victim)
        keys = ["f%d" % (i,) for i in range(60)]
        load = _Load(c, keys)
        yield load.prepare()
        for master in masters:
            self.assertEqual((yield master.execute("WAIT", 1, 10000)), 1)
        onVictim = [k for k in keys if c.nodeFor(k).address == ("127.0.0.1", victim.port)]
        self.assertTrue(onVictim)
        load.start()
        yield sleep(0.3)
        killedAt = reactor.seconds()
        done = load.done
        yield victim.kill()
        # Wait until the replica is master and every key did 20 commands
        # in a row since.
        deadline = reactor.seconds() + 30
        while reactor.seconds() < deadline:
            yield sleep(0.1)
            if (c.nodeFor(onVictim[0]).address == ("127.0.0.1", replicas[0].port)
                    and all(load.successes.get(k, 0) >= 20 for k in keys)):
                break
        recoveredAt = reactor.seconds()
        yield load.stop()
        print("\nfailover: %d commands before the kill, %d in all, %d failed (%s), %d wrong, %d refreshes, "
              "%.2f s from the kill to every key served again"
              % (done, load.done, len(load.failures), sorted(set(type(e).__name__ for e in load.failures)),
                 len(load.wrong), c.refreshes, recoveredAt - killedAt))
        self.assertEqual(load.wrong, [])
        self.assertTrue(all(load.successes.get(k, 0) >= 20 for k in keys), load.successes)
        self.assertEqual(c.nodeFor(onVictim[0]).address, ("127.0.0.1", replicas[0].port))
        # Only commands that were in flight on the victim: each worker of
        # its keys has two (a SET and a GET) at most.
        self.assertTrue(len(load.failures) <= 2 * len(onVictim), (len(load.failures), len(onVictim)))
        for error in load.failures:
            self.assertIsInstance(error, (ConnectionLostError, RequestTimeoutError))
            self.assertTrue(error.mayHaveReachedServer)
        self.assertIsInstance(c, ClusterClient)
