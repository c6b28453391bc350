"""
One client under load against three C{twistd txscales demo-server}
processes: a server killed with SIGKILL, restarted, and drained with
SIGTERM.
"""

import random

from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from txscales.demo.gen import TestService
from txscales.errors import ClientClosedError, ConnectionLostError
from txscales.interfaces import CLOSED
from txscales.thriftmux import ThriftMux

from tests._twistd import startDemoServer, startTwistd


class Load:
    """
    Workers calling C{delayedQuery} in a loop until stopped, recording every
    outcome; C{when(predicate)} fires once a predicate holds after a call.

    The workers stop by themselves at the test's cleanup, when the client
    is closed, and after C{maxFailures} failures, so that a failing test
    cannot leave them spinning on calls that fail at once.
    """

    def __init__(self, testCase, client, workers, delayMs=20, maxFailures=200):
        self._client = client
        self._delayMs = delayMs
        self._maxFailures = maxFailures
        self._running = True
        self._waiting = []
        self.ok = 0
        self.failures = []
        testCase.addCleanup(self.stop)
        self.done = gatherResults([self._worker(w) for w in range(workers)])

    @inlineCallbacks
    def _worker(self, w):
        i = 0
        while self._running:
            i += 1
            x = "w%d-%d" % (w, i)
            try:
                answer = yield self._client.delayedQuery(x, self._delayMs)
            except Exception as e:
                self.failures.append(e)
                if isinstance(e, ClientClosedError) or len(self.failures) >= self._maxFailures:
                    self._running = False
            else:
                if answer != x + x:
                    self.failures.append(AssertionError("%r answered %r" % (x, answer)))
                self.ok += 1
            for predicate, d in list(self._waiting):
                if predicate():
                    self._waiting.remove((predicate, d))
                    d.callback(None)
        for predicate, d in list(self._waiting):
            self._waiting.remove((predicate, d))
            d.errback(AssertionError("the load stopped (%d failures, first: %r)" % (len(self.failures), self.failures[:1])))

    def when(self, predicate):
        """
        @return: a Deferred firing once C{predicate()} holds after a call,
            or failing if the load stops first.
        """
        d = Deferred()
        self._waiting.append((predicate, d))
        return d

    def stop(self):
        """
        Stop the workers.

        @return: a Deferred firing when they have stopped.
        """
        self._running = False
        return self.done


class InFlightAtLoss:
    """
    The calls in flight on a node's connection at the moment the client
    sees it lost.  Calls sent after its server was killed, but before the
    client saw the connection go, were in flight too.

    @ivar count: the node's pending calls then, before they failed; None
        before.
    @ivar lost: a Deferred firing once the connection is lost.
    """

    count = None

    def __init__(self, node):
        self.lost = Deferred()
        protocol = node.endpoint.protocol
        connectionLost = protocol.connectionLost

        def counted(reason):
            self.count = node.pending
            connectionLost(reason)
            self.lost.callback(None)

        protocol.connectionLost = counted


class ThreeServersTests(TestCase):
    """
    Servers fail and come back under load.
    """

    timeout = 120

    @inlineCallbacks
    def setUp(self):
        self.servers = []
        for _ in range(3):
            server = yield startDemoServer(addCleanup=self.addCleanup)
            self.servers.append(server)
        dest = "tcp://" + ",".join("%s:%d" % (s.host, s.port) for s in self.servers)
        self.client = ThriftMux.newClient(
            TestService.Iface, dest, timeout=10, random=random.Random(4), registry=CollectorRegistry()
        )
        self.addCleanup(self.client.close)
        self.nodes = self.client.stack.nodes

    @inlineCallbacks
    def test_killNineAndRestart(self):
        """
        After SIGKILL of one server, only calls in flight on it fail, with
        the typed "may have reached the server" error; calls never written
        to it go elsewhere; restarted, it gets traffic again after its
        reconnection backoff.
        """
        load = Load(self, self.client, workers=20)
        yield load.when(lambda: load.ok >= 200 and all(n.requests for n in self.nodes))
        victim, node = self.servers[1], self.nodes[1]
        inFlight = InFlightAtLoss(node)
        yield victim.kill()
        yield inFlight.lost
        yield load.when(lambda: node.status == CLOSED and load.ok >= 600)
        self.assertTrue(all(isinstance(e, ConnectionLostError) for e in load.failures), load.failures[:5])
        self.assertTrue(all(e.mayHaveReachedServer for e in load.failures))
        self.assertLessEqual(len(load.failures), inFlight.count)
        failuresBefore = len(load.failures)
        requestsBefore = node.requests
        yield startTwistd(
            ["txscales", "demo-server", "--listen", "tcp:%d:interface=127.0.0.1" % (victim.port,)],
            addCleanup=self.addCleanup,
        )
        yield load.when(lambda: node.endpoint.protocol is not None and node.requests > requestsBefore + 20)
        yield load.stop()
        self.assertEqual(len(load.failures), failuresBefore)
        self.assertGreaterEqual(node.failFast.attempts, 1)

    @inlineCallbacks
    def test_sigtermDrainNoFailures(self):
        """
        SIGTERM of one server under load fails no call.
        """
        load = Load(self, self.client, workers=20)
        yield load.when(lambda: load.ok >= 200 and all(n.requests for n in self.nodes))
        result = yield self.servers[2].terminate()
        self.assertIn("all sessions closed", result.output, result.describe())
        okAtStop = load.ok
        yield load.when(lambda: load.ok >= okAtStop + 300)
        yield load.stop()
        self.assertEqual(load.failures, [])
        self.assertEqual(self.nodes[2].endpoint.drains, 1)


class MetricsPageTests(TestCase):
    """
    twistd servers serve their metrics as a Prometheus page.
    """

    timeout = 60

    @inlineCallbacks
    def test_demoServerMetrics(self):
        """
        demo-server --metrics serves a page that parses as Prometheus text
        and counts the requests served.
        """
        import re

        from prometheus_client.parser import text_string_to_metric_families
        from twisted.internet import reactor
        from twisted.web.client import Agent, readBody

        server = yield startDemoServer("--metrics", "tcp:0:interface=127.0.0.1", "--label", "demo", addCleanup=self.addCleanup)
        metricsLine = re.compile(r"txscales: metrics on (?P<url>http://\S+)")
        # The page may start listening before or after the Mux port.
        match = metricsLine.search(server.output)
        if match is None:
            match = yield server.waitForLine(metricsLine)
        client = ThriftMux.newClient(TestService.Iface, server.dest, timeout=5, registry=CollectorRegistry())
        self.addCleanup(client.close)
        for i in range(7):
            yield client.query("m%d" % i)
        response = yield Agent(reactor).request(b"GET", match.group("url").encode("ascii"))
        body = (yield readBody(response)).decode("utf-8")
        families = {f.name: f for f in text_string_to_metric_families(body)}
        [requests] = [s for s in families["txscales_server_requests"].samples if s.name.endswith("_total")]
        self.assertEqual((requests.labels, requests.value), ({"server": "demo"}, 7.0))
        self.assertIn("txscales_server_request_latency_seconds", families)
