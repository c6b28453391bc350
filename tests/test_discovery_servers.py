"""
Discovery end to end: C{twistd txscales demo-server --announce zk://...}
processes and a client on C{zk://}, against a real ZooKeeper.
"""

import time

from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from txscales.demo.gen import TestService
from txscales.thriftmux import ThriftMux

from tests._twistd import startDemoServer
from tests._zookeeper import ZooKeeperServer
from tests.test_stack_servers import Load


class AnnouncedServersTests(TestCase):
    """
    Servers that announce themselves, and a client that follows them.
    """

    timeout = 120

    @inlineCallbacks
    def setUp(self):
        self.zk = ZooKeeperServer(reactor, self.addCleanup)
        yield self.zk.start()
        self.uri = self.zk.uri("/services/demo")
        self.servers = []
        for _ in range(3):
            yield self.startServer()
        self.client = ThriftMux.newClient(
            TestService.Iface, self.uri, timeout=10, registry=CollectorRegistry()
        )
        self.addCleanup(self.client.close)
        yield self.client.whenReady()

    @inlineCallbacks
    def startServer(self):
        server = yield startDemoServer("--announce", self.uri, "--drain-timeout", "10", addCleanup=self.addCleanup)
        yield server.waitForLine(r"txscales: announced as ")
        self.servers.append(server)
        return server

    def ports(self):
        return sorted(n.endpoint.port for n in self.client.stack.nodes)

    def nodeFor(self, server):
        return [n for n in self.client.stack.nodes if n.endpoint.port == server.port][0]

    @inlineCallbacks
    def test_membershipUnderLoad(self):
        """
        Calls spread over three announced servers; SIGTERM of one takes it
        out of the set with no failed call; a fourth gets calls within 2 s
        of announcing; a ZooKeeper restart under load fails no call and
        changes are seen again afterwards.
        """
        load = Load(self, self.client, workers=12, delayMs=5)
        yield load.when(lambda: len(self.client.stack.nodes) == 3 and all(n.requests > 20 for n in self.client.stack.nodes))
        self.assertEqual(self.ports(), sorted(s.port for s in self.servers))

        leaving = self.servers.pop(0)
        result = yield leaving.terminate()
        self.assertIn("withdrew", result.output, result.describe())
        self.assertEqual(self.ports(), sorted(s.port for s in self.servers))

        fourth = yield self.startServer()
        announced = time.monotonic()
        yield load.when(lambda: fourth.port in self.ports() and self.nodeFor(fourth).requests > 0)
        self.assertLess(time.monotonic() - announced, 2.0)

        yield self.zk.stop()
        okDuringOutage = load.ok
        yield load.when(lambda: load.ok > okDuringOutage + 100)
        yield self.zk.start()
        fifth = yield self.startServer()
        yield load.when(lambda: fifth.port in self.ports() and self.nodeFor(fifth).requests > 0)
        # Members whose sessions ZooKeeper's restart expired announce again.
        yield load.when(lambda: self.ports() == sorted(s.port for s in self.servers))
        yield load.stop()
        self.assertEqual(load.failures, [])
        self.assertEqual(len(self.ports()), 4)
