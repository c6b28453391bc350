"""
What a client sees when a handler fails at once (raises synchronously)
rather than through a Deferred: a nack, a declared exception and an
undeclared one, over ThriftMux, plain Thrift and Thrift over HTTP.
"""

from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, fail, inlineCallbacks, succeed
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import Site

from txscales.demo.gen import TestService
from txscales.demo.gen.ttypes import InvalidQueryException
from txscales.demo.handler import TestServiceHandler
from txscales.errors import ApplicationError, ConnectionLostError, HttpStatusError, RequestNackedError
from txscales.http import ThriftHttp
from txscales.testing import MemoryNetwork
from txscales.thrift import BINARY
from txscales.thrift._processor import ThriftProcessor
from txscales.thrift._session import callHeader, encodeArgs

DEST = "tcp://127.0.0.1:9090"


class FailingHandler(TestServiceHandler):
    """
    The demo handler, whose C{query} refuses C{"nack"} and crashes on
    C{"crash"} at once, or through a failed Deferred when C{deferred} is
    set; C{raiseError} raises its declared exception at once.
    """

    def __init__(self, clock, deferred=False):
        TestServiceHandler.__init__(self, clock)
        self.deferred = deferred

    def query(self, x):
        if x == "nack":
            error = RequestNackedError()
        elif x == "crash":
            error = RuntimeError("boom")
        else:
            return x + x
        if self.deferred:
            return fail(error)
        raise error


class ProcessorContractTests(SynchronousTestCase):
    """
    C{ThriftProcessor.process} returns bytes or a Deferred, never a Failure.
    """

    def process(self, handler, name, args):
        processor = ThriftProcessor(TestService.Iface, handler)
        method = processor.methods[name]
        return processor.process(callHeader(method, 1, BINARY) + encodeArgs(method, args, {}, BINARY))

    def test_synchronousNackRaises(self):
        """
        A nack raised at once is raised by C{process}.
        """
        self.assertRaises(RequestNackedError, self.process, FailingHandler(None), "query", ("nack",))

    def test_synchronousFailuresAreReplies(self):
        """
        A declared or undeclared exception raised at once becomes reply
        bytes; a C{CancelledError} raised at once is an ordinary failure.
        """

        class Cancelling(TestServiceHandler):
            def query(self, x):
                raise CancelledError()

        for handler, name, args in [
            (FailingHandler(None), "raiseError", (3,)),
            (FailingHandler(None), "query", ("crash",)),
            (Cancelling(None), "query", ("x",)),
        ]:
            self.assertIs(type(self.process(handler, name, args)), bytes)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError, CancelledError)), 2)

    def test_firedDeferredIsAnsweredAtOnce(self):
        """
        A Deferred that fired already with a value is answered as that
        value is: with the same reply bytes, not a Deferred of them.
        """

        class Fired(TestServiceHandler):
            def query(self, x):
                return succeed(x + x)

        fired = self.process(Fired(None), "query", ("ab",))
        self.assertIs(type(fired), bytes)
        self.assertEqual(fired, self.process(TestServiceHandler(None), "query", ("ab",)))

    def test_waitingDeferredIsWaitedFor(self):
        """
        A Deferred that fired but waits on another Deferred is answered once
        that one fires, with its value.
        """
        inner = Deferred()

        class Waiting(TestServiceHandler):
            def query(self, x):
                return succeed(None).addCallback(lambda _: inner)

        d = self.process(Waiting(None), "query", ("ab",))
        self.assertNoResult(d)
        inner.callback("abab")
        self.assertEqual(self.successResultOf(d), self.process(TestServiceHandler(None), "query", ("ab",)))

    def test_firedFailureIsADeferredReply(self):
        """
        A Deferred that failed already still becomes a Deferred of reply
        bytes (the failure is handled, not left unhandled).
        """
        d = self.process(FailingHandler(None, deferred=True), "query", ("crash",))
        self.assertIs(type(self.successResultOf(d)), bytes)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class ThriftMuxTests(SynchronousTestCase):
    """
    Over ThriftMux (in memory), a synchronous failure reaches the client as
    a failure through a Deferred does.
    """

    def call(self, deferred, method, *args):
        network = MemoryNetwork()
        network.serveThriftMux(TestService.Iface, FailingHandler(network.clock, deferred))
        client = network.thriftMuxClient(TestService.Iface, DEST, maxRequeues=0)
        self.addCleanup(lambda: self.successResultOf(client.close()))
        return getattr(client, method)(*args)

    def test_nack(self):
        """
        A handler raising L{RequestNackedError} at once nacks the call,
        which fails with L{RequestNackedError}, as a failed Deferred does.
        """
        for deferred in (False, True):
            self.failureResultOf(self.call(deferred, "query", "nack"), RequestNackedError)

    def test_declaredException(self):
        """
        A declared exception raised at once reaches the client as itself.
        """
        error = self.failureResultOf(self.call(False, "raiseError", 7), InvalidQueryException).value
        self.assertEqual(error.errorCode, 7)

    def test_undeclaredException(self):
        """
        An undeclared exception raised at once reaches the client as an
        L{ApplicationError} naming it.
        """
        for deferred in (False, True):
            error = self.failureResultOf(self.call(deferred, "query", "crash"), ApplicationError).value
            self.assertIn("RuntimeError: boom", error.message)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)


