"""
Interop tests against a real C{twistd -n txscales demo-server} subprocess,
started exactly as users start it: Scales' own ThriftMux client, Apache
Thrift's framed client (downgrade), txscales' own client, and graceful
shutdown on SIGTERM (Tdrain, nacks, outstanding replies, Rdrain).
"""

import os
import signal
import sys
import time

from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.Thrift import TApplicationException, TMessageType
from thrift.transport.TTransport import TMemoryBuffer
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase

from txscales.demo.gen import TestService
from txscales.demo.gen.ttypes import InvalidQueryException
from txscales.errors import RequestTimeoutError, SessionDrainingError
from txscales.mux._framing import FrameDecoder
from txscales.mux._messages import (
    STATUS_NACK,
    STATUS_OK,
    Rdiscarded,
    Rdispatch,
    Rdrain,
    Rerr,
    Rinit,
    Tdispatch,
    Tdrain,
    Tinit,
    encodeMessage,
)
from txscales.mux._session import MARKER_BYTES, localHeaders
from txscales.mux.protocol import MuxClientProtocol
from txscales.thriftmux import ThriftMux

from tests._proxy import listenProxy
from tests._twistd import ProcessExitedEarly, requirePeer, runPeer, startDemoServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(REPO, "tests", "peers")
SCALES_PYTHON = os.path.join(REPO, ".peers", "scales", "bin", "python")
SCALES_CLIENT = os.path.join(PEERS, "scales_client.py")
THRIFT_CLIENT = os.path.join(PEERS, "thrift_client.py")

# Test timeout (seconds): bounds server start-up and every peer run.
TIMEOUT = 45


def scalesPython():
    """
    @return: the interpreter of Scales' peer virtualenv.
    @raise SkipTest: when it is missing (the test fails instead when the
        C{CI} environment variable is set).
    """
    requirePeer(
        os.access(SCALES_PYTHON, os.X_OK),
        "Scales' peer virtualenv is missing (%s): run scripts/setup-scales-peer" % (SCALES_PYTHON,),
    )
    return SCALES_PYTHON


def assertShutDownCleanly(testCase, result):
    """
    Assert that a twistd server stopped by SIGTERM shut down cleanly: it
    logged the drain and twistd's "Server Shut Down.", aborted no session at
    the drain deadline, logged no traceback, and ended either with exit
    status 0 or, as twistd does on purpose after a clean shutdown caused by a
    signal (C{twisted.application.app._exitWithSignal}), by re-raising that
    SIGTERM.
    """
    log = result.describe()
    testCase.assertIn("Received SIGTERM", result.output, log)
    testCase.assertIn("txscales: all sessions closed", result.output, log)
    testCase.assertIn("Server Shut Down.", result.output, log)
    testCase.assertNotIn("drain deadline passed", result.output, log)
    testCase.assertNotIn("Traceback", result.output, log)
    testCase.assertIn((result.exitCode, result.signal), [(0, None), (None, signal.SIGTERM)], log)


def encodeCall(name, args):
    """
    @return: a strict binary Thrift CALL message of C{args} (a generated
        C{<method>_args}), seqid 0, as ThriftMux carries it.
    """
    buffer = TMemoryBuffer()
    protocol = TBinaryProtocol(buffer)
    protocol.writeMessageBegin(name, TMessageType.CALL, 0)
    args.write(protocol)
    protocol.writeMessageEnd()
    return buffer.getvalue()


def decodeReply(body, resultClass):
    """
    @return: the C{<method>_result} decoded from a binary Thrift reply.
    @raise TApplicationException: for an exception reply.
    """
    protocol = TBinaryProtocol(TMemoryBuffer(body))
    _, messageType, _ = protocol.readMessageBegin()
    if messageType == TMessageType.EXCEPTION:
        error = TApplicationException()
        error.read(protocol)
        raise error
    result = resultClass()
    result.read(protocol)
    return result


def delayedQueryBody(x, delayMs):
    """
    @return: a C{delayedQuery(x, delayMs)} call body.
    """
    return encodeCall("delayedQuery", TestService.delayedQuery_args(x=x, delayMs=delayMs))


def delayedQueryAnswer(reply):
    """
    @return: the string a C{delayedQuery} Mux reply carries.
    """
    return decodeReply(reply.body, TestService.delayedQuery_result).success


