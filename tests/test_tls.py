"""
Tests for TLS and mutual TLS on ThriftMux and plain Thrift, client and
server, for the typed errors of failed handshakes, for Finagle's
opportunistic TLS negotiation in Mux, and for the TLS options of C{twistd}
(the C{twistd} servers themselves: test_tls_twistd).
"""

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.interfaces import ISSLTransport
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales.errors import (
    ConnectionLostError,
    ProtocolError,
    TlsCertificateExpiredError,
    TlsCertificateUntrustedError,
    TlsClientCertificateError,
    TlsError,
    TlsHostnameMismatchError,
    TlsNegotiationError,
)
from txscales.mux._clientsession import ClientSession, Ready
from txscales.tap import Options
from txscales.mux._serversession import ServerSession
from txscales.mux._messages import Rinit, Tinit, encodeMessage
from txscales.mux._session import MARKER_BYTES, StartTls
from txscales.thriftmux import ThriftMux

from tests._tls import LOCAL, Authorities, TlsServers


class TlsTestsMixin(TlsServers):
    """
    TLS from the first byte, and each reason a handshake fails.
    """

    @inlineCallbacks
    def test_tls(self):
        """
        A client trusting the private CA calls a TLS server.
        """
        port = yield self.serve(tls=self.serverTls())
        self.assertEqual((yield self.trusting(port).query("ab")), "abab")

    @inlineCallbacks
    def test_tlsOption(self):
        """
        tls=True on a tcp:// destination, with the host name to check, works as tls:// does.
        """
        port = yield self.serve(tls=self.serverTls())
        client = self.client(
            "tcp://127.0.0.1:%d" % (port,), tls=True, tlsCa=self.ca.path("ca.pem"), tlsHostname="localhost"
        )
        self.assertEqual((yield client.query("q")), "qq")

    @inlineCallbacks
    def test_sslEndpointString(self):
        """
        A server listening on a Twisted ssl: endpoint string serves TLS clients.
        """
        listen = "ssl:0:interface=127.0.0.1:privateKey=%s:certKey=%s" % (
            self.ca.path("server.key"),
            self.ca.path("server.pem"),
        )
        port = yield self.serve(listen)
        self.assertEqual((yield self.trusting(port).query("s")), "ss")

    @inlineCallbacks
    def test_builder(self):
        """
        The builder's tls() setter takes the same settings as the options.
        """
        port = yield self.serve(tls=self.serverTls(clientCa=True))
        builder = self.facade.newBuilder(TestService.Iface).dest("tcp://127.0.0.1:%d" % (port,)).timeout(10)
        client = builder.tls(
            ca=self.ca.path("ca.pem"), clientCert=self.ca.path("client.pem"), clientKey=self.ca.path("client.key")
        ).build()
        self.addCleanup(client.close)
        self.assertEqual((yield client.query("b")), "bb")

    def test_settingsWithoutTls(self):
        """
        TLS settings without tls=True or a tls:// destination are a TypeError.
        """
        self.assertRaises(TypeError, self.facade.newClient, TestService.Iface, "tcp://127.0.0.1:1", tlsCa="ca.pem")

    @inlineCallbacks
    def test_mutualTls(self):
        """
        A server requiring client certificates answers a client presenting one.
        """
        port = yield self.serve(tls=self.serverTls(clientCa=True))
        self.assertEqual((yield self.trusting(port, **self.withClientCert()).query("m")), "mm")

    @inlineCallbacks
    def assertTlsFailure(self, port, errorClass, **options):
        error = yield self.assertFailure(self.trusting(port, **options).query("x"), errorClass)
        self.assertIsInstance(error, TlsError)
        self.assertFalse(error.mayHaveReachedServer)
        self.assertIn("the request was not sent", str(error))

    @inlineCallbacks
    def test_missingClientCertificate(self):
        """
        A client without a certificate fails against a server requiring one.
        """
        port = yield self.serve(tls=self.serverTls(clientCa=True))
        yield self.assertTlsFailure(port, TlsClientCertificateError)

    @inlineCallbacks
    def test_untrustedClientCertificate(self):
        """
        A client certificate from a CA the server does not trust is refused.
        """
        port = yield self.serve(tls=self.serverTls(clientCa=True))
        yield self.assertTlsFailure(port, TlsClientCertificateError, **self.withClientCert(self.stranger))

    @inlineCallbacks
    def test_wrongCa(self):
        """
        A server certificate from a CA the client does not trust fails the call.
        """
        port = yield self.serve(tls=self.serverTls())
        yield self.assertTlsFailure(port, TlsCertificateUntrustedError, tlsCa=self.stranger.path("ca.pem"))

    @inlineCallbacks
    def test_expired(self):
        """
        An expired server certificate fails the call.
        """
        port = yield self.serve(tls=self.serverTls("expired"))
        yield self.assertTlsFailure(port, TlsCertificateExpiredError)

    @inlineCallbacks
    def test_wrongHostname(self):
        """
        A server certificate for another name fails the call.
        """
        port = yield self.serve(tls=self.serverTls("other"))
        yield self.assertTlsFailure(port, TlsHostnameMismatchError)

    @inlineCallbacks
    def test_wrongTlsHostname(self):
        """
        tlsHostname names the host the certificate must be valid for.
        """
        port = yield self.serve(tls=self.serverTls())
        yield self.assertTlsFailure(port, TlsHostnameMismatchError, tlsHostname="other.example")


