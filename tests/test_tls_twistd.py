"""
Tests for TLS served by C{twistd txscales}: ThriftMux, mutual TLS on plain
Thrift, opportunistic TLS and HTTPS.
"""

from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from txscales.demo.gen import TestService
from txscales.errors import TlsClientCertificateError, TlsNegotiationError
from txscales.http import ThriftHttp
from txscales.tap import Options, makeService

from tests._tls import LOCAL, TlsServers
from tests._twistd import runPeer, startDemoServer, twistdCommand


class TwistdTlsTests(TlsServers, TestCase):
    """
    twistd serves TLS with --tls-cert, --tls-key and --tls-ca.
    """

    def twistd(self, *options):
        return startDemoServer(
            "--tls-cert", self.ca.path("server.pem"), "--tls-key", self.ca.path("server.key"), *options,
            addCleanup=self.addCleanup,
        )

    @inlineCallbacks
    def test_thriftMux(self):
        """
        demo-server --tls-cert serves ThriftMux over TLS.
        """
        server = yield self.twistd()
        self.assertEqual((yield self.trusting(server.port).query("t")), "tt")
        result = yield runPeer(
            twistdCommand()
            + ["-n", "--pidfile=", "txscales", "demo-client", "--dest", "tls://127.0.0.1:%d" % (server.port,)]
            + ["--count", "5", "--tls-ca", self.ca.path("ca.pem")],
            addCleanup=self.addCleanup,
        )
        self.assertIn("5 calls", result.output, result.describe())
        self.assertIn("0 failed", result.output, result.describe())

    @inlineCallbacks
    def test_thriftMutual(self):
        """
        demo-server --protocol thrift --tls-ca requires client certificates.
        """
        self.protocol = "thrift"
        server = yield self.twistd("--protocol", "thrift", "--tls-ca", self.ca.path("ca.pem"))
        self.assertEqual((yield self.trusting(server.port, **self.withClientCert()).query("u")), "uu")
        yield self.assertFailure(self.trusting(server.port).query("v"), TlsClientCertificateError)

    @inlineCallbacks
    def test_opportunistic(self):
        """
        demo-server --opportunistic-tls required upgrades ThriftMux sessions in place.
        """
        server = yield self.twistd("--opportunistic-tls", "required")
        client = self.client(
            "tcp://127.0.0.1:%d" % (server.port,), opportunisticTls="desired", tlsCa=self.ca.path("ca.pem")
        )
        self.assertEqual((yield client.query("o")), "oo")
        yield self.assertFailure(self.client("tcp://127.0.0.1:%d" % (server.port,)).query("p"), TlsNegotiationError)

    @inlineCallbacks
    def test_https(self):
        """
        demo-server --protocol http --tls-cert answers HTTPS clients.
        """
        options = Options()
        options.parseOptions(
            ["demo-server", "--listen", LOCAL, "--protocol", "http"]
            + ["--tls-cert", self.ca.path("server.pem"), "--tls-key", self.ca.path("server.key")]
        )
        service = makeService(options, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        port = yield service.listening
        client = ThriftHttp.newClient(
            TestService.Iface,
            "tcp://127.0.0.1:%d" % (port.getHost().port,),
            timeout=10,
            tls=True,
            trustRoot=self.ca.trustRoot(),
            registry=CollectorRegistry(),
        )
        self.addCleanup(client.close)
        self.assertEqual((yield client.query("h")), "hh")
