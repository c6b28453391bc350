"""
ThriftMux client against ThriftMux server over real TCP on 127.0.0.1.
"""

import gc
import random
import weakref

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, DeferredList, ensureDeferred, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txscales.demo.gen import TestService
from txscales.demo.gen.ttypes import InvalidQueryException
from txscales.demo.handler import TestServiceHandler
from txscales.errors import (
    ApplicationError,
    BadDestinationError,
    ClientClosedError,
    ConnectError,
    RequestTimeoutError,
    UnsupportedError,
)
from txscales.thrift import ThriftClient, describeService, proxyClass
from txscales.thriftmux import RequestContext, ThriftMux, ThriftMuxClient, TraceId, currentRequest
from txscales.mux._client import RETRIES_KEY, MuxRequest
from txscales.mux.protocol import Request
from txscales.mux._framing import EncodedContexts, encodeDispatch, encodeFrames
from txscales.mux._messages import Tdispatch, encodeMessage
from txscales.thriftmux._contexts import (
    CLIENT_ID_KEY,
    DEADLINE_KEY,
    NO_DEADLINE,
    TRACE_KEY,
    decodeDeadline,
    encodeClientIdPair,
    outgoingContexts,
)


class Handler(TestServiceHandler):
    """
    The demo handler, plus hooks the tests use.
    """

    def __init__(self):
        TestServiceHandler.__init__(self, reactor)
        self.contexts = []
        self.cancelled = 0
        self.downstream = None

    def query(self, x):
        request = currentRequest.get()
        self.contexts.append(request)
        if x == "crash":
            raise RuntimeError("lolol")
        if x == "forward" and self.downstream is not None:
            return self.downstream.query("inner")
        return x + x

    def delayedQuery(self, x, delayMs):
        d = TestServiceHandler.delayedQuery(self, x, delayMs)

        def cancelled(failure):
            self.cancelled += 1
            return failure

        return d.addErrback(cancelled)

    async def raiseError(self, errorCode):
        await deferLater(reactor, 0, lambda: None)
        raise InvalidQueryException(errorCode=errorCode)


class ServerMixin:
    @inlineCallbacks
    def startServer(self, handler=None):
        self.handler = handler or Handler()
        self.server = ThriftMux.newServer(TestService.Iface, self.handler, "tcp:0:interface=127.0.0.1", reactor=reactor, drainTimeout=2)
        self.server.startService()
        port = yield self.server.listening
        self.addCleanup(self.server.stopService)
        self.port = port.getHost().port
        return self.port

    def client(self, **options):
        options.setdefault("reactor", reactor)
        client = ThriftMux.newClient(TestService.Iface, "tcp://127.0.0.1:%d" % (self.port,), **options)
        self.addCleanup(client.close)
        return client


