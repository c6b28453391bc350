"""
Tests for the HTTP client and Thrift over HTTP, against a twisted.web
server and an independent one (Python's http.server), over HTTP and HTTPS
with a private test CA.
"""

import json
import sys
import os
from io import BytesIO

import treq
from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks
from twisted.internet.error import ConnectionDone
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from twisted.web.test.requesthelper import DummyChannel

from tests._tls import CertificateAuthority
from tests._twistd import Subprocess, spawn, startTwistd
from txscales.demo.gen import TestService
from txscales.demo.gen.ttypes import InvalidQueryException
from txscales.demo.handler import TestServiceHandler
from txscales.errors import ConnectError, HttpStatusError, RequestNackedError, RequestTimeoutError, TlsError
from txscales.http import Http, ThriftHttp
from txscales.thrift import decodeReply, describeService, encodeCall

HERE = os.path.dirname(os.path.abspath(__file__))


class Echo(Resource):
    """
    The twisted.web twin of the peer server's routes.
    """

    isLeaf = True

    def render(self, request):
        path = request.path.decode("ascii")
        request.setHeader(b"Content-Type", b"application/json")
        if path.startswith("/status/"):
            request.setResponseCode(int(path.rpartition("/")[2]))
            return b'{"error": true}'
        if path == "/slow":
            ms = int(request.args.get(b"ms", [b"0"])[0])
            d = deferLater(reactor, ms / 1000.0, lambda: None)
            d.addCallback(lambda _: (request.write(b'{"slow": true}'), request.finish()))
            d.addErrback(lambda f: f.trap(CancelledError))
            request.notifyFinish().addErrback(lambda _: d.cancel())
            return NOT_DONE_YET
        body = request.content.read()
        return json.dumps(
            {
                "server": "twisted.web",
                "method": request.method.decode("ascii"),
                "path": request.uri.decode("ascii"),
                "headers": {k.decode("ascii").lower(): v[0].decode("latin-1") for k, v in request.requestHeaders.getAllRawHeaders()},
                "body": body.decode("utf-8", "replace"),
            }
        ).encode("utf-8")