class RawMuxSession(Protocol):
    """
    A hand-driven Mux client session (handshake included) that never closes
    the connection itself, so that a close can only come from the server.

    When the server sends Tdrain it misbehaves once on purpose: it sends a
    new Tdispatch (tag 2, C{query("late")}), and only once that is answered
    and another C{rdrainDelay} seconds passed, answers Rdrain.

    @ivar received: every message received, in order.
    @ivar openAtRdrain: whether the connection was still open when Rdrain
        was due (None before).
    @ivar ready: fires when Rinit arrives.
    @ivar drainReceived: fires when Tdrain arrives.
    @ivar lost: fires with None when the connection is closed.
    @ivar lostReason: why it closed (a L{Failure}), once closed.
    """

    def __init__(self, rdrainDelay=0.1):
        self._rdrainDelay = rdrainDelay
        self._drainTag = None
        self.openAtRdrain = None
        self._decoder = FrameDecoder()
        self.received = []
        self.ready = Deferred()
        self.drainReceived = Deferred()
        self.lost = Deferred()
        self.lostReason = None
        self.connected = False

    def connectionMade(self):
        self.connected = True
        self.transport.write(MARKER_BYTES)

    def dataReceived(self, data):
        for message in self._decoder.feed(data):
            self.received.append(message)
            kind = type(message)
            if kind is Rerr and not self.ready.called:
                self.transport.write(encodeMessage(Tinit(message.tag, 1, localHeaders())))
            elif kind is Rinit:
                self.ready.callback(message)
            elif kind is Tdrain and self._drainTag is None:
                self._drainTag = message.tag
                late = encodeCall("query", TestService.query_args(x="late"))
                self.transport.write(encodeMessage(Tdispatch(2, (), b"", (), late)))
                self.drainReceived.callback(message)
            elif kind is Rdispatch and message.tag == 2 and self._drainTag is not None:
                self._rdrainCall = reactor.callLater(self._rdrainDelay, self._sendRdrain)

    def _sendRdrain(self):
        self.openAtRdrain = self.connected
        if self.connected:
            self.transport.write(encodeMessage(Rdrain(self._drainTag)))

    def connectionLost(self, reason):
        self.connected = False
        self.lostReason = reason
        self.lost.callback(None)

    def abort(self):
        """
        Abort the connection if it is still open (for cleanup).

        @return: a Deferred firing with None once closed.
        """
        call = getattr(self, "_rdrainCall", None)
        if call is not None and call.active():
            call.cancel()
        if self.connected:
            self.transport.abortConnection()
        d = Deferred()
        self.lost.addCallback(lambda _: d.callback(None))
        return d


class ServerTestCase(TestCase):
    """
    Base: each test gets its own demo-server subprocess, killed at cleanup.
    """

    timeout = TIMEOUT
    serverOptions = ()

    @inlineCallbacks
    def setUp(self):
        self.server = yield startDemoServer(*self.serverOptions, addCleanup=self.addCleanup)

    def txscalesClient(self, timeout=5):
        """
        @return: a txscales ThriftMux client of the server, closed at
            cleanup.
        """
        client = ThriftMux.newClient(TestService.Iface, "tcp://127.0.0.1:%d" % (self.server.port,), timeout=timeout)
        self.addCleanup(client.close)
        return client