class CallTests(ServerMixin, TestCase):
    """
    Answers, declared exceptions, application errors and contexts.
    """

    @inlineCallbacks
    def setUp(self):
        yield self.startServer()

    @inlineCallbacks
    def test_query(self):
        """
        query(x) answers x + x.
        """
        client = self.client(timeout=5)
        self.assertEqual((yield client.query("x")), "xx")
        self.assertEqual((yield client.query(x="héllo")), "héllohéllo")

    @inlineCallbacks
    def test_declaredException(self):
        """
        A declared exception (raised by a coroutine handler) errbacks with
        the exception itself.
        """
        client = self.client(timeout=5)
        e = yield self.assertFailure(client.raiseError(7), InvalidQueryException)
        self.assertEqual(e.errorCode, 7)

    @inlineCallbacks
    def test_undeclaredException(self):
        """
        An undeclared handler failure reaches the caller as an
        ApplicationError (a TApplicationException on the wire).
        """
        client = self.client(timeout=5)
        e = yield self.assertFailure(client.query("crash"), ApplicationError)
        self.assertEqual(e.type, 6)
        self.assertIn("lolol", e.message)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_onewayRefused(self):
        """
        One-way methods fail at once: ThriftMux cannot carry them.
        """
        return self.assertFailure(self.client().log("m"), UnsupportedError)

    def test_badArguments(self):
        """
        Wrong arguments fail the call's Deferred with TypeError.
        """
        return self.assertFailure(self.client().query("a", "b", "c"), TypeError)

    @inlineCallbacks
    def test_contexts(self):
        """
        Calls carry a root TraceContext, a Deadline of now + timeout in
        absolute nanoseconds and the client id.
        """
        client = self.client(timeout=5, clientId="tester", random=random.Random(3))
        before = reactor.seconds()
        yield client.query("a")
        request = self.handler.contexts[-1]
        keys = [k for k, _ in request.contexts]
        self.assertEqual(keys[:3], [TRACE_KEY, b"com.twitter.finagle.Retries", DEADLINE_KEY])
        self.assertEqual(request.clientId, "tester")
        trace = request.trace
        self.assertEqual(trace, TraceId(trace.spanId, trace.spanId, trace.spanId))
        # Span ids come from the injected random source: the same seed gives
        # the same id.
        yield self.client(timeout=5, random=random.Random(3)).query("b")
        self.assertEqual(self.handler.contexts[-1].trace.spanId, trace.spanId)
        timestamp, deadline = decodeDeadline(dict(request.contexts)[DEADLINE_KEY])
        self.assertAlmostEqual(deadline - timestamp, 5e9, delta=1e3)
        self.assertTrue(before * 1e9 - 1e9 < timestamp < reactor.seconds() * 1e9 + 1e9)

    @inlineCallbacks
    def test_noTimeoutNoDeadline(self):
        """
        A call without a timeout carries Finagle's "no deadline".
        """
        yield self.client().query("a")
        _, deadline = decodeDeadline(dict(self.handler.contexts[-1].contexts)[DEADLINE_KEY])
        self.assertEqual(deadline, 0x7FFFFFFFFFFFFFFF)

    @inlineCallbacks
    def test_childTraceAndPassedOnContexts(self):
        """
        A call made while handling a request is a child span of it, inherits
        its client id and deadline, and passes unknown contexts on.
        """
        inner = Handler()
        yield self.startServer(inner)
        innerClient = self.client(timeout=5)
        outer = Handler()
        outer.downstream = innerClient
        yield self.startServer(outer)
        outerClient = self.client(timeout=2, clientId="edge")
        # Add an unknown context to the outer call.
        original = outerClient.stack

        def stack(request):
            request.contexts = request.contexts + [(b"x-custom", b"kept")]
            return original(request)

        stack.close = original.close
        outerClient.stack = stack
        self.assertEqual((yield outerClient.query("forward")), "innerinner")
        parent, child = outer.contexts[-1], inner.contexts[-1]
        self.assertEqual(child.trace.traceId, parent.trace.traceId)
        self.assertEqual(child.trace.parentId, parent.trace.spanId)
        self.assertNotEqual(child.trace.spanId, parent.trace.spanId)
        self.assertEqual(child.clientId, "edge")
        self.assertLessEqual(child.deadline, parent.deadline)
        self.assertIn((b"x-custom", b"kept"), child.contexts)
        self.assertEqual([k for k, _ in child.contexts].count(CLIENT_ID_KEY), 1)

    @inlineCallbacks
    def test_builder(self):
        """
        The builder makes the same client as newClient.
        """
        client = (
            ThriftMux.newBuilder(TestService.Iface)
            .dest("tcp://127.0.0.1:%d" % (self.port,))
            .timeout(5)
            .clientId("built")
            .reactor(reactor)
            .build()
        )
        self.addCleanup(client.close)
        self.assertEqual((yield client.query("b")), "bb")
        self.assertEqual(self.handler.contexts[-1].clientId, "built")

    def test_builderWithoutDest(self):
        """
        Building without a destination, or with a malformed one, raises
        BadDestinationError; an unknown scheme raises UnknownPluginError.
        """
        from txscales.errors import UnknownPluginError

        self.assertRaises(BadDestinationError, ThriftMux.newBuilder(TestService.Iface).build)
        self.assertRaises(BadDestinationError, ThriftMux.newClient, TestService.Iface, "127.0.0.1:9090")
        self.assertRaises(BadDestinationError, ThriftMux.newClient, TestService.Iface, "tcp://127.0.0.1")
        self.assertRaises(BadDestinationError, ThriftMux.newClient, TestService.Iface, "zk://127.0.0.1:2181")
        e = self.assertRaises(UnknownPluginError, ThriftMux.newClient, TestService.Iface, "zk2://x")
        self.assertIn("zk", str(e))

    @inlineCallbacks
    def test_closedClient(self):
        """
        Calls on a closed client fail as not having reached the server.
        """
        client = self.client()
        yield client.query("a")
        yield client.close()
        e = yield self.assertFailure(client.query("a"), ClientClosedError)
        self.assertFalse(e.mayHaveReachedServer)


