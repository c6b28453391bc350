"""
The client stack under load against real servers on 127.0.0.1: balancing
away from a slow server, and spreading over 200 endpoints.
"""

import gc
import random
from collections import Counter

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales.thriftmux import ThriftMux


class CountingHandler(TestServiceHandler):
    """
    Answers C{query} after C{delay} seconds and counts the calls.
    """

    def __init__(self, delay, name):
        TestServiceHandler.__init__(self, reactor)
        self.delay = delay
        self.name = name
        self.calls = 0

    def query(self, x):
        self.calls += 1
        if not self.delay:
            return x + x
        return deferLater(reactor, self.delay, lambda: x + x)


class LoadMixin:
    @inlineCallbacks
    def startServers(self, handlers):
        ports = []
        for handler in handlers:
            server = ThriftMux.newServer(TestService.Iface, handler, "tcp:0:interface=127.0.0.1", stats=False)
            server.startService()
            self.addCleanup(server.stopService)
            port = yield server.listening
            ports.append(port.getHost().port)
        return "tcp://" + ",".join("127.0.0.1:%d" % (p,) for p in ports)

    @inlineCallbacks
    def load(self, client, workers, callsEach):
        failures = Counter()

        @inlineCallbacks
        def worker(w):
            for i in range(callsEach):
                x = "w%d-%d" % (w, i)
                try:
                    answer = yield client.query(x)
                except Exception as e:
                    failures[type(e).__name__] += 1
                else:
                    self.assertEqual(answer, x + x)

        yield gatherResults([worker(w) for w in range(workers)])
        return failures


class PeakEwmaTests(LoadMixin, TestCase):
    """
    Peak EWMA routes around a slow server.
    """

    timeout = 60

    @inlineCallbacks
    def test_slowServerGetsLittle(self):
        """
        With one of three servers ten times slower, P2C peak EWMA sends it
        under a third of its fair share once it has seen each server answer;
        P2C least-loaded, the baseline, sends it more.
        """
        handlers = [CountingHandler(0.002, "a"), CountingHandler(0.002, "b"), CountingHandler(0.020, "slow")]
        dest = yield self.startServers(handlers)
        shares = {}
        for balancer in ("p2c-peak-ewma", "p2c"):
            client = ThriftMux.newClient(
                TestService.Iface, dest, timeout=5, balancer=balancer, random=random.Random(1), stats=False
            )
            self.addCleanup(client.close)
            # A full garbage collection stops this process for tens of
            # milliseconds, which every call in flight then takes for its
            # server's latency: peak EWMA would learn the pause, not the
            # servers (and remember it for seconds).  None runs meanwhile.
            gc.collect()
            gc.disable()
            try:
                # A few calls first: peak EWMA learns the latencies it weighs.
                failures = yield self.load(client, workers=12, callsEach=5)
                self.assertEqual(failures, Counter())
                for h in handlers:
                    h.calls = 0
                failures = yield self.load(client, workers=12, callsEach=60)
            finally:
                gc.enable()
            self.assertEqual(failures, Counter())
            total = sum(h.calls for h in handlers)
            self.assertEqual(total, 12 * 60)
            shares[balancer] = handlers[2].calls / total
        fair = 1.0 / 3
        self.assertLess(shares["p2c-peak-ewma"], fair / 3, shares)
        self.assertLess(shares["p2c-peak-ewma"], shares["p2c"], shares)


class ManyEndpointsTests(LoadMixin, TestCase):
    """
    One client spreads calls over 200 servers.
    """

    timeout = 120

    @inlineCallbacks
    def test_twoHundredEndpoints(self):
        """
        A client over 200 endpoints (200 listening ports) sends calls to
        every one of them.
        """
        handlers = [CountingHandler(0.001, str(i)) for i in range(200)]
        dest = yield self.startServers(handlers)
        client = ThriftMux.newClient(TestService.Iface, dest, timeout=10, random=random.Random(2), stats=False)
        self.addCleanup(client.close)
        failures = yield self.load(client, workers=100, callsEach=20)
        self.assertEqual(failures, Counter())
        counts = [h.calls for h in handlers]
        self.assertEqual(sum(counts), 2000)
        self.assertEqual([i for i, c in enumerate(counts) if c == 0], [])
        self.assertEqual(len(client.stack.nodes), 200)
        connected = [n for n in client.stack.nodes if n.endpoint.connects == 1]
        self.assertEqual(len(connected), 200)