class ScalesClientTests(ServerTestCase):
    """
    Scales' own ThriftMux client (another process, gevent) gets correct
    answers from C{twistd -n txscales demo-server}.
    """

    def setUp(self):
        self.python = scalesPython()
        return ServerTestCase.setUp(self)

    @inlineCallbacks
    def runScales(self, mode, *options):
        """
        Run Scales' client peer in C{mode} against the server.

        @return: a Deferred firing with its JSON summary.
        """
        argv = [self.python, "-I", SCALES_CLIENT, "--port", str(self.server.port), "--mode", mode,
                "--max-seconds", "30"] + list(options)
        result = yield runPeer(argv, addCleanup=self.addCleanup)
        self.assertEqual(result.exitCode, 0, result.describe())
        summary = result.lastJSON()
        summary["_describe"] = result.describe()
        return summary

    def assertSummary(self, summary, **expected):
        """
        Assert the given keys of a peer's JSON summary, showing all of it on
        failure.
        """
        got = {key: summary.get(key) for key in expected}
        self.assertEqual(got, expected, summary["_describe"])

    @inlineCallbacks
    def test_query(self):
        """
        Sequential query calls are all answered x + x.
        """
        s = yield self.runScales("query", "--count", "100")
        self.assertSummary(s, ok=100, wrong=0, errors=0, timeouts=0, connected=True)

    @inlineCallbacks
    def test_concurrent(self):
        """
        Concurrent query calls (10 outstanding) are all answered x + x.
        """
        s = yield self.runScales("concurrent", "--count", "200", "--concurrency", "10")
        self.assertSummary(s, ok=200, wrong=0, errors=0, timeouts=0, maxInFlight=10)

    @inlineCallbacks
    def test_timeouts(self):
        """
        Slow calls time out (Scales sends Tdiscarded) while every fast call,
        including those reusing a discarded tag, is answered correctly.
        """
        s = yield self.runScales("timeouts", "--count", "3", "--timeout", "0.5", "--delay-ms", "1000")
        self.assertSummary(
            s,
            wrong=0,
            errors=0,
            slowCalls=3,
            slowTimedOut=3,
            slowAnswered=0,
            fastCalls=9,
            fastOk=9,
            finalOk=True,
            timeouts=3,
            ok=9,
        )
        self.assertEqual(s["wire"]["discardsSent"], 3, s["_describe"])

    @inlineCallbacks
    def test_error(self):
        """
        raiseError(7) surfaces InvalidQueryException(errorCode=7) and the
        connection keeps working afterwards.
        """
        s = yield self.runScales("error", "--count", "3")
        self.assertSummary(s, ok=3, wrong=0, errorTypes=["ScalesError(InvalidQueryException)"], afterErrorQueryOk=True)
        self.assertEqual(s["surfaced"][0]["errorCode"], 7, s["_describe"])


class ThriftClientTests(ServerTestCase):
    """
    Apache Thrift's own framed client gets correct answers from the ThriftMux
    server (downgrade).
    """

    @inlineCallbacks
    def runThrift(self, *options):
        """
        Run Apache Thrift's client peer with C{options}.

        @return: a Deferred firing with its JSON summary and its result.
        """
        argv = [sys.executable, THRIFT_CLIENT, "--port", str(self.server.port)] + list(options)
        result = yield runPeer(argv, addCleanup=self.addCleanup)
        self.assertEqual(result.exitCode, 0, result.describe())
        return result.lastJSON(), result

    @inlineCallbacks
    def assertServed(self, protocol):
        summary, result = yield self.runThrift("--transport", "framed", "--protocol", protocol, "--count", "100")
        got = {k: summary[k] for k in ("ok", "wrong", "errors", "exceptionsOk", "afterOnewayOk")}
        self.assertEqual(
            got, {"ok": 101, "wrong": 0, "errors": 0, "exceptionsOk": 3, "afterOnewayOk": True}, result.describe()
        )

    def test_framedBinary(self):
        """
        TFramedTransport + TBinaryProtocol: queries, a delayed query, a
        declared exception and a one-way call all work.
        """
        return self.assertServed("binary")

    def test_framedCompact(self):
        """
        TFramedTransport + TCompactProtocol works the same.
        """
        return self.assertServed("compact")

    @inlineCallbacks
    def test_bufferedRefused(self):
        """
        An unframed (TBufferedTransport) client is not served: its connection
        is closed at once (no hang), and the server keeps serving others.
        """
        summary, result = yield self.runThrift("--transport", "buffered", "--count", "2", "--errors", "0", "--timeout", "5")
        self.assertEqual((summary["ok"], summary["wrong"]), (0, 0), result.describe())
        self.assertIn("TTransportException", summary["errorTypes"], result.describe())
        self.assertLess(summary["elapsed"], 4, result.describe())
        client = self.txscalesClient()
        self.assertEqual((yield client.query("still")), "stillstill")