class TimeoutTests(ServerMixin, TestCase):
    """
    Timeouts discard calls without poisoning the session.
    """

    @inlineCallbacks
    def setUp(self):
        yield self.startServer()

    @inlineCallbacks
    def test_timeoutDiscards(self):
        """
        A timed-out call fails with RequestTimeoutError, the server's handler
        is cancelled, and the next call on the same connection succeeds.
        """
        client = self.client(timeout=0.05)
        # The calls that must succeed have time to spare on a busy machine.
        patient = client.withOptions(timeout=10)
        yield patient.query("warm")
        e = yield self.assertFailure(client.delayedQuery("slow", 2000), RequestTimeoutError)
        self.assertTrue(e.written)
        self.assertEqual(e.timeout, 0.05)
        self.assertEqual((yield patient.query("fast")), "fastfast")
        self.assertEqual(self.handler.cancelled, 1)
        self.assertEqual(client.stack.nodes[0].endpoint.connects, 1)

    @inlineCallbacks
    def test_perCallTimeout(self):
        """
        withOptions overrides the client's timeout for its calls only.
        """
        client = self.client(timeout=0.05)
        patient = client.withOptions(timeout=5)
        self.assertEqual((yield patient.delayedQuery("p", 100)), "pp")
        yield self.assertFailure(client.delayedQuery("q", 2000), RequestTimeoutError)

    @inlineCallbacks
    def test_noCrossedAnswersUnderLoad(self):
        """
        With 20 ms timeouts against a 0-40 ms handler, no call receives
        another call's answer, nothing reconnects, and fast calls afterwards
        succeed on the same connection.
        """
        client = self.client(timeout=0.02)
        rng = random.Random(7)
        outcomes = {"ok": 0, "timeout": 0, "wrong": 0}

        def check(answer, x):
            outcomes["ok" if answer == x + x else "wrong"] += 1

        def timedOut(failure):
            failure.trap(RequestTimeoutError)
            outcomes["timeout"] += 1

        for burst in range(10):
            calls = []
            for i in range(100):
                x = "b%d-%d" % (burst, i)
                d = client.delayedQuery(x, rng.randint(0, 40))
                calls.append(d.addCallback(check, x).addErrback(timedOut))
            yield DeferredList(calls)
        self.assertEqual(outcomes["wrong"], 0)
        # Both outcomes must occur for the test to mean anything.
        self.assertGreater(outcomes["ok"], 0)
        self.assertGreater(outcomes["timeout"], 0)
        self.assertEqual(outcomes["ok"] + outcomes["timeout"], 1000)
        fast = client.withOptions(timeout=5)
        answers = yield DeferredList([fast.query("f%d" % i) for i in range(100)], fireOnOneErrback=True)
        self.assertEqual([a for _, a in answers], ["f%df%d" % (i, i) for i in range(100)])
        self.assertEqual(client.stack.nodes[0].endpoint.connects, 1)
        self.assertEqual(len(self.server.factory.protocols), 1)

    @inlineCallbacks
    def test_cancel(self):
        """
        Cancelling a call's Deferred discards it on the server.
        """
        client = self.client()
        yield client.query("warm")
        d = client.delayedQuery("c", 5000)
        done = Deferred()
        reactor.callLater(0.05, d.cancel)
        d.addErrback(lambda f: done.callback(f.value))
        error = yield done
        self.assertIsInstance(error, CancelledError)
        self.assertTrue(error.written)
        self.assertEqual((yield client.query("after")), "afterafter")
        self.assertEqual(self.handler.cancelled, 1)


class ConnectTests(TestCase):
    """
    Connection failures are typed.
    """

    @inlineCallbacks
    def test_connectionRefused(self):
        """
        A refused connection fails the call with ConnectError, which did not
        reach the server.
        """
        from socket import socket

        s = socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        client = ThriftMux.newClient(TestService.Iface, "tcp://127.0.0.1:%d" % (port,), reactor=reactor)
        e = yield self.assertFailure(client.query("x"), ConnectError)
        self.assertFalse(e.mayHaveReachedServer)
        yield client.close()