class PlainThriftTests(SynchronousTestCase):
    """
    Over plain Thrift (in memory), and from a plain Thrift client of a
    ThriftMux server, synchronous failures behave as documented: a nack
    closes the connection (plain Thrift cannot carry it), exceptions are
    replies.
    """

    def client(self, serve, deferred=False):
        network = MemoryNetwork()
        serve(network)(TestService.Iface, FailingHandler(network.clock, deferred))
        client = network.thriftClient(TestService.Iface, DEST, stats=False)
        self.addCleanup(lambda: self.successResultOf(client.close()))
        return client

    def servers(self):
        return [lambda n: n.serveThrift, lambda n: n.serveThriftMux]

    def test_nackClosesConnection(self):
        """
        A nack raised at once closes the connection: the call fails with
        L{ConnectionLostError}, as with a failed Deferred, and the next
        call is answered on a new connection.
        """
        for serve in self.servers():
            for deferred in (False, True):
                client = self.client(serve, deferred)
                error = self.failureResultOf(client.query("nack"), ConnectionLostError).value
                self.assertTrue(error.mayHaveReachedServer)
                self.assertEqual(self.successResultOf(client.query("a")), "aa")

    def test_declaredException(self):
        """
        A declared exception raised at once reaches the client as itself.
        """
        for serve in self.servers():
            error = self.failureResultOf(self.client(serve).raiseError(4), InvalidQueryException).value
            self.assertEqual(error.errorCode, 4)

    def test_undeclaredException(self):
        """
        An undeclared exception raised at once reaches the client as an
        L{ApplicationError}.
        """
        for serve in self.servers():
            error = self.failureResultOf(self.client(serve).query("crash"), ApplicationError).value
            self.assertIn("RuntimeError: boom", error.message)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)


class ThriftHttpTests(TestCase):
    """
    The Thrift-over-HTTP resource answers a synchronous nack with 503, as a
    failed Deferred; exceptions are replies.
    """

    def client(self, deferred=False):
        site = Site(ThriftHttp.newResource(TestService.Iface, FailingHandler(reactor, deferred)))
        site.noisy = False
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = ThriftHttp.newClient(
            TestService.Iface, "tcp://127.0.0.1:%d" % (port.getHost().port,), timeout=5, registry=CollectorRegistry()
        )
        self.addCleanup(client.close)
        return client

    @inlineCallbacks
    def test_nack(self):
        """
        A nack, raised at once or through a Deferred, is a 503.
        """
        for deferred in (False, True):
            error = yield self.assertFailure(self.client(deferred).query("nack"), HttpStatusError)
            self.assertEqual(error.code, 503)

    @inlineCallbacks
    def test_exceptions(self):
        """
        Declared and undeclared exceptions raised at once are Thrift
        replies.
        """
        client = self.client()
        error = yield self.assertFailure(client.raiseError(2), InvalidQueryException)
        self.assertEqual(error.errorCode, 2)
        yield self.assertFailure(client.query("crash"), ApplicationError)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