class TxscalesClientTests(ServerTestCase):
    """
    txscales' own ThriftMux client, in process on the trial reactor, against
    the twistd server.
    """

    @inlineCallbacks
    def test_queries(self):
        """
        Concurrent and sequential calls are answered x + x.
        """
        client = self.txscalesClient()
        xs = ["c%d" % i for i in range(200)]
        answers = yield gatherResults([client.query(x) for x in xs])
        self.assertEqual(answers, [x + x for x in xs])
        for i in range(20):
            self.assertEqual((yield client.query("s%d" % i)), "s%ds%d" % (i, i))
        self.assertEqual((yield client.delayedQuery("d", 20)), "dd")

    @inlineCallbacks
    def test_declaredException(self):
        """
        raiseError(7) errbacks with InvalidQueryException itself (not
        wrapped), and the session keeps working.
        """
        client = self.txscalesClient()
        error = yield self.assertFailure(client.raiseError(7), InvalidQueryException)
        self.assertEqual(error.errorCode, 7)
        self.assertEqual((yield client.query("after")), "afterafter")

    @inlineCallbacks
    def test_timeoutThenReuse(self):
        """
        A call slower than its timeout fails with RequestTimeoutError and the
        session goes on answering correctly.
        """
        client = self.txscalesClient()
        self.assertEqual((yield client.query("warm")), "warmwarm")
        yield self.assertFailure(client.withOptions(timeout=0.1).delayedQuery("slow", 2000), RequestTimeoutError)
        answers = yield gatherResults([client.query("r%d" % i) for i in range(20)])
        self.assertEqual(answers, ["r%dr%d" % (i, i) for i in range(20)])