class ThriftMuxTlsTests(TlsTestsMixin, TestCase):
    """
    TLS for ThriftMux.
    """


class ThriftTlsTests(TlsTestsMixin, TestCase):
    """
    TLS for plain Thrift.
    """

    protocol = "thrift"


class OpportunisticTests(TlsServers, TestCase):
    """
    Finagle's opportunistic TLS between a txscales client and server: the
    session starts in cleartext and switches to TLS in place after Rinit.
    """

    def opportunisticClient(self, port, level):
        options = {}
        if level is not None:
            options = dict(opportunisticTls=level, tlsCa=self.ca.path("ca.pem"), tlsHostname="localhost")
        return self.client("tcp://127.0.0.1:%d" % (port,), **options)

    @inlineCallbacks
    def serveAt(self, level):
        if level is None:
            port = yield self.serve()
        else:
            port = yield self.serve(tls=self.serverTls(), opportunisticTls=level)
        return port

    @inlineCallbacks
    def assertUpgraded(self, clientLevel, serverLevel):
        port = yield self.serveAt(serverLevel)
        client = self.opportunisticClient(port, clientLevel)
        self.assertEqual((yield client.query("a")), "aa")
        # A second call uses the same, upgraded session.
        self.assertEqual((yield client.query("b")), "bb")
        self.assertServerSpokeTls()

    @inlineCallbacks
    def assertCleartext(self, clientLevel, serverLevel):
        port = yield self.serveAt(serverLevel)
        self.assertEqual((yield self.opportunisticClient(port, clientLevel).query("c")), "cc")
        protocols = list(self.server.factory.protocols)
        self.assertFalse(any(ISSLTransport.providedBy(p.transport) for p in protocols))

    @inlineCallbacks
    def assertRefused(self, clientLevel, serverLevel):
        port = yield self.serveAt(serverLevel)
        error = yield self.assertFailure(self.opportunisticClient(port, clientLevel).query("d"), TlsNegotiationError)
        self.assertFalse(error.mayHaveReachedServer)

    def test_desiredDesired(self):
        """
        desired (client) with desired (server) upgrades to TLS.
        """
        return self.assertUpgraded("desired", "desired")

    def test_desiredRequired(self):
        """
        desired with required upgrades to TLS.
        """
        return self.assertUpgraded("desired", "required")

    def test_requiredDesired(self):
        """
        required with desired upgrades to TLS.
        """
        return self.assertUpgraded("required", "desired")

    def test_requiredRequired(self):
        """
        required with required upgrades to TLS.
        """
        return self.assertUpgraded("required", "required")

    def test_desiredOff(self):
        """
        A desiring client stays in cleartext with a server without TLS.
        """
        return self.assertCleartext("desired", None)

    def test_offDesired(self):
        """
        A client without TLS stays in cleartext with a desiring server.
        """
        return self.assertCleartext(None, "desired")

    def test_requiredOff(self):
        """
        A client requiring TLS refuses a server without it.
        """
        return self.assertRefused("required", None)

    def test_offRequired(self):
        """
        A server requiring TLS refuses a client without it.
        """
        return self.assertRefused(None, "required")

    @inlineCallbacks
    def test_requiredRefusesThrift(self):
        """
        A server requiring TLS refuses plain Thrift clients, which cannot negotiate it.
        """
        port = yield self.serveAt("required")
        self.protocol = "thrift"
        # It reads the server's Rerr as a broken answer, or sees the close.
        yield self.assertFailure(
            self.client("tcp://127.0.0.1:%d" % (port,)).query("e"), ConnectionLostError, ProtocolError
        )

    @inlineCallbacks
    def test_upgradeChecksCertificate(self):
        """
        The in-place upgrade checks the server's certificate like TLS from the first byte.
        """
        port = yield self.serve(tls=self.serverTls("expired"), opportunisticTls="desired")
        yield self.assertFailure(self.opportunisticClient(port, "desired").query("f"), TlsCertificateExpiredError)

    def test_needsSettings(self):
        """
        A server cannot offer opportunistic TLS without TLS settings.
        """
        self.assertRaises(
            ValueError, ThriftMux.newServer, TestService.Iface, TestServiceHandler(reactor), LOCAL, opportunisticTls="desired"
        )