class CoroutineHandlerTests(ServerMixin, TestCase):
    """
    Handlers may be coroutines and see their request's context.
    """

    @inlineCallbacks
    def test_coroutineSeesContext(self):
        """
        A coroutine handler reads the request context after awaiting.
        """
        seen = []

        class AsyncHandler(Handler):
            async def query(self, x):
                await deferLater(reactor, 0, lambda: None)
                seen.append(currentRequest.get().clientId)
                return x.upper()

        yield self.startServer(AsyncHandler())
        self.assertEqual((yield self.client(clientId="co").query("a")), "A")
        self.assertEqual(seen, ["co"])

    def test_ensureDeferredUsable(self):
        """
        Client calls can be awaited from a coroutine.
        """

        async def main():
            await self.startServer()
            return await self.client(timeout=5).query("aw")

        return ensureDeferred(main()).addCallback(self.assertEqual, "awaw")


class RequestContextTests(SynchronousTestCase):
    """
    A request's context reads the request's contexts only when asked.
    """

    def test_ofRequest(self):
        """
        C{RequestContext.of} reads the contexts of its request when first
        asked for, and parses them as a context made from them does.
        """
        pairs = [(b"com.twitter.finagle.thrift.ClientIdContext", b"svc"), (b"k", b"v")]
        request = Request(b"body", [])
        context = RequestContext.of(request)
        request.contexts = pairs
        self.assertEqual(context.contexts, pairs)
        self.assertEqual((context.clientId, context.passedOn()), ("svc", [(b"k", b"v")]))
        self.assertEqual(RequestContext(pairs).clientId, "svc")


class OutgoingContextsTests(SynchronousTestCase):
    """
    The contexts of a root call carry a wire form equal to their pairs'.
    """

    def test_encodedAsPairs(self):
        """
        With or without a client id, the pre-made wire form is the bytes
        the pairs encode to, and a requeue's contexts are encoded afresh.
        """
        for clientId in (None, b"", b"svc", b"x" * 300):
            contexts = outgoingContexts(1700000000.25, 0.5, clientId, 0x0123456789ABCDEF)
            self.assertEqual(type(contexts), EncodedContexts)
            pair = encodeClientIdPair(clientId) if clientId else None
            premade = outgoingContexts(1700000000.25, 0.5, clientId, 0x0123456789ABCDEF, clientIdPair=pair)
            self.assertEqual((premade, premade.encoded), (contexts, contexts.encoded))
            expected = encodeMessage(Tdispatch(7, list(contexts), b"", [], b"body"))
            self.assertEqual(encodeDispatch(7, contexts, b"", (), b"body"), expected)
            self.assertEqual(encodeDispatch(7, contexts, b"", (), b"body", window=20), encodeFrames(Tdispatch(7, list(contexts), b"", [], b"body"), 20))
            requeued = MuxRequest(b"body", contexts).retried(2).contexts
            self.assertEqual(type(requeued), list)
            self.assertIn((RETRIES_KEY, b"\x00\x00\x00\x02"), requeued)

    def test_noDeadline(self):
        """
        Without a timeout the deadline context says none.
        """
        contexts = dict(outgoingContexts(10.0, None, None, 1))
        self.assertEqual(decodeDeadline(contexts[DEADLINE_KEY]), (10 * 10**9, NO_DEADLINE))


class ProxyClassTests(SynchronousTestCase):
    """
    Client proxy classes are made once per service and base class, and do
    not keep a service interface alive.
    """

    def test_madeOnceHeldWeakly(self):
        """
        The same interface and base give the same class; once the
        interface is gone, so is its class.
        """
        iface = type("Iface", (TestService.Iface,), {"__module__": TestService.__name__})
        methods = describeService(iface)
        cls = proxyClass(ThriftMuxClient, iface, methods)
        self.assertIs(proxyClass(ThriftMuxClient, iface, methods), cls)
        self.assertIsNot(proxyClass(ThriftClient, iface, methods), cls)
        gone = weakref.ref(cls)
        del iface, cls
        # The first collection frees the interface, and with it the entry
        # holding its class; the second, the class (a cycle, by its MRO).
        gc.collect()
        gc.collect()
        self.assertIsNone(gone())