class DrainTests(ServerTestCase):
    """
    SIGTERM drains the twistd server gracefully.
    """

    # Longer than any test here may take: reaching it would mean a session
    # was aborted instead of drained (which the log would also show).
    serverOptions = ("--drain-timeout", "20")

    @inlineCallbacks
    def test_sigtermDrain(self):
        """
        On SIGTERM every accepted call is answered, sessions see Tdrain, a
        dispatch after Tdrain is refused (locally, and nacked by the server),
        an idle negotiated session is closed by the server after its Rdrain,
        and twistd shuts down cleanly having drained.
        """
        host, port = "127.0.0.1", self.server.port
        delayMs = 1500

        # 1. txscales' ThriftMux client with 50 calls in flight.
        client = self.txscalesClient()
        finishedAt = {}

        def note(answer, x):
            finishedAt[x] = reactor.seconds()
            return answer

        xs = ["d%d" % i for i in range(50)]
        calls = [client.delayedQuery(x, delayMs).addCallback(note, x) for x in xs]
        # The server reads a connection's frames in order: once this reply
        # is in, all 50 dispatches were accepted and are outstanding.
        self.assertEqual((yield client.query("fence")), "fencefence")

        # 2. A raw MuxClientProtocol, to observe Tdrain and the local refusal
        # of a dispatch made after it, with 3 calls of its own in flight.
        observer = MuxClientProtocol(reactor, pingInterval=None)
        yield connectProtocol(TCP4ClientEndpoint(reactor, host, port), observer)
        self.addCleanup(observer.close)
        yield observer.ready
        seen = {}

        def statusChanged(p):
            if p.drainRequested and "drainAt" not in seen:
                seen["drainAt"] = reactor.seconds()
                seen["late"] = p.dispatch(delayedQueryBody("late", 0))
                seen["late"].addErrback(lambda f: seen.update(lateFailure=f))

        observer.statusObservers.append(statusChanged)
        observerCalls = [observer.dispatch(delayedQueryBody("p%d" % i, delayMs)) for i in range(3)]
        fence = yield observer.dispatch(delayedQueryBody("fence", 0))
        self.assertEqual(delayedQueryAnswer(fence), "fencefence")

        # 3. An idle session that did the handshake and never closes itself.
        raw = RawMuxSession()
        yield connectProtocol(TCP4ClientEndpoint(reactor, host, port), raw)
        self.addCleanup(raw.abort)
        yield raw.ready

        callsDone = DeferredList(calls, consumeErrors=True)
        observerDone = DeferredList(observerCalls, consumeErrors=True)
        result = yield self.server.terminate()
        outcomes = yield callsDone
        observerOutcomes = yield observerDone
        log = result.describe()

        # Every accepted call was answered, after the drain had begun.
        failures = [(x, o[1]) for x, o in zip(xs, outcomes) if not o[0]]
        self.assertEqual(failures, [], log)
        self.assertEqual([o[1] for o in outcomes], [x + x for x in xs], log)
        self.assertIn("drainAt", seen, "the observer session never saw Tdrain\n" + log)
        early = [x for x in xs if finishedAt[x] < seen["drainAt"]]
        self.assertEqual(early, [], "calls answered before the drain began: not a drain test\n" + log)

        # The observer saw Tdrain, refused a new dispatch locally, got its
        # own outstanding answers, then closed.
        self.assertTrue(observer.drainRequested)
        self.assertIn("lateFailure", seen, "a dispatch after Tdrain did not fail\n" + log)
        self.assertIsInstance(seen["lateFailure"].value, SessionDrainingError)
        self.assertEqual(
            [delayedQueryAnswer(o[1]) if o[0] else o[1] for o in observerOutcomes], ["p0p0", "p1p1", "p2p2"], log
        )
        yield observer.closed

        # The raw session: Tdrain, its late dispatch nacked, the idle session
        # kept open until its (delayed) Rdrain, then closed cleanly by the
        # server.
        yield raw.lost
        reason = raw.lostReason
        self.assertTrue(raw.drainReceived.called, log)
        replies = [m for m in raw.received if type(m) is Rdispatch]
        self.assertEqual([(m.tag, m.status) for m in replies], [(2, STATUS_NACK)], log)
        self.assertIs(raw.openAtRdrain, True, "the server closed the session before its Rdrain\n" + log)
        self.assertTrue(reason.check(ConnectionDone), "raw session lost uncleanly: %s\n%s" % (reason, log))

        # twistd exited 0 and its log shows the drain, with no session
        # aborted at the deadline.
        assertShutDownCleanly(self, result)
        self.assertIn("txscales: draining 3 session(s)", result.output)

    @inlineCallbacks
    def test_sigtermWithIdleScalesSession(self):
        """
        A server holding an idle Scales session (no handshake, never answers
        Tdrain) closes it at once on SIGTERM and exits promptly, well within
        its drain timeout.
        """
        python = scalesPython()
        proxy = yield listenProxy(self.server.host, self.server.port, FrameDecoder, self.addCleanup)
        # One round: a slow call that times out after 0.5 s (Tdiscarded),
        # fast calls, then 4.3 s idle before the last calls.
        argv = [python, "-I", SCALES_CLIENT, "--port", str(proxy.port), "--mode", "timeouts", "--count", "1",
                "--timeout", "0.5", "--delay-ms", "4000", "--max-seconds", "20"]
        scales = runPeer(argv, addCleanup=self.addCleanup)

        def idle(p):
            return len(p.fromServer(Rdispatch)) >= 2 and p.fromServer(Rdiscarded)

        # Idle: the slow call was discarded (Rdiscarded) and both fast calls
        # of the round were answered.
        waiting = proxy.waitUntil(idle)

        def scalesEnded(peer):
            if not waiting.called:
                waiting.errback(ProcessExitedEarly("its session went idle", peer))

        scales.addCallback(scalesEnded)
        yield waiting
        sentAt = time.monotonic()
        result = yield self.server.terminate()
        elapsed = time.monotonic() - sentAt
        log = result.describe()
        assertShutDownCleanly(self, result)
        self.assertLess(elapsed, 10, "twistd took %.1f s to exit (drain timeout 20 s)\n%s" % (elapsed, log))
        self.assertIn("txscales: draining 1 session(s)", result.output)

        link = proxy.links[0]  # Scales may have reconnected since (in vain)
        self.assertEqual(len(proxy.fromServer(Tdrain)), 1, "Scales' session was not sent Tdrain")
        self.assertEqual(proxy.fromClient(Rdrain), [],
                         "Scales answered Tdrain: this test no longer covers a client that does not")
        self.assertTrue(link.serverClosedFirst, "the server did not close Scales' session")
        statuses = [m.status for m in proxy.fromServer(Rdispatch)]
        self.assertEqual(statuses[:2], [STATUS_OK, STATUS_OK], log)


class TwistdHelperTests(TestCase):
    """
    The twistd helper reports a server that exits before listening.
    """

    timeout = TIMEOUT

    @inlineCallbacks
    def test_exitBeforeListening(self):
        """
        A server that cannot start fails the wait with its exit status and
        output instead of hanging.
        """
        d = startDemoServer("--max-frame-size", "not-a-number", addCleanup=self.addCleanup)
        error = yield self.assertFailure(d, ProcessExitedEarly)
        self.assertNotEqual(error.result.exitCode, 0)
        self.assertIn("max-frame-size", error.result.output)
        self.assertIn("txscales: serving", str(error))