class NegotiationTableTests(SynchronousTestCase):
    """
    The sans-IO sessions follow Finagle's OpportunisticTls.negotiate table.
    """

    def negotiate(self, clientLevel, serverLevel):
        """
        Run the handshake between the two sessions.

        @return: C{"tls"}, C{"cleartext"}, or the error the client raised.
        """
        client = ClientSession(tls=clientLevel)
        server = ServerSession(tls=serverLevel)
        client.start()
        server.receiveData(client.dataToSend())
        client.receiveData(server.dataToSend())
        serverEvents = []
        try:
            serverEvents = server.receiveData(client.dataToSend())
        except TlsNegotiationError:
            serverRefused = True
        else:
            serverRefused = False
        try:
            events = client.receiveData(server.dataToSend())
        except TlsNegotiationError:
            self.assertTrue(serverRefused or serverLevel == b"required" or clientLevel == b"required")
            return "refused"
        self.assertFalse(serverRefused)
        if [type(e) for e in events] == [StartTls]:
            self.assertEqual([type(e) for e in serverEvents], [StartTls])
            self.assertEqual(client.state, "tls")
            self.assertEqual([type(e) for e in client.tlsStarted()], [Ready])
            return "tls"
        self.assertEqual([type(e) for e in events], [Ready])
        self.assertEqual(serverEvents, [])
        return "cleartext"

    def test_table(self):
        """
        off/off, off/desired and desired/off stay in cleartext; desired or required on both sides is TLS; off against required is refused.
        """
        off, desired, required = b"off", b"desired", b"required"
        table = {
            (off, off): "cleartext",
            (off, desired): "cleartext",
            (desired, off): "cleartext",
            (desired, desired): "tls",
            (desired, required): "tls",
            (required, desired): "tls",
            (required, required): "tls",
            (off, required): "refused",
            (required, off): "refused",
        }
        self.assertEqual({k: self.negotiate(*k) for k in table}, table)

    def test_unknownLevelIsOff(self):
        """
        An unknown tls header value from the peer counts as off, on both sides.
        """
        headers = [(b"mux-framer", b"\x7f\xff\xff\xff"), (b"tls", b"maybe")]
        client = ClientSession(tls=b"desired")
        client.start()
        client.receiveData(MARKER_BYTES)
        self.assertEqual([type(e) for e in client.receiveData(encodeMessage(Rinit(1, 1, headers)))], [Ready])
        server = ServerSession(tls=b"desired")
        server.receiveData(MARKER_BYTES)
        self.assertEqual(server.receiveData(encodeMessage(Tinit(1, 1, headers))), [])
        self.assertEqual(server.state, "open")

    def test_dispatchesWaitForTls(self):
        """
        Dispatches made before the TLS handshake is done are written only once it is.
        """
        client = ClientSession(tls=b"desired")
        server = ServerSession(tls=b"desired")
        client.start()
        server.receiveData(client.dataToSend())
        client.receiveData(server.dataToSend())
        server.receiveData(client.dataToSend())
        client.receiveData(server.dataToSend())
        tag = client.dispatch(b"body")
        self.assertEqual(client.dataToSend(), b"")
        client.tlsStarted()
        dispatches = server.receiveData(client.dataToSend())
        self.assertEqual([(d.tag, d.body) for d in dispatches], [(tag, b"body")])

    def test_requiredRefusesLegacyClient(self):
        """
        A server requiring TLS answers a client without the handshake with Rerr and closes.
        """
        client = ClientSession(handshake=False)
        server = ServerSession(tls=b"required")
        client.start()
        client.dispatch(b"x")
        self.assertRaises(TlsNegotiationError, server.receiveData, client.dataToSend())
        self.assertIn(b"requires TLS", server.dataToSend())


    def test_headers(self):
        """
        Tinit and Rinit carry each side's level in the tls header.
        """
        client = ClientSession(tls=b"required")
        server = ServerSession(tls=b"desired")
        client.start()
        server.receiveData(client.dataToSend())
        client.receiveData(server.dataToSend())
        self.assertIn(b"\x00\x00\x00\x03tls\x00\x00\x00\x08required", client.dataToSend())
        server.receiveData(encodeMessage(Tinit(1, 1, [])))
        self.assertIn(b"\x00\x00\x00\x03tls\x00\x00\x00\x07desired", server.dataToSend())

    def test_serverRefusesAfterRinit(self):
        """
        A server without TLS answers a client requiring it with Rinit, then Rerr, as Finagle does.
        """
        server = ServerSession()
        server.receiveData(MARKER_BYTES)
        server.dataToSend()
        self.assertRaises(
            TlsNegotiationError, server.receiveData, encodeMessage(Tinit(1, 1, [(b"tls", b"required")]))
        )
        written = server.dataToSend()
        rinit = encodeMessage(Rinit(1, 1, [(b"mux-framer", b"\x7f\xff\xff\xff"), (b"tls", b"off")]))
        self.assertTrue(written.startswith(rinit))
        self.assertEqual(written[len(rinit) + 4], 0x80)
        self.assertIn(b"incompatible opportunistic TLS levels", written)
        self.assertEqual(server.state, "closed")

