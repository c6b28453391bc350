"""
Tests for the Redis client's failure accrual and C{ejectFailedHosts}
against real redis-server processes (C{tests._redis}).
"""

import os
import signal

from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from txscales.errors import RequestTimeoutError
from txscales.redis import Redis
from txscales.redis._hashing import KetamaRing, ketamaName
from txscales.stack import ALIVE
from tests._redis import RedisServer


def _signal(server, number):
    if server.process is not None and server.process.running:
        os.kill(server.process.pid, number)


class EjectTests(TestCase):
    """
    A client sharded over 3 servers with C{ejectFailedHosts}.
    """

    timeout = 60

    @inlineCallbacks
    def setUp(self):
        self.servers = [RedisServer(reactor, self.addCleanup) for _ in range(3)]
        yield DeferredList([s.start() for s in self.servers], fireOnOneErrback=True, consumeErrors=True)
        dest = "tcp://" + ",".join(s.address for s in self.servers)
        self.client = Redis.newClient(dest, reactor=reactor, registry=CollectorRegistry(), timeout=0.2,
                                      failFast={"start": 0.05, "maximum": 0.1}, ejectFailedHosts=True,
                                      failureAccrual={"consecutiveFailures": 3, "markDeadFor": (0.3, 0.3)})
        self.addCleanup(self.client.close)
        self.ring = KetamaRing([(ketamaName("127.0.0.1", s.port), 1, s) for s in self.servers])

    @inlineCallbacks
    def test_frozenServerEjected(self):
        """
        A server frozen by SIGSTOP times out until failure accrual marks it
        dead; then every key succeeds, the frozen server's on the next
        server of the ring; after SIGCONT and a probe its keys are back on
        it.
        """
        keys = ["eject:%d" % i for i in range(300)]
        yield self.client.mset({k: "home" for k in keys})
        victim = self.servers[1]
        victimKeys = [k for k in keys if self.ring.nodeFor(k) is victim]
        self.assertTrue(victimKeys)
        self.assertEqual((yield victim.execute("DBSIZE")), len(victimKeys))
        node = next(n for n in self.client.nodes if n.address[1] == victim.port)

        self.addCleanup(_signal, victim, signal.SIGCONT)
        _signal(victim, signal.SIGSTOP)
        timeouts = 0
        for _ in range(20):
            if not node.health.dead:
                try:
                    yield self.client.get(victimKeys[0])
                except RequestTimeoutError:
                    timeouts += 1
        self.assertTrue(node.health.dead)
        self.assertEqual(timeouts, 3)

        # Dead and ejected: every key succeeds, the victim's on other
        # servers (a miss, then written there).
        replies = yield self.client.mget(*keys)
        self.assertEqual([r for k, r in zip(keys, replies) if k not in victimKeys],
                         [b"home"] * (len(keys) - len(victimKeys)))
        self.assertEqual([r for k, r in zip(keys, replies) if k in victimKeys], [None] * len(victimKeys))
        for key in victimKeys:
            self.assertIsNot(self.client.nodeFor(key), node)
            yield self.client.set(key, "moved")
        self.assertEqual((yield self.client.mget(*victimKeys)), [b"moved"] * len(victimKeys))

        _signal(victim, signal.SIGCONT)
        for _ in range(200):
            if self.client.nodeFor(victimKeys[0]) is node and node.health.accrual.state == ALIVE:
                break
            try:
                yield self.client.get(victimKeys[0])
            except RequestTimeoutError:
                pass
            yield deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(node.health.accrual.state, ALIVE)
        self.assertEqual(node.health.accrual.revivals, 1)

        # Back on their own server: its old values, and new writes land
        # there.
        self.assertTrue(all(self.client.nodeFor(k) is node for k in victimKeys))
        self.assertEqual((yield self.client.mget(*victimKeys)), [b"home"] * len(victimKeys))
        yield self.client.set(victimKeys[0], "back")
        self.assertEqual((yield victim.execute("GET", victimKeys[0])), b"back")
        self.assertEqual((yield victim.execute("DBSIZE")), len(victimKeys))
        # The copies written while it was out stay on the other servers
        # (the writes split).
        others = 0
        for server in self.servers:
            if server is not victim:
                others += yield server.execute("DBSIZE")
        self.assertEqual(others, (len(keys) - len(victimKeys)) + len(victimKeys))