class ServersMixin:
    """
    Start the two kinds of server, plain or TLS.
    """

    def twistedServer(self, tls=None):
        site = Site(Echo())
        site.noisy = False
        if tls is None:
            port = reactor.listenTCP(0, site, interface="127.0.0.1")
        else:
            port = reactor.listenSSL(0, site, tls.serverOptions(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    @inlineCallbacks
    def pythonServer(self, *args):
        process = spawn(
            Subprocess([sys.executable, os.path.join(HERE, "peers", "http_server.py")] + list(args), name="http.server"),
            reactor,
            addCleanup=self.addCleanup,
        )
        match = yield process.waitForLine(r"listening on (\d+)")
        return int(match.group(1))

    def client(self, ports, **options):
        options.setdefault("registry", CollectorRegistry())
        client = Http.newClient("tcp://" + ",".join("127.0.0.1:%d" % (p,) for p in ports), **options)
        self.addCleanup(client.close)
        return client


class HttpClientTests(ServersMixin, TestCase):
    """
    The HTTP client against twisted.web and Python's http.server.
    """

    timeout = 30

    @inlineCallbacks
    def checkMethods(self, port, serverName):
        client = self.client([port], timeout=5)
        for method in ("get", "delete"):
            response = yield getattr(client, method)("/echo?a=1", headers={"X-Test": "v"})
            echo = yield response.json()
            self.assertEqual((response.code, echo["method"], echo["path"]), (200, method.upper(), "/echo?a=1"))
            self.assertEqual((echo["server"], echo["headers"]["x-test"]), (serverName, "v"))
        for method in ("post", "put", "patch"):
            response = yield getattr(client, method)("/echo", data=b"payload-" + method.encode())
            echo = yield response.json()
            self.assertEqual((echo["method"], echo["body"]), (method.upper(), "payload-" + method))
        response = yield client.post("/echo", json={"k": [1, 2]})
        echo = yield response.json()
        self.assertEqual(json.loads(echo["body"]), {"k": [1, 2]})
        self.assertEqual(echo["headers"]["content-type"], "application/json; charset=UTF-8")
        response = yield client.head("/echo")
        self.assertEqual((response.code, (yield treq.content(response))), (200, b""))
        response = yield client.request("GET", "echo")
        self.assertEqual((yield response.json())["path"], "/echo")

    def test_methodsTwisted(self):
        """
        Every method, body, header and JSON helper works against twisted.web.
        """
        return self.checkMethods(self.twistedServer(), "twisted.web")

    @inlineCallbacks
    def test_methodsPython(self):
        """
        Every method, body, header and JSON helper works against Python's
        http.server.
        """
        port = yield self.pythonServer()
        yield self.checkMethods(port, "python-http.server")

    @inlineCallbacks
    def test_errorStatus(self):
        """
        An error status is a response, unless the client raises for status.
        """
        port = self.twistedServer()
        response = yield self.client([port]).get("/status/404")
        self.assertEqual(response.code, 404)
        self.assertEqual((yield response.json()), {"error": True})
        e = yield self.assertFailure(self.client([port], raiseForStatus=True).get("/status/503"), HttpStatusError)
        self.assertEqual((e.code, e.body), (503, b'{"error": true}'))

    @inlineCallbacks
    def test_timeout(self):
        """
        A request past its timeout is cancelled with RequestTimeoutError,
        against both servers.
        """
        python = yield self.pythonServer()
        for port in (self.twistedServer(), python):
            client = self.client([port], timeout=0.2)
            yield self.assertFailure(client.get("/slow?ms=3000"), RequestTimeoutError)
            response = yield client.get("/slow?ms=10", timeout=5)
            self.assertEqual(response.code, 200)
            yield treq.content(response)

    @inlineCallbacks
    def test_balancedAndRequeued(self):
        """
        Requests spread over the destination's servers; a server that
        refuses connections is routed around with no failed request.
        """
        python = yield self.pythonServer()
        from tests._twistd import freePort

        client = self.client([self.twistedServer(), python, freePort()], timeout=5)
        servers = []
        for _ in range(30):
            response = yield client.get("/echo")
            servers.append((yield response.json())["server"])
        self.assertEqual(set(servers), {"twisted.web", "python-http.server"})
        self.assertGreater(client.stack.dispatcher.requeues, 0)

    @inlineCallbacks
    def test_connectionRefused(self):
        """
        A refused connection fails with ConnectError, not sent.
        """
        from tests._twistd import freePort

        e = yield self.assertFailure(self.client([freePort()], failFast={"start": 60}).get("/"), ConnectError)
        self.assertFalse(e.mayHaveReachedServer)


class HttpsTests(ServersMixin, TestCase):
    """
    HTTPS with certificate verification on by default.
    """

    timeout = 30

    def setUp(self):
        self.authority = CertificateAuthority()

    @inlineCallbacks
    def test_testCaVerified(self):
        """
        With the test CA as trust root, HTTPS works against both servers.
        """
        python = yield self.pythonServer("--tls-cert", os.path.join(self.authority.directory, "server.pem"), "--tls-key", os.path.join(self.authority.directory, "server.key"))
        for port, name in [(self.twistedServer(self.authority), "twisted.web"), (python, "python-http.server")]:
            client = self.client([port], tls=True, trustRoot=self.authority.trustRoot(), timeout=5)
            response = yield client.post("/echo", data=b"secret")
            echo = yield response.json()
            self.assertEqual((echo["server"], echo["body"]), (name, "secret"))

    @inlineCallbacks
    def test_unknownCaRefused(self):
        """
        Without the test CA, verification fails with a TlsError that did
        not send the request.
        """
        port = self.twistedServer(self.authority)
        e = yield self.assertFailure(self.client([port], tls=True, timeout=5).get("/echo"), TlsError)
        self.assertFalse(e.mayHaveReachedServer)


class ThriftHttpTests(ServersMixin, TestCase):
    """
    Thrift over HTTP against Apache Thrift's wire format, both ways.
    """

    timeout = 60

    def resourceServer(self, path=b"thrift"):
        root = Resource()
        root.putChild(path, ThriftHttp.newResource(TestService.Iface, TestServiceHandler(reactor)))
        site = Site(root)
        site.noisy = False
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def thriftClient(self, port, path="/thrift", **options):
        client = ThriftHttp.newClient(
            TestService.Iface, "tcp://127.0.0.1:%d" % (port,), path=path, timeout=5, registry=CollectorRegistry(), **options
        )
        self.addCleanup(client.close)
        return client

    @inlineCallbacks
    def checkClient(self, port, **options):
        client = self.thriftClient(port, **options)
        self.assertEqual((yield client.query("ab")), "abab")
        e = yield self.assertFailure(client.raiseError(5), InvalidQueryException)
        self.assertEqual(e.errorCode, 5)
        self.assertIsNone((yield client.log("one-way")))

    def test_clientAgainstResource(self):
        """
        The txscales client calls a resource mounted in a twisted.web site.
        """
        return self.checkClient(self.resourceServer())

    @inlineCallbacks
    def test_clientAgainstApacheServer(self):
        """
        The txscales client calls Apache Thrift's own THttpServer (which
        answers HTTP/1.0 and closes every connection, hence no pooling).
        """
        port = yield self.pythonServer("--thrift")
        yield self.checkClient(port, persistent=False)

    @inlineCallbacks
    def test_apacheClientAgainstResource(self):
        """
        Apache Thrift's THttpClient calls the txscales resource.
        """
        from tests._twistd import runPeer

        port = self.resourceServer()
        result = yield runPeer(
            [sys.executable, os.path.join(HERE, "peers", "thrift_http_client.py"), "http://127.0.0.1:%d/thrift" % (port,)],
            addCleanup=self.addCleanup,
            timeout=30,
        )
        self.assertEqual(result.lastJSON(), {"query": "xyxy", "error": 9, "oneway": True}, result.describe())

    @inlineCallbacks
    def test_twistdServeHttp(self):
        """
        twistd txscales serve --protocol http serves a handler over HTTP.
        """
        server = yield startTwistd(
            [
                "txscales", "serve", "--protocol", "http", "--listen", "tcp:0:interface=127.0.0.1",
                "--iface", "txscales.demo.gen.TestService.Iface", "--handler", "txscales.demo.handler:makeHandler",
            ],
            addCleanup=self.addCleanup,
        )
        client = self.thriftClient(server.port, path="/")
        self.assertEqual((yield client.query("tw")), "twtw")


class PendingHandler:
    """
    A C{TestService} handler whose C{query} answers when the test says.

    @ivar calls: the Deferred of each C{query}, in order.
    @ivar cancelled: how many of them were cancelled.
    """

    def __init__(self):
        self.calls = []
        self.cancelled = 0

    def query(self, x):
        def cancel(d):
            self.cancelled += 1

        d = Deferred(cancel)
        self.calls.append(d)
        return d


class ThriftResourceTests(SynchronousTestCase):
    """
    L{ThriftResource} answers a call whose handler waits once it answers,
    and never after its client went away.
    """

    def setUp(self):
        self.handler = PendingHandler()
        self.resource = ThriftHttp.newResource(TestService.Iface, self.handler)
        self.method = describeService(TestService.Iface)["query"]
        self.channel = DummyChannel()
        self.request = Request(self.channel)
        self.request.method = b"POST"
        self.request.content = BytesIO(encodeCall(self.method, ("ab",), {}))
        self.assertEqual(self.resource.render(self.request), NOT_DONE_YET)
        [self.call] = self.handler.calls

    def test_answer(self):
        """
        The handler's answer is written as the reply and ends the response.
        """
        self.call.callback("abab")
        self.assertTrue(self.request.finished)
        self.assertEqual(self.request.code, 200)
        body = self.channel.transport.written.getvalue().split(b"\r\n\r\n", 1)[1]
        self.assertEqual(decodeReply(self.method, body), "abab")

    def test_failure(self):
        """
        A handler that refuses the call (a nack) gets the client a 503.
        """
        self.call.errback(RequestNackedError("busy"))
        self.assertTrue(self.request.finished)
        self.assertEqual(self.request.code, 503)

    def test_clientGone(self):
        """
        A client going away cancels the handler's call, and nothing is
        written to its request afterwards.
        """
        self.request.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.handler.cancelled, 1)
        self.assertIsNone(self.successResultOf(self.call))
        self.assertFalse(self.request.finished)
        self.assertEqual(self.channel.transport.written.getvalue(), b"")
