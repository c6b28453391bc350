"""
Tests for metrics, the metrics page and the blocking API.
"""

import gc
import json
import os
from random import Random
import sys
import weakref

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, readBody
from twisted.web.server import Site

from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales import stats
from txscales.errors import ConnectError
from txscales.stats import MetricsPage, Stats
from txscales.testing import MemoryNetwork
from txscales.thriftmux import serverFactory

HERE = os.path.dirname(os.path.abspath(__file__))


def sample(registry, name, **labels):
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


class ClientStatsTests(SynchronousTestCase):
    """
    Client and server metrics count what happened.
    """

    def setUp(self):
        self.registry = CollectorRegistry()
        self.network = MemoryNetwork()
        stats = Stats("server", "demo", self.registry)
        for port in (9001, 9002):
            factory = serverFactory(TestService.Iface, TestServiceHandler(self.network.clock), self.network.clock, stats=stats)
            self.network.listen(factory, port)
        self.client = self.network.thriftMuxClient(
            TestService.Iface,
            "tcp://127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003",
            label="c1",
            registry=self.registry,
            # The balancer's picks, hence whether any lands on 9003 (which
            # refuses connections), are the same on every run.
            random=Random(1),
        )

    def tearDown(self):
        self.successResultOf(self.client.close())

    def test_counts(self):
        """
        Requests, successes, failures by class, requeues, connects and the
        balancer gauges are exported.
        """
        for i in range(20):
            self.successResultOf(self.client.query("x%d" % i))
        self.failureResultOf(self.client.raiseError(1))
        r = self.registry
        self.assertEqual(sample(r, "txscales_client_requests_total", client="c1"), 21)
        # A declared exception is a successful Mux call.
        self.assertEqual(sample(r, "txscales_client_success_total", client="c1"), 21)
        self.assertEqual(sample(r, "txscales_server_requests_total", server="demo"), 21)
        self.assertEqual(sample(r, "txscales_client_pending", client="c1"), 0)
        self.assertEqual(sample(r, "txscales_client_request_latency_seconds_count", client="c1"), 21)
        # 9003 refuses connections: its picks were requeued, and it is closed.
        self.assertGreater(sample(r, "txscales_client_retries_requeues_total", client="c1"), 0)
        self.assertEqual(sample(r, "txscales_client_connects_total", client="c1"), 2)
        self.assertEqual(sample(r, "txscales_client_loadbalancer_size", client="c1"), 3)
        self.assertEqual(sample(r, "txscales_client_loadbalancer_available", client="c1"), 2)
        self.assertEqual(sample(r, "txscales_client_loadbalancer_closed", client="c1"), 1)
        self.assertEqual(sample(r, "txscales_client_retries_budget", client="c1"), 100 - sample(r, "txscales_client_retries_requeues_total", client="c1") + 4)

    def test_failuresByClass(self):
        """
        Failures are counted by error class.
        """
        client = self.network.thriftMuxClient(TestService.Iface, "tcp://127.0.0.1:9999", label="c2", registry=self.registry)
        self.failureResultOf(client.query("x"), ConnectError)
        self.assertEqual(sample(self.registry, "txscales_client_failures_total", client="c2", error="ConnectError"), 1)
        self.successResultOf(client.close())


class SettledTests(SynchronousTestCase):
    """
    A request answered later is counted when its answer comes.
    """

    def test_settled(self):
        """
        The Deferred of a request is counted as a success or as a failure
        by class once it fires, with its latency.
        """
        registry = CollectorRegistry()
        stats = Stats("server", "later", registry)
        clock = Clock()
        answered, failed = Deferred(), Deferred()
        for d in (answered, failed):
            stats.started()
            self.assertIs(stats.settled(d, clock.seconds, clock.seconds()), d)
        self.assertEqual(sample(registry, "txscales_server_success_total", server="later"), 0)
        clock.advance(2)
        answered.callback(b"answer")
        failed.errback(ConnectError("gone"))
        self.assertEqual(self.successResultOf(answered), b"answer")
        self.failureResultOf(failed, ConnectError)
        self.assertEqual(sample(registry, "txscales_server_success_total", server="later"), 1)
        self.assertEqual(sample(registry, "txscales_server_failures_total", server="later", error="ConnectError"), 1)
        self.assertEqual(sample(registry, "txscales_server_request_latency_seconds_sum", server="later"), 4.0)


class RegistryCacheTests(SynchronousTestCase):
    """
    The metrics txscales registers in a registry are cached with that
    registry, and go with it.
    """

    def test_collectedRegistryLeavesNoEntry(self):
        """
        Once a registry with txscales metrics is collected, the cache holds
        no entry for it, so a later registry that reuses its id() cannot be
        handed its metrics.
        """
        registry = CollectorRegistry()
        Stats("client", "gone", registry).started()
        Stats("server", "gone", registry).started()
        collected = weakref.ref(registry)
        gc.collect()
        entries = len(stats._families)
        del registry
        gc.collect()
        self.assertIsNone(collected())
        self.assertEqual(len(stats._families), entries - 1)

    def test_laterRegistryGetsItsOwnMetrics(self):
        """
        A registry made after another was collected gets its own metrics,
        registered in it and counted from zero.
        """
        first = CollectorRegistry()
        Stats("client", "again", first).started()
        del first
        gc.collect()
        second = CollectorRegistry()
        Stats("client", "again", second)
        self.assertEqual(second.get_sample_value("txscales_client_requests_total", {"client": "again"}), 0.0)


class MetricsPageTests(TestCase):
    """
    The metrics page serves Prometheus text.
    """

    @inlineCallbacks
    def test_pageParses(self):
        """
        GET /metrics answers text that parses as Prometheus metrics.
        """
        registry = CollectorRegistry()
        stats = Stats("server", "page", registry)
        stats.started()
        stats.succeeded(0.01)
        port = reactor.listenTCP(0, Site(MetricsPage(registry)), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        agent = Agent(reactor)
        response = yield agent.request(b"GET", b"http://127.0.0.1:%d/metrics" % (port.getHost().port,))
        body = yield readBody(response)
        self.assertEqual(response.code, 200)
        self.assertTrue(response.headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain"))
        families = {f.name: f for f in text_string_to_metric_families(body.decode("utf-8"))}
        [requests] = families["txscales_server_requests"].samples[:1]
        self.assertEqual((requests.labels, requests.value), ({"server": "page"}, 1.0))
        self.assertIn("txscales_server_request_latency_seconds", families)


class BlockingTests(TestCase):
    """
    The blocking API works from plain threads.
    """

    timeout = 60

    @inlineCallbacks
    def test_blockingFromThreads(self):
        """
        A script calls a server from its main thread and from other threads,
        gets declared exceptions raised, and times out slow calls.
        """
        out, err, code = yield getProcessOutputAndValue(
            sys.executable, [os.path.join(HERE, "peers", "blocking_client.py")], env=dict(os.environ), path=os.path.dirname(HERE)
        )
        self.assertEqual(code, 0, err.decode("utf-8", "replace"))
        result = json.loads(out.decode("utf-8").strip().splitlines()[-1])
        self.assertEqual(result["mainThread"], "mm")
        self.assertEqual(result["threads"], ["t%dt%d" % (i, i) for i in range(5)])
        self.assertEqual(result["declared"], 4)
        self.assertEqual(result["timeout"], 0.5)
        self.assertEqual(result["afterTimeout"], "aa")
