"""
Tests for service discovery: serverset JSON, URIs, scheme plugins, and
ZooKeeper serversets against a real ZooKeeper server.
"""

import json
import os
import sys
import tempfile

from twisted.internet import reactor
from twisted.application.service import Service
from twisted.internet.address import UNIXAddress
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales.discovery import AnnouncedService, formatMember, parseMember, resolveDestination
from txscales.discovery._serverset import MAX_MEMBER_SIZE, parseZooKeeperUri
from txscales.discovery._zookeeper import Announcer, ServersetDestination
from txscales.errors import BadDestinationError, BadMemberError, DiscoveryError, NoEndpointsError, UnknownPluginError
from txscales.thriftmux import ThriftMux

from tests._zookeeper import ZooKeeperServer, freePort

# A member as Finagle's ServerSet writes it (field order as Jackson emits
# it), with an additional endpoint, a shard and metadata.
FINAGLE_MEMBER = (
    b'{"serviceEndpoint":{"host":"10.0.0.1","port":9090},'
    b'"additionalEndpoints":{"admin":{"host":"10.0.0.1","port":9990},"thrift":{"host":"10.0.0.2","port":9091}},'
    b'"status":"ALIVE","shard":3,"metadata":{"k":"v"}}'
)
DEAD_MEMBER = b'{"serviceEndpoint":{"host":"10.0.0.3","port":9090},"additionalEndpoints":{},"status":"DEAD"}'


class ServersetTests(SynchronousTestCase):
    """
    Members parse as Finagle and Aurora write them.
    """

    def test_finagleMember(self):
        """
        A Finagle member gives its service endpoint, shard, metadata and
        named endpoints.
        """
        member = parseMember(FINAGLE_MEMBER)
        self.assertEqual((member.host, member.port, member.status, member.shard), ("10.0.0.1", 9090, "ALIVE", 3))
        self.assertEqual(member.metadata, {"k": "v"})
        self.assertEqual(member.endpoints["admin"], ("10.0.0.1", 9990))
        self.assertTrue(member.alive)

    def test_namedEndpoint(self):
        """
        A name selects an additional endpoint; a member without it is None.
        """
        self.assertEqual(parseMember(FINAGLE_MEMBER, "thrift").port, 9091)
        self.assertIsNone(parseMember(FINAGLE_MEMBER, "http"))

    def test_deadMember(self):
        """
        A DEAD member parses and is not alive.
        """
        member = parseMember(DEAD_MEMBER)
        self.assertEqual((member.status, member.alive), ("DEAD", False))

    def test_badMembers(self):
        """
        Invalid data raises BadMemberError.
        """
        for data in [
            b"not json",
            b"[]",
            b"\xff\xfe",
            b'{"additionalEndpoints":{},"status":"ALIVE"}',
            b'{"serviceEndpoint":{"host":"h","port":"9090"},"status":"ALIVE"}',
            b'{"serviceEndpoint":{"host":"h","port":0},"status":"ALIVE"}',
            b'{"serviceEndpoint":{"host":"h","port":1},"status":"SLEEPY"}',
            b'{"serviceEndpoint":{"host":"h","port":1},"shard":"3"}',
            b'{"serviceEndpoint":{"host":"h","port":1},"additionalEndpoints":{"a":{"host":"h"}}}',
        ]:
            self.assertRaises(BadMemberError, parseMember, data)

    def test_hostileMembers(self):
        """
        Oversized, deeply nested or ill-typed data raises BadMemberError and
        nothing else.
        """
        endpoint = b'{"serviceEndpoint":{"host":"%s","port":%d}%s}'
        for data in [
            b"[" * 2000,
            b'{"a":' * 2000,
            b"[" * 9 + b"]" * 9,
            b'{"serviceEndpoint":{"host":"h","port":1},"x":"' + b"a" * MAX_MEMBER_SIZE + b'"}',
            "not bytes",
            endpoint % (b"a" * 254, 1, b""),
            endpoint % (b"", 1, b""),
            endpoint % (b"bad host", 1, b""),
            endpoint % (b"h/x", 1, b""),
            endpoint % (b"-h", 1, b""),
            endpoint % (b"1::2::3", 1, b""),
            endpoint % (b"h", 65536, b""),
            endpoint % (b"h", -1, b""),
            endpoint % (b"h", 1, b',"metadata":["k"]'),
            endpoint % (b"h", 1, b',"metadata":{"k":1}'),
            endpoint % (b"h", 1, b',"status":["ALIVE"]'),
            endpoint % (b"h", 1, b',"shard":4294967296'),
            endpoint % (b"h", 1, b',"additionalEndpoints":{"a":{"host":"x y","port":1}}'),
        ]:
            self.assertRaises(BadMemberError, parseMember, data)

    def test_validHostsAndNesting(self):
        """
        DNS names, IPv4 and IPv6 addresses are hosts; brackets inside
        strings do not count as nesting.
        """
        for host in ["10.0.0.1", "::1", "fe80::1", "a-b.example.com", "host_1.", "x" * 63 + "." + "y" * 63]:
            data = formatMember(host, 1, metadata={"k": "[{" * 20 + '\\"\\'})
            member = parseMember(data)
            self.assertEqual((member.host, member.metadata["k"]), (host, "[{" * 20 + '\\"\\'))

    def test_formatRoundTrip(self):
        """
        A formatted member parses back to the same fields.
        """
        data = formatMember("127.0.0.1", 9000, shard=2, metadata={"a": "b"}, additionalEndpoints={"admin": ("127.0.0.1", 9001)})
        member = parseMember(data)
        self.assertEqual((member.host, member.port, member.shard, member.metadata), ("127.0.0.1", 9000, 2, {"a": "b"}))
        self.assertEqual(json.loads(data)["status"], "ALIVE")

    def test_uris(self):
        """
        zk:// URIs give hosts, path and endpoint name; bad ones raise
        BadDestinationError.
        """
        self.assertEqual(parseZooKeeperUri("zk://a:1,b:2/x/y#admin"), ("a:1,b:2", "/x/y", "admin"))
        self.assertEqual(parseZooKeeperUri("zk://a:1/x/"), ("a:1", "/x", None))
        for uri in ["zk://a:1", "zk:///x", "zk://a/x", "tcp://a:1/x", "zk://a:b/x"]:
            self.assertRaises(BadDestinationError, parseZooKeeperUri, uri)


