"""
Tests for the admin site (C{--admin}): its pages, the registry of clients
and servers they read, and a real C{twistd txscales serve --admin}.
"""

import json
import re
from random import Random

import treq
from prometheus_client import CollectorRegistry, Counter
from twisted.application.service import Service
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txscales._admin import MAX_BODY, MAX_CONNECTIONS, AdminService, WithAdmin, adminResource, adminSite
from txscales._draining import DrainingFactory
from txscales._listening import DRAINING, SERVING, STARTING, STOPPED, ListeningService
from txscales._registry import REGISTRY, Registry
from txscales._sampling import SAMPLER, Sampler
from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales.kafka import Kafka
from txscales.redis import Redis
from txscales.redis._node import RedisNode
from txscales.stats import MetricsService
from txscales.tap import Options, makeService
from txscales.testing import MemoryNetwork
from txscales.thriftmux import ThriftMux

from tests._twistd import startTwistd


class _Response:
    """
    An HTTP response read from the bytes a site wrote.
    """

    def __init__(self, raw):
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.code = int(lines[0].split(b" ")[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower()] = value.strip()

    def json(self):
        return json.loads(self.body)


def fetch(site, method, path, body=b"", headers=()):
    """
    Send one request to C{site} over an in-memory connection.

    @return: the L{_Response}, and the connection's transport.
    """
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    channel.makeConnection(transport)
    lines = [b"%s %s HTTP/1.1" % (method, path), b"Host: localhost", b"Connection: close"]
    lines += list(headers)
    if body and not any(h.lower().startswith(b"transfer-encoding") for h in headers):
        lines.append(b"Content-Length: %d" % (len(body),))
    channel.dataReceived(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    response = _Response(transport.value())
    channel.connectionLost(None)
    return response, transport


class _Server:
    """
    A server as the registry holds it.
    """

    def __init__(self, drainState):
        self.drainState = drainState

    def describe(self):
        return {"drainState": self.drainState}


class _Port:
    """
    A listening port on 127.0.0.1:9001.
    """

    def getHost(self):
        return IPv4Address("TCP", "127.0.0.1", 9001)

    def stopListening(self):
        return succeed(None)


class _Endpoint:
    """
    A server endpoint that listens at once on L{_Port}.
    """

    def listen(self, factory):
        return succeed(_Port())


class _Session:
    """
    A session of a L{DrainingFactory} that drains when told.
    """

    def __init__(self):
        self.drained = Deferred()

    def drain(self):
        return self.drained


def site(registry=None, sampler=None, metrics=None):
    return adminSite(adminResource(registry or Registry(), sampler or Sampler(), metrics), Clock())


class HealthTests(SynchronousTestCase):
    """
    /health says whether the process's servers serve.
    """

    def test_serving(self):
        """
        With every server serving (or none), /health answers 200 ok.
        """
        registry = Registry()
        self.assertEqual(fetch(site(registry), b"GET", b"/health")[0].code, 200)
        registry.addServer(_Server(SERVING))
        registry.addServer(_Server(STARTING))
        response = fetch(site(registry), b"GET", b"/health")[0]
        self.assertEqual((response.code, response.body), (200, b"ok\n"))

    def test_draining(self):
        """
        Once a server drains or stopped, /health answers 503 draining.
        """
        for state in (DRAINING, STOPPED):
            registry = Registry()
            servers = [_Server(SERVING), _Server(state)]
            for server in servers:
                registry.addServer(server)
            response = fetch(site(registry), b"GET", b"/health")[0]
            self.assertEqual((response.code, response.body), (503, b"draining\n"))


class ListeningStateTests(SynchronousTestCase):
    """
    A listening service lists itself and says whether it serves or drains.
    """

    def test_drainState(self):
        """
        The drain state goes from starting to serving when listening, to
        draining when stopped, and to stopped once the sessions drained.
        """
        factory = DrainingFactory(Clock())
        session = _Session()
        factory.protocols.add(session)
        service = ListeningService(factory, _Endpoint(), Clock(), drainTimeout=5)
        self.assertIn(service, REGISTRY.servers())
        self.assertEqual(service.drainState, STARTING)
        service.privilegedStartService()
        service.startService()
        self.assertEqual(service.drainState, SERVING)
        stopped = service.stopService()
        self.assertEqual(service.drainState, DRAINING)
        session.drained.callback(None)
        self.successResultOf(stopped)
        self.assertEqual(service.drainState, STOPPED)

    def test_sitesNotListed(self):
        """
        The admin and metrics sites are not servers of the process.
        """
        sites = [AdminService("tcp:0", Clock()), MetricsService("tcp:0", Clock())]
        listed = REGISTRY.servers()
        self.assertEqual([s for s in sites if s in listed], [])


class ServerPageTests(SynchronousTestCase):
    """
    /admin/server shows the listeners, their sessions with pending calls,
    and the drain state.
    """

    def test_sessions(self):
        """
        A ThriftMux server's session shows its peer and pending calls.
        """
        network = MemoryNetwork()
        factory = network.serveThriftMux(TestService.Iface, TestServiceHandler(network.clock), 9001)
        server = ListeningService(factory, _Endpoint(), network.clock, description="ThriftMux")
        server.privilegedStartService()
        server.startService()
        registry = Registry()
        registry.addServer(server)
        client = network.thriftMuxClient(TestService.Iface, "tcp://127.0.0.1:9001")
        answer = client.delayedQuery("x", 1000)
        page = fetch(site(registry), b"GET", b"/admin/server")[0]
        self.assertEqual(page.headers[b"content-type"], b"application/json")
        [described] = page.json()["servers"]
        [session] = described.pop("sessions")
        self.assertEqual(
            described, {"protocol": "ThriftMux", "address": "127.0.0.1:9001", "drainState": "serving", "refused": 0}
        )
        self.assertEqual(session["pending"], 1)
        self.assertRegex(session["peer"], r"^127\.0\.0\.1:\d+$")
        self.assertFalse(page.json()["draining"])
        network.clock.advance(1)
        self.assertEqual(self.successResultOf(answer), "xx")
        [described] = fetch(site(registry), b"GET", b"/admin/server")[0].json()["servers"]
        self.assertEqual(described["sessions"][0]["pending"], 0)
        self.successResultOf(client.close())
        self.successResultOf(server.stopService())
        self.assertEqual(network.clock.getDelayedCalls(), [])


    def test_thriftSessions(self):
        """
        A plain Thrift server's connection shows its pending calls.
        """
        network = MemoryNetwork()
        factory = network.serveThrift(TestService.Iface, TestServiceHandler(network.clock), 9002)
        server = ListeningService(factory, _Endpoint(), network.clock, description="Thrift")
        client = network.thriftClient(TestService.Iface, "tcp://127.0.0.1:9002", registry=CollectorRegistry())
        answer = client.delayedQuery("x", 1000)
        [session] = server.describe()["sessions"]
        self.assertEqual(session["pending"], 1)
        network.clock.advance(1)
        self.assertEqual(self.successResultOf(answer), "xx")
        self.assertEqual([s["pending"] for s in server.describe()["sessions"]], [0])
        self.successResultOf(client.close())


class ClientsPageTests(SynchronousTestCase):
    """
    /admin/clients shows each live client's stack.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.network.serveThriftMux(TestService.Iface, TestServiceHandler(self.network.clock), 9001)

    def test_thriftMux(self):
        """
        A ThriftMux client lists itself with its destination, balancer,
        endpoints (status, load, failure accrual), retry budget and
        discovery members, and leaves the list when closed.
        """
        client = self.network.thriftMuxClient(
            TestService.Iface, "tcp://127.0.0.1:9001,127.0.0.1:9002", label="c1", registry=CollectorRegistry()
        )
        self.assertIn(client.stack, REGISTRY.clients())
        self.assertEqual(self.successResultOf(client.query("a")), "aa")
        registry = Registry()
        registry.addClient(client.stack)
        [described] = fetch(site(registry), b"GET", b"/admin/clients")[0].json()["clients"]
        endpoints = described.pop("endpoints")
        # A call picking the port nothing listens on is requeued, which
        # spends a retry of the 100 the budget starts with.
        self.assertEqual(described.pop("retryBudget"), {"balance": 100 - client.stack.dispatcher.requeues})
        self.assertEqual(
            described,
            {
                "label": "c1",
                "destination": "tcp://127.0.0.1:9001,127.0.0.1:9002",
                "protocol": "thriftmux",
                "balancer": {"name": "p2c", "panicked": 0},
                "resolved": True,
                "closed": False,
                "discovery": {
                    "kind": "static",
                    "members": [{"host": "127.0.0.1", "port": 9001}, {"host": "127.0.0.1", "port": 9002}],
                },
            },
        )
        self.assertEqual([(e["host"], e["port"]) for e in endpoints], [("127.0.0.1", 9001), ("127.0.0.1", 9002)])
        self.assertEqual(
            endpoints[0]["accrual"], {"state": "alive", "consecutiveFailures": 0, "removals": 0, "revivals": 0}
        )
        self.assertEqual((endpoints[0]["status"], endpoints[0]["pending"]), ("open", 0))
        node = client.stack.nodes[0]
        for _ in range(5):
            node.accrual.failure()
        pending = client.delayedQuery("b", 1000)
        [endpoint, _] = client.stack.describe()["endpoints"]
        accrual = endpoint["accrual"]
        self.assertEqual((endpoint["status"], accrual["state"], accrual["removals"]), ("busy", "dead", 1))
        self.assertEqual(sum(e["pending"] for e in client.stack.describe()["endpoints"]), 1)
        self.network.clock.advance(1)
        self.successResultOf(pending)
        self.successResultOf(client.close())
        self.assertNotIn(client.stack, REGISTRY.clients())
        self.assertEqual(self.network.clock.getDelayedCalls(), [])

    def test_thrift(self):
        """
        A plain Thrift client lists itself as such.
        """
        self.network.serveThrift(TestService.Iface, TestServiceHandler(self.network.clock), 9003)
        client = self.network.thriftClient(TestService.Iface, "tcp://127.0.0.1:9003", registry=CollectorRegistry())
        self.assertEqual(self.successResultOf(client.query("a")), "aa")
        described = client.stack.describe()
        self.assertEqual((described["protocol"], described["label"]), ("thrift", TestService.__name__))
        self.assertEqual(described["endpoints"][0]["requests"], 1)
        self.successResultOf(client.close())


    def test_redis(self):
        """
        A Redis client lists itself with its servers, their connection
        state, pending commands and failure accrual, until closed.
        """
        client = Redis.newClient("tcp://127.0.0.1:6379,127.0.0.1:6380", reactor=Clock(), stats=False, label="cache")
        self.assertIn(client, REGISTRY.clients())
        described = client.describe()
        endpoints = described.pop("endpoints")
        self.assertEqual(
            described,
            {
                "label": "cache",
                "destination": "tcp://127.0.0.1:6379,127.0.0.1:6380",
                "protocol": "redis",
                "balancer": {"name": "ketama"},
                "retryBudget": None,
                "resolved": True,
                "closed": False,
                "discovery": {
                    "kind": "static",
                    "members": [{"host": "127.0.0.1", "port": 6379}, {"host": "127.0.0.1", "port": 6380}],
                },
            },
        )
        self.assertEqual(
            [(e["port"], e["status"], e["pending"], e["accrual"]["state"]) for e in endpoints],
            [(6379, "busy", 0, "alive"), (6380, "busy", 0, "alive")],
        )
        self.successResultOf(client.close())
        self.assertNotIn(client, REGISTRY.clients())

    def test_kafka(self):
        """
        A Kafka producer lists itself with its partitioner, buffer and
        bootstrap brokers, until closed; its brokers show their connection
        state and the Produce requests in flight to each.
        """
        producer = Kafka.newProducer("tcp://127.0.0.1:9092", reactor=Clock(), stats=False, label="events",
                                     bufferMemory=4096)
        self.assertIn(producer, REGISTRY.clients())
        self.assertEqual(
            producer.describe(),
            {
                "label": "events",
                "destination": "tcp://127.0.0.1:9092",
                "protocol": "kafka",
                "balancer": {"name": "murmur2"},
                "retryBudget": None,
                "resolved": False,
                "closed": False,
                "endpoints": [],
                "buffer": {"bufferMemory": 4096, "available": 4096, "batches": 0},
                "discovery": {"kind": "static", "members": [{"host": "127.0.0.1", "port": 9092}]},
            },
        )
        cluster = producer._cluster
        cluster.brokers = {2: ("b2", 9093), 1: ("b1", 9092)}
        cluster._connections[("b1", 9092)] = succeed(None)
        cluster._connections[("b2", 9093)] = Deferred()
        self.assertEqual(
            [(e["node"], e["host"], e["status"], e["pending"]) for e in cluster.describeBrokers({2: 3})],
            [(1, "b1", "open", 0), (2, "b2", "busy", 3)],
        )
        cluster._connections.clear()
        producer.close()
        self.assertNotIn(producer, REGISTRY.clients())

    def test_redisNode(self):
        """
        A connected Redis server is open, and counts the commands waiting
        for their replies.
        """
        clock = Clock()

        def connect(address, protocol):
            protocol.makeConnection(StringTransport())
            return succeed(protocol)

        node = RedisNode(("h", 1), clock, Random(3), (), None, 5.0, 10, None, connect=connect)
        reply = node.execute("GET", "k")
        described = node.describe()
        self.assertEqual(
            (described["host"], described["status"], described["pending"], described["down"], described["accrual"]),
            ("h", "open", 1, False, None),
        )
        node.close()
        self.failureResultOf(reply)
        self.assertEqual(clock.getDelayedCalls(), [])


class TracingPageTests(SynchronousTestCase):
    """
    /admin/tracing reads and sets the trace sample rate.
    """

    def setUp(self):
        self.sampler = Sampler(0.25)
        self.site = site(sampler=self.sampler)

    def test_get(self):
        """
        GET answers the rate as JSON.
        """
        self.assertEqual(fetch(self.site, b"GET", b"/admin/tracing")[0].json(), {"sampleRate": 0.25})

    def test_postJson(self):
        """
        POST with a JSON body sets the rate and answers the new one.
        """
        body, headers = b'{"sampleRate": 0.5}', [b"Content-Type: application/json"]
        response = fetch(self.site, b"POST", b"/admin/tracing", body, headers)[0]
        self.assertEqual((response.code, response.json()), (200, {"sampleRate": 0.5}))
        self.assertEqual(self.sampler.rate, 0.5)

    def test_postForm(self):
        """
        POST with a form field sets the rate.
        """
        form = [b"Content-Type: application/x-www-form-urlencoded"]
        response = fetch(self.site, b"POST", b"/admin/tracing", b"sampleRate=1", form)[0]
        self.assertEqual((response.code, response.json()), (200, {"sampleRate": 1.0}))
        self.assertEqual(self.sampler.rate, 1.0)

    def test_postBad(self):
        """
        A rate that is missing, not a number or out of [0, 1] is answered
        400 with a JSON error, and the rate stays.
        """
        form = [b"Content-Type: application/x-www-form-urlencoded"]
        cases = [
            (b'{"sampleRate": 1.5}', []),
            (b'{"sampleRate": -0.1}', []),
            (b'{"sampleRate": "0.5"}', []),
            (b'{"sampleRate": true}', []),
            (b'{"sampleRate": NaN}', []),
            (b"[0.5]", []),
            (b"not json", []),
            (b"", []),
            (b"sampleRate=x", form),
            (b"sampleRate=nan", form),
            (b"sampleRate=2", form),
        ]
        for body, headers in cases:
            response = fetch(self.site, b"POST", b"/admin/tracing", body, headers)[0]
            self.assertEqual(response.code, 400, body)
            self.assertIsInstance(response.json()["error"], str)
        self.assertEqual(self.sampler.rate, 0.25)

    def test_bodyBounded(self):
        """
        A body over MAX_BODY bytes, announced or chunked, is answered 413
        and its connection closed, without changing the rate.
        """
        body = b'{"sampleRate": 0.5}' + b" " * MAX_BODY
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        for data, headers in [(body, []), (chunked, [b"Transfer-Encoding: chunked"])]:
            response, transport = fetch(self.site, b"POST", b"/admin/tracing", data, headers)
            self.assertEqual(response.code, 413)
            self.assertTrue(transport.disconnecting)
        self.assertEqual(self.sampler.rate, 0.25)

    def test_defaultSampler(self):
        """
        By default the page reads the process's sampler.
        """
        response = fetch(adminSite(adminResource(Registry()), Clock()), b"GET", b"/admin/tracing")[0]
        self.assertEqual(response.json(), {"sampleRate": SAMPLER.rate})


class MetricsPageTests(SynchronousTestCase):
    """
    /metrics is the metrics page of --metrics.
    """

    def test_metrics(self):
        """
        The page shows the prometheus registry's metrics.
        """
        metrics = CollectorRegistry()
        Counter("admin_test", "A test counter.", registry=metrics).inc(3)
        response = fetch(site(metrics=metrics), b"GET", b"/metrics")[0]
        self.assertEqual(response.code, 200)
        self.assertIn(b"admin_test_total 3.0", response.body)


class AdminServiceTests(SynchronousTestCase):
    """
    The admin site's service bounds its connections.
    """

    def test_connectionsBounded(self):
        """
        Past MAX_CONNECTIONS open connections, a new one is closed at once;
        once one closes, a new one is served again.
        """
        service = AdminService("tcp:0", Clock(), Registry(), Sampler())
        address = IPv4Address("TCP", "127.0.0.1", 40000)
        served = []
        for _ in range(MAX_CONNECTIONS + 1):
            protocol = service.limit.buildProtocol(address)
            transport = StringTransport()
            protocol.makeConnection(transport)
            served.append((protocol, transport))
        self.assertEqual([t.disconnecting for _, t in served], [False] * MAX_CONNECTIONS + [True])
        served[0][0].connectionLost(None)
        protocol = service.limit.buildProtocol(address)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(_Response(transport.value()).body, b"ok\n")
        for protocol, _ in served[1:]:
            protocol.connectionLost(None)


class _Stopping(Service):
    """
    A service whose stop ends when told.
    """

    def __init__(self, log):
        self.log = log
        self.stopped = Deferred()

    def stopService(self):
        Service.stopService(self)
        self.log.append(self)
        return self.stopped


class TapTests(SynchronousTestCase):
    """
    The twistd commands take --admin.
    """

    def test_barePortIsLocal(self):
        """
        --admin with a bare port listens on 127.0.0.1; an endpoint string is
        kept.
        """
        options = Options()
        options.parseOptions(["demo-server", "--admin", "9990"])
        self.assertEqual(options.subOptions["admin"], "tcp:9990:interface=127.0.0.1")
        options = Options()
        options.parseOptions(["redis-bench", "--admin", "tcp:9991"])
        self.assertEqual(options.subOptions["admin"], "tcp:9991")

    def test_serveWithAdmin(self):
        """
        serve --admin runs the admin site beside the server.
        """
        options = Options()
        options.parseOptions(
            ["serve", "--iface", "txscales.demo.gen.TestService.Iface",
             "--handler", "txscales.demo.handler:makeHandler", "--admin", "0", "--metrics", "0"]
        )
        service = makeService(options, Clock())
        self.assertIsInstance(service, WithAdmin)
        kinds = sorted(type(s).__name__ for s in service)
        self.assertEqual(kinds, ["AdminService", "MetricsService", "ThriftMuxServerService"])

    def test_adminStopsLast(self):
        """
        The admin site stops only once the other services have stopped.
        """
        log = []
        admin, server = _Stopping(log), _Stopping(log)
        service = WithAdmin(admin)
        server.setServiceParent(service)
        service.startService()
        stopped = service.stopService()
        self.assertEqual(log, [server])
        server.stopped.callback(None)
        self.assertEqual(log, [server, admin])
        self.assertNoResult(stopped)
        admin.stopped.callback(None)
        self.successResultOf(stopped)


def _get(url, method="GET", body=None, contentType="application/json"):
    """
    @return: a Deferred firing with C{(code, body)} of a request to C{url},
        on a connection of its own.
    """
    headers = {"Content-Type": [contentType]} if body is not None else None
    d = treq.request(method, url, data=body, headers=headers, persistent=False)
    return d.addCallback(lambda response: treq.content(response).addCallback(lambda read: (response.code, read)))


ADMIN = re.compile(r"txscales: admin pages on http://(?P<host>[\d.]+):(?P<port>\d+)/")


class TwistdAdminTests(TestCase):
    """
    A real C{twistd txscales serve --admin} serves its admin pages.
    """

    timeout = 120

    @inlineCallbacks
    def test_adminPages(self):
        """
        /health, /admin/server with a live session and its pending call, and
        /admin/tracing GET and POST answer; /health says 503 while the
        server drains after SIGTERM.
        """
        server = yield startTwistd(
            ["txscales", "serve", "--listen", "tcp:0:interface=127.0.0.1", "--admin", "tcp:0:interface=127.0.0.1",
             "--iface", "txscales.demo.gen.TestService.Iface", "--handler", "txscales.demo.handler:makeHandler"],
            addCleanup=self.addCleanup,
        )
        admin = ADMIN.search(server.output)
        self.assertIsNotNone(admin, server.output)
        base = "http://127.0.0.1:%s" % (admin.group("port"),)
        self.assertEqual((yield _get(base + "/health")), (200, b"ok\n"))

        client = ThriftMux.newClient(TestService.Iface, server.dest, timeout=60)
        self.addCleanup(client.close)
        self.assertEqual((yield client.query("a")), "aa")
        held = client.delayedQuery("x", 60000)
        held.addErrback(lambda _: None)
        code, body = yield _get(base + "/admin/server")
        [listener] = json.loads(body)["servers"]
        address = "127.0.0.1:%d" % (server.port,)
        self.assertEqual((code, listener["address"], listener["drainState"]), (200, address, "serving"))
        self.assertEqual([s["pending"] for s in listener["sessions"]], [1])

        self.assertEqual((yield _get(base + "/admin/tracing")), (200, b'{"sampleRate": 0.001}\n'))
        posted = yield _get(base + "/admin/tracing", "POST", b'{"sampleRate": 0.5}')
        self.assertEqual(posted, (200, b'{"sampleRate": 0.5}\n'))
        bad = yield _get(base + "/admin/tracing", "POST", b"sampleRate=2", "application/x-www-form-urlencoded")
        self.assertEqual(bad[0], 400)

        draining = server.waitForLine("txscales: draining 1 session")
        ended = server.terminate()
        yield draining
        self.assertEqual((yield _get(base + "/health")), (503, b"draining\n"))
        yield client.close()
        result = yield ended
        self.assertIn("txscales: all sessions closed", result.output, result.describe())