class TwistdOptionsTests(SynchronousTestCase):
    """
    The TLS options of twistd txscales are checked when parsed.
    """

    def setUp(self):
        self.ca = Authorities.get()[0]

    def parse(self, *argv):
        options = Options()
        options.parseOptions(list(argv))
        return options.subOptions

    def test_tlsSettings(self):
        """
        --tls-cert, --tls-key and --tls-ca make the server's TLS settings.
        """
        sub = self.parse(
            "demo-server", "--tls-cert", self.ca.path("server.pem"), "--tls-key", self.ca.path("server.key"),
            "--tls-ca", self.ca.path("ca.pem"),
        )
        self.assertIsNotNone(sub.tls)
        self.assertIsNone(self.parse("demo-server").tls)

    def test_usageErrors(self):
        """
        TLS options without --tls-cert, an unknown level, opportunistic TLS on plain Thrift and an unreadable certificate are usage errors.
        """
        cert = ("--tls-cert", self.ca.path("server.pem"), "--tls-key", self.ca.path("server.key"))
        for argv, text in [
            (("--tls-key", "k.pem"), "need --tls-cert"),
            (("--opportunistic-tls", "desired"), "need --tls-cert"),
            (cert + ("--opportunistic-tls", "maybe"), "desired or required"),
            (cert + ("--protocol", "thrift", "--opportunistic-tls", "desired"), "thriftmux only"),
            (("--tls-cert", self.ca.path("missing.pem")), "--tls-cert"),
        ]:
            e = self.assertRaises(usage.UsageError, self.parse, "demo-server", *argv)
            self.assertIn(text, str(e))

    def test_demoClientTls(self):
        """
        demo-client accepts tls:// destinations and TLS client settings.
        """
        sub = self.parse("demo-client", "--dest", "tls://127.0.0.1:1", "--tls-ca", "ca.pem", "--tls-cert", "c.pem")
        self.assertEqual((sub["dest"], sub["tls-ca"], sub["tls-cert"]), ("tls://127.0.0.1:1", "ca.pem", "c.pem"))


class VerifyCallbackTests(SynchronousTestCase):
    """
    The client's certificate check fails closed.
    """

    def test_unexpectedErrorRefuses(self):
        """
        An unexpected error while checking the server's identity refuses the certificate and is logged.
        """
        from txscales import _tls

        def broken(*args):
            raise ValueError("broken certificate")

        self.patch(_tls, "verify_service_identity", broken)
        self.patch(_tls, "extract_patterns", lambda certificate: [])
        creator = _tls._RecordingCreator(None, "localhost")
        self.assertFalse(creator._verify([object()], object(), object(), 0, 0, 1))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