class SchemeTests(SynchronousTestCase):
    """
    Destinations are resolved by plugins keyed by scheme.
    """

    def test_static(self):
        """
        tcp:// resolves to a ready static list.
        """
        destination = resolveDestination("tcp://127.0.0.1:1,[::1]:2", reactor)
        self.assertEqual(self.successResultOf(destination.ready), [("127.0.0.1", 1), ("::1", 2)])
        seen = []
        destination.watch(seen.append)
        self.assertEqual(seen, [[("127.0.0.1", 1), ("::1", 2)]])

    def test_unknownScheme(self):
        """
        An unknown scheme raises UnknownPluginError naming the known ones.
        """
        e = self.assertRaises(UnknownPluginError, resolveDestination, "nope://x", reactor)
        self.assertIn("tcp", str(e))
        self.assertIn("zk", str(e))
        self.assertRaises(BadDestinationError, resolveDestination, "no-scheme", reactor)

    def test_thirdPartyScheme(self):
        """
        A plugin file dropped on the plugin path adds a scheme.
        """
        import twisted.plugins

        directory = tempfile.mkdtemp()
        pluginDir = os.path.join(directory, "twisted", "plugins")
        os.makedirs(pluginDir)
        with open(os.path.join(pluginDir, "txscales_test_memscheme.py"), "w") as f:
            f.write(
                "from zope.interface import implementer\n"
                "from twisted.plugin import IPlugin\n"
                "from txscales.interfaces import IDiscoveryScheme\n"
                "@implementer(IPlugin, IDiscoveryScheme)\n"
                "class Mem:\n"
                "    scheme = 'mem'\n"
                "    description = 'test'\n"
                "    def resolve(self, uri, reactor, **options):\n"
                "        from txscales.discovery._resolve import StaticDestination\n"
                "        return StaticDestination([('127.0.0.1', int(uri.rpartition('/')[2]))])\n"
                "mem = Mem()\n"
            )
        twisted.plugins.__path__.append(pluginDir)
        self.addCleanup(twisted.plugins.__path__.remove, pluginDir)
        self.addCleanup(sys.modules.pop, "twisted.plugins.txscales_test_memscheme", None)
        destination = resolveDestination("mem://x/77", reactor)
        self.assertEqual(destination.addresses, [("127.0.0.1", 77)])


class _UnixPort:
    def getHost(self):
        return UNIXAddress("/run/demo.sock")


class AnnouncedServiceTests(SynchronousTestCase):
    """
    L{AnnouncedService} announces servers that listen on TCP.
    """

    def test_notTcp(self):
        """
        A server listening on a UNIX socket fails its C{listening} with
        DiscoveryError, before any ZooKeeper session is made.
        """
        server = Service()
        server.listening = succeed(_UnixPort())
        service = AnnouncedService(server, "zk://127.0.0.1:1/demo", Clock())
        service.startService()
        error = self.failureResultOf(server.listening, DiscoveryError).value
        self.assertIn("not a TCP address", str(error))
        self.assertIsNone(service.announcer)


def memberData(port, status="ALIVE"):
    return formatMember("127.0.0.1", port, status=status)


class ZooKeeperTests(TestCase):
    """
    Serversets in a real ZooKeeper.
    """

    timeout = 60

    @inlineCallbacks
    def setUp(self):
        self.zk = ZooKeeperServer(reactor, self.addCleanup)
        yield self.zk.start()
        self.writer = yield self.zk.connect()
        self.addCleanup(lambda: self.writer.stop())
        yield self.writer.call("ensure_path", "/svc")

    def create(self, data, name="member_", sequence=True, ephemeral=False):
        return self.writer.call("create", "/svc/" + name, data, ephemeral=ephemeral, sequence=sequence)

    def destination(self, path="/svc", endpointName=None, connectTimeout=10.0):
        destination = ServersetDestination(reactor, self.zk.hosts, path, endpointName, connectTimeout, 4.0)
        self.addCleanup(destination.close)
        return destination

    def changed(self, destination, predicate):
        d = Deferred()

        def check(addresses):
            if predicate(addresses) and not d.called:
                d.callback(addresses)

        stop = destination.watch(check)
        return d.addBoth(lambda result: (stop(), result)[1])

    @inlineCallbacks
    def test_membersFollowed(self):
        """
        Only ALIVE member_ children count; bad JSON is skipped; joins, leaves
        and status changes are followed.
        """
        first = yield self.create(memberData(9001))
        yield self.create(memberData(9002))
        yield self.create(DEAD_MEMBER)
        yield self.create(b"{broken", name="member_bad", sequence=False)
        yield self.create(memberData(9009), name="other_", sequence=True)
        destination = self.destination()
        addresses = yield destination.ready
        self.assertEqual(addresses, [("127.0.0.1", 9001), ("127.0.0.1", 9002)])
        described = destination.describe()
        self.assertEqual((described["kind"], described["path"], described["endpoint"]), ("serverset", "/svc", None))
        members = sorted((m["status"], m.get("port")) for m in described["members"])
        self.assertEqual(members, [("ALIVE", 9001), ("ALIVE", 9002), ("BAD", None), ("DEAD", 9090)])
        yield self.create(memberData(9003))
        yield self.changed(destination, lambda a: ("127.0.0.1", 9003) in a)
        yield self.writer.call("delete", first)
        yield self.changed(destination, lambda a: ("127.0.0.1", 9001) not in a)
        node = [n for n, m in destination.members.items() if m is not None and m.port == 9002][0]
        yield self.writer.call("set", "/svc/" + node, memberData(9002, "STOPPING"))
        addresses = yield self.changed(destination, lambda a: ("127.0.0.1", 9002) not in a)
        self.assertEqual(addresses, [("127.0.0.1", 9003)])

    @inlineCallbacks
    def test_hostileMemberSkipped(self):
        """
        A hostile member next to good ones is skipped with a logged
        BadMemberError: the set resolves to the good ones, and later joins
        are seen.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        yield self.create(memberData(9001))
        yield self.create(b"[" * 2000)
        yield self.create(b'{"serviceEndpoint":{"host":"x y","port":1}}')
        yield self.create(memberData(9002))
        destination = self.destination()
        addresses = yield destination.ready
        self.assertEqual(addresses, [("127.0.0.1", 9001), ("127.0.0.1", 9002)])
        yield self.create(memberData(9003))
        addresses = yield self.changed(destination, lambda a: ("127.0.0.1", 9003) in a)
        self.assertEqual(len(addresses), 3)
        skipped = [e["error"] for e in events if "skipping serverset member" in e.get("log_format", "")]
        self.assertEqual([type(e) for e in skipped], [BadMemberError, BadMemberError])

    @inlineCallbacks
    def test_namedEndpointAndMissingPath(self):
        """
        A #name picks an additional endpoint; a path that does not exist yet
        is an empty set, filled when members appear.
        """
        destination = self.destination("/later", endpointName="admin")
        self.assertEqual((yield destination.ready), [])
        yield self.writer.call("ensure_path", "/later")
        yield self.writer.call("create", "/later/member_", FINAGLE_MEMBER, sequence=True)
        addresses = yield self.changed(destination, lambda a: a)
        self.assertEqual(addresses, [("10.0.0.1", 9990)])

    @inlineCallbacks
    def test_pathAppearsBeforeItsWatch(self):
        """
        A path created after listing it failed but before the watch for
        its creation was set is still read.
        """
        destination = self.destination("/appearing")
        call = destination._zk.call

        def createFirst(method, *args, **kwargs):
            if method != "exists":
                return call(method, *args, **kwargs)
            d = self.writer.call("ensure_path", "/appearing")
            d.addCallback(lambda _: self.writer.call("create", "/appearing/member_", FINAGLE_MEMBER, sequence=True))
            return d.addCallback(lambda _: call(method, *args, **kwargs))

        destination._zk.call = createFirst
        self.assertEqual((yield destination.ready), [])
        addresses = yield self.changed(destination, lambda a: a)
        self.assertEqual(addresses, [("10.0.0.1", 9090)])

    @inlineCallbacks
    def test_unreachable(self):
        """
        With ZooKeeper unreachable, the destination fails with
        DiscoveryError after its timeout, and so do a client's calls.
        """
        uri = "zk://127.0.0.1:%d/svc" % (freePort(),)
        client = ThriftMux.newClient(TestService.Iface, uri, timeout=5, discoveryTimeout=0.5)
        self.addCleanup(client.close)
        e = yield self.assertFailure(client.whenReady(), DiscoveryError)
        self.assertFalse(e.mayHaveReachedServer)
        yield self.assertFailure(client.query("x"), DiscoveryError)

    @inlineCallbacks
    def test_emptySetFailsFast(self):
        """
        An empty serverset fails calls at once with NoEndpointsError.
        """
        client = ThriftMux.newClient(TestService.Iface, self.zk.uri("/svc"), timeout=5)
        self.addCleanup(client.close)
        yield client.whenReady()
        yield self.assertFailure(client.query("x"), NoEndpointsError)

    @inlineCallbacks
    def test_restartKeepsLastSet(self):
        """
        While ZooKeeper restarts the last known set stays; afterwards changes
        are seen again.
        """
        yield self.create(memberData(9001))
        destination = self.destination()
        yield destination.ready
        yield self.zk.stop()
        self.assertEqual(destination.addresses, [("127.0.0.1", 9001)])
        yield self.zk.start()
        # The writer's session may have expired while ZooKeeper was down
        # (kazoo's reconnection backoff can outgrow its 4 s timeout): write
        # with a new session.
        writer = yield self.zk.connect()
        self.addCleanup(writer.stop)
        yield writer.call("create", "/svc/member_", memberData(9002), sequence=True)
        addresses = yield self.changed(destination, lambda a: ("127.0.0.1", 9002) in a)
        self.assertIn(("127.0.0.1", 9001), addresses)

    @inlineCallbacks
    def test_announcer(self):
        """
        An announcer writes an ephemeral member with the server's JSON and
        removes it on stop.
        """
        announcer = Announcer(reactor, self.zk.uri("/announced"), "127.0.0.1", 9555, metadata={"v": "1"})
        node = yield announcer.start()
        data, stat = yield self.writer.call("get", node)
        member = parseMember(data)
        self.assertEqual((member.host, member.port, member.status, member.metadata), ("127.0.0.1", 9555, "ALIVE", {"v": "1"}))
        self.assertTrue(stat.ephemeralOwner)
        self.assertTrue(node.rpartition("/")[2].startswith("member_"))
        yield announcer.stop()
        exists = yield self.writer.call("exists", node)
        self.assertIsNone(exists)

    @inlineCallbacks
    def test_clientOverServerset(self):
        """
        A client on zk:// calls the servers announced in the serverset.
        """
        ports = []
        for _ in range(2):
            server = ThriftMux.newServer(TestService.Iface, TestServiceHandler(reactor), "tcp:0:interface=127.0.0.1", stats=False)
            server.startService()
            self.addCleanup(server.stopService)
            port = yield server.listening
            ports.append(port.getHost().port)
            yield self.create(memberData(ports[-1]))
        client = ThriftMux.newClient(TestService.Iface, self.zk.uri("/svc"), timeout=5, stats=False)
        self.addCleanup(client.close)
        answers = yield client.query("z")
        self.assertEqual(answers, "zz")
        self.assertEqual(sorted(n.endpoint.port for n in client.stack.nodes), sorted(ports))
