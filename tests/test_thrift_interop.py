"""
Plain Thrift interop with real, independent peers, each in its own process:
txscales' client against Apache Thrift's Python C{TSimpleServer} and
C{TThreadedServer} and against thriftpy2's servers, pooled and (against
the threaded servers) pipelined; Apache Thrift's and
thriftpy2's clients against txscales' server; both transports and both
protocols, one-way calls, declared exceptions and C{TApplicationException}.
Then the acceptance load: under 20 ms timeouts against servers answering
after 0 to 40 ms, no call ever receives another call's answer.
"""

import os
import random
import sys
import types

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.python import log
from twisted.python.usage import UsageError
from twisted.trial.unittest import SkipTest, TestCase

from txscales.demo.gen import TestService
from txscales.demo.gen.ttypes import InvalidQueryException
from txscales.demo.handler import TestServiceHandler
from txscales.errors import ApplicationError, ConnectError, RequestTimeoutError
from txscales.thrift import BINARY, BUFFERED, COMPACT, FRAMED, Thrift

from tests._twistd import Subprocess, requirePeer, runPeer, spawn, startTwistd

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(REPO, "tests", "peers")
APACHE_SERVER = os.path.join(PEERS, "apache_thrift_server.py")
APACHE_CLIENT = os.path.join(PEERS, "thrift_client.py")
THRIFTPY2_PYTHON = os.path.join(REPO, ".peers", "thriftpy2", "bin", "python")
THRIFTPY2_SERVER = os.path.join(PEERS, "thriftpy2_server.py")
THRIFTPY2_CLIENT = os.path.join(PEERS, "thriftpy2_client.py")

COMBINATIONS = [(t, p) for t in (FRAMED, BUFFERED) for p in (BINARY, COMPACT)]
TIMEOUT = 60


def thriftpy2Python():
    """
    @return: the interpreter of the thriftpy2 peer virtualenv.
    @raise SkipTest: when it is missing (the test fails instead when the
        C{CI} environment variable is set).
    """
    requirePeer(
        os.access(THRIFTPY2_PYTHON, os.X_OK),
        "the thriftpy2 peer virtualenv is missing (%s): run scripts/setup-thriftpy2-peer" % (THRIFTPY2_PYTHON,),
    )
    return THRIFTPY2_PYTHON


def unknownMethodIface():
    """
    @return: an C{Iface} whose only method, C{noSuchMethod(x)}, no peer
        serves (it borrows C{query}'s structs).
    """
    name = "tests.test_thrift_interop_unknown"
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)

        class Iface:
            def noSuchMethod(self, x):
                pass

        Iface.__module__ = name
        module.Iface = Iface
        module.noSuchMethod_args = TestService.query_args
        module.noSuchMethod_result = TestService.query_result
        sys.modules[name] = module
    return module.Iface


@inlineCallbacks
def startPeerServer(testCase, argv):
    """
    Start a peer server and wait for its C{LISTENING <port>} line.

    @return: a Deferred firing with (the L{Subprocess}, its port).
    """
    process = spawn(Subprocess(argv), addCleanup=testCase.addCleanup)
    match = yield process.waitForLine(r"^LISTENING (\d+)$", "the LISTENING line")
    return process, int(match.group(1))


def newClient(testCase, iface, port, transport, protocol, **options):
    options.setdefault("timeout", 10)
    client = Thrift.newClient(
        iface, "tcp://127.0.0.1:%d" % (port,), transport=transport, protocol=protocol, stats=False, **options
    )
    testCase.addCleanup(client.close)
    return client


class ClientAgainstPeerServers(TestCase):
    """
    txscales' client against Apache Thrift's and thriftpy2's servers.
    """

    timeout = TIMEOUT

    @inlineCallbacks
    def checkServer(self, argv, transport, protocol, single):
        """
        Run calls, a declared exception, a one-way call, an unknown method
        and a timeout against the peer server started with C{argv}.

        @param single: whether the server serves one connection at a time
            (then the client keeps to one).
        """
        process, port = yield startPeerServer(self, argv + ["--transport", transport, "--protocol", protocol])
        pool = {"high": 1} if single else {}
        client = newClient(self, TestService.Iface, port, transport, protocol, **pool)
        answers = yield gatherResults([client.query("q%d" % i) for i in range(20)])
        self.assertEqual(answers, ["q%dq%d" % (i, i) for i in range(20)])
        self.assertEqual((yield client.delayedQuery("d", 20)), "dd")
        error = yield self.assertFailure(client.raiseError(7), InvalidQueryException)
        self.assertEqual(error.errorCode, 7)
        logged = process.waitForLine(r"^LOG hello$", "the one-way call's LOG line")
        self.assertIsNone((yield client.log("hello")))
        yield logged
        self.assertEqual((yield client.query("after")), "afterafter")
        timedOut = client.withOptions(timeout=0.05).delayedQuery("slow", 300)
        error = yield self.assertFailure(timedOut, RequestTimeoutError)
        self.assertTrue(error.mayHaveReachedServer)
        self.assertEqual((yield client.query("next")), "nextnext")
        yield client.close()
        unknown = newClient(self, unknownMethodIface(), port, transport, protocol)
        error = yield self.assertFailure(unknown.noSuchMethod("x"), ApplicationError)
        self.assertEqual(error.type, 1)

    def apache(self, server, transport, protocol):
        argv = [sys.executable, APACHE_SERVER, "--server", server]
        return self.checkServer(argv, transport, protocol, single=server == "simple")

    def thriftpy2(self, server, transport, protocol):
        argv = [thriftpy2Python(), THRIFTPY2_SERVER, "--server", server]
        return self.checkServer(argv, transport, protocol, single=server == "simple")


def _addServerTests():
    for peer in ("apache", "thriftpy2"):
        for server in ("simple", "threaded"):
            for transport, protocol in COMBINATIONS:

                def test(self, peer=peer, server=server, transport=transport, protocol=protocol):
                    return getattr(self, peer)(server, transport, protocol)

                name = "test_%s_%s_%s_%s" % (peer, server, transport, protocol)
                test.__name__ = name
                test.__doc__ = "txscales' client works against the %s T%sServer, %s %s." % (
                    peer,
                    server.capitalize(),
                    transport,
                    protocol,
                )
                setattr(ClientAgainstPeerServers, name, test)


_addServerTests()


class PipelinedAgainstPeerServers(TestCase):
    """
    txscales' pipelined client against Apache Thrift's and thriftpy2's
    threaded servers, which answer the calls of a connection in order.
    """

    timeout = TIMEOUT

    @inlineCallbacks
    def checkPipelined(self, argv, transport, protocol):
        """
        Many calls on one connection, with a call timing out among them
        and a declared exception and a one-way call after it: each call
        gets its own outcome, on one connection.
        """
        process, port = yield startPeerServer(self, argv + ["--transport", transport, "--protocol", protocol])
        client = newClient(self, TestService.Iface, port, transport, protocol, pipelined=True, maxOutstanding=16)
        before = [client.query("a%d" % i) for i in range(20)]
        slow = client.withOptions(timeout=0.05).delayedQuery("slow", 300)
        after = [client.query("b%d" % i) for i in range(20)]
        error = client.raiseError(7)
        logged = process.waitForLine(r"^LOG hello$", "the one-way call's LOG line")
        oneway = client.log("hello")
        timedOut = yield self.assertFailure(slow, RequestTimeoutError)
        self.assertTrue(timedOut.mayHaveReachedServer)
        answers = yield gatherResults(before + after)
        self.assertEqual(answers, ["a%da%d" % (i, i) for i in range(20)] + ["b%db%d" % (i, i) for i in range(20)])
        self.assertEqual((yield self.assertFailure(error, InvalidQueryException)).errorCode, 7)
        self.assertIsNone((yield oneway))
        yield logged
        self.assertEqual((yield client.query("last")), "lastlast")
        self.assertEqual(client.stack.nodes[0].endpoint.connects, 1)

    def test_apacheThreaded(self):
        """
        Against Apache Thrift's TThreadedServer, framed binary.
        """
        return self.checkPipelined([sys.executable, APACHE_SERVER, "--server", "threaded"], FRAMED, BINARY)

    def test_thriftpy2Threaded(self):
        """
        Against thriftpy2's TThreadedServer, buffered compact.
        """
        return self.checkPipelined([thriftpy2Python(), THRIFTPY2_SERVER, "--server", "threaded"], BUFFERED, COMPACT)


class PeerClientsAgainstServer(TestCase):
    """
    Apache Thrift's and thriftpy2's clients against txscales' server.
    """

    timeout = TIMEOUT

    @inlineCallbacks
    def serve(self, transport):
        self.handler = TestServiceHandler(reactor)
        server = Thrift.newServer(
            TestService.Iface, self.handler, "tcp:0:interface=127.0.0.1", transport=transport, stats=False
        )
        server.startService()
        self.addCleanup(server.stopService)
        port = yield server.listening
        return port.getHost().port

    @inlineCallbacks
    def checkClient(self, python, script, transport, protocol):
        port = yield self.serve(transport)
        argv = [python, script, "--port", str(port), "--transport", transport, "--protocol", protocol, "--count", "50"]
        result = yield runPeer(argv, addCleanup=self.addCleanup, timeout=TIMEOUT - 10)
        summary = result.lastJSON()
        self.assertEqual(result.exitCode, 0, result.describe())
        self.assertEqual(
            (summary["ok"], summary["wrong"], summary["errors"], summary["exceptionsOk"], summary["afterOnewayOk"]),
            (51, 0, 0, 3, True),
            result.describe(),
        )
        self.assertEqual(self.handler.messages, ["hello"])


def _addClientTests():
    peers = {"apache": (lambda: sys.executable, APACHE_CLIENT), "thriftpy2": (thriftpy2Python, THRIFTPY2_CLIENT)}
    for peer, (python, script) in peers.items():
        for transport, protocol in COMBINATIONS:

            def test(self, python=python, script=script, transport=transport, protocol=protocol):
                return self.checkClient(python(), script, transport, protocol)

            name = "test_%s_%s_%s" % (peer, transport, protocol)
            test.__name__ = name
            test.__doc__ = "The %s client works against txscales' server, %s %s." % (peer, transport, protocol)
            setattr(PeerClientsAgainstServer, name, test)


_addClientTests()


class RandomDelayHandler(TestServiceHandler):
    """
    The demo service, answering C{query} after 0 to 40 ms.
    """

    def __init__(self, seed):
        TestServiceHandler.__init__(self, reactor)
        self._random = random.Random(seed)

    def query(self, x):
        return deferLater(reactor, self._random.uniform(0, 0.040), lambda: x + x)


class NoCrossedAnswers(TestCase):
    """
    The acceptance load: under 20 ms timeouts against a plain Thrift server
    answering after 0 to 40 ms, no call ever receives another call's
    answer, and both outcomes occur.
    """

    timeout = TIMEOUT
    calls = 400
    concurrency = 20
    batches = 5

    @inlineCallbacks
    def load(self, port, transport, protocol, label):
        """
        Run batches of L{calls} calls, L{concurrency} at a time, until both
        outcomes occurred (at most L{batches} batches), and check every
        answer.  The calls' timeout starts at 20 ms, within the server's 0
        to 40 ms delays; a batch that saw only timeouts (a loaded machine)
        makes the next batch's twice as long, one that saw none half.
        """
        timeout = 0.020
        outcomes = {"ok": 0, "timeout": 0, "wrong": 0, "other": 0}
        others = []
        semaphore = DeferredSemaphore(self.concurrency)

        def one(i):
            x = "call-%d" % (i,)

            def answered(answer):
                outcomes["ok" if answer == x + x else "wrong"] += 1

            def failed(failure):
                if failure.check(RequestTimeoutError):
                    outcomes["timeout"] += 1
                else:
                    outcomes["other"] += 1
                    others.append(repr(failure.value))

            return client.query(x).addCallbacks(answered, failed)

        for batch in range(self.batches):
            client = newClient(self, TestService.Iface, port, transport, protocol, timeout=timeout)
            first = batch * self.calls
            yield gatherResults([semaphore.run(one, i) for i in range(first, first + self.calls)])
            if outcomes["ok"] and outcomes["timeout"]:
                break
            timeout = timeout * 2 if not outcomes["ok"] else timeout / 2
        connects = client.stack.nodes[0].endpoint.connects
        log.msg("no-crossed-answers %s: %r, %d connections" % (label, outcomes, connects))
        self.assertEqual((outcomes["wrong"], outcomes["other"]), (0, 0), (outcomes, others[:5]))
        self.assertGreater(outcomes["ok"], 0, outcomes)
        self.assertGreater(outcomes["timeout"], 0, outcomes)
        return outcomes

    @inlineCallbacks
    def test_apacheThreadedServer(self):
        """
        Against Apache Thrift's TThreadedServer (framed, binary) sleeping
        0 to 40 ms in each call.
        """
        argv = [sys.executable, APACHE_SERVER, "--server", "threaded", "--random-delay", "40", "--seed", "3"]
        _, port = yield startPeerServer(self, argv)
        yield self.load(port, FRAMED, BINARY, "apache threaded framed binary")

    @inlineCallbacks
    def test_thriftpy2ThreadedServer(self):
        """
        Against thriftpy2's TThreadedServer (buffered, compact) sleeping 0 to
        40 ms in each call.
        """
        argv = [thriftpy2Python(), THRIFTPY2_SERVER, "--server", "threaded", "--random-delay", "40", "--seed", "5"]
        argv += ["--transport", "buffered", "--protocol", "compact"]
        _, port = yield startPeerServer(self, argv)
        yield self.load(port, BUFFERED, COMPACT, "thriftpy2 threaded buffered compact")

    @inlineCallbacks
    def test_txscalesServer(self):
        """
        Against txscales' own server (buffered, compact), each answer
        delayed 0 to 40 ms.
        """
        server = Thrift.newServer(
            TestService.Iface, RandomDelayHandler(4), "tcp:0:interface=127.0.0.1", transport=BUFFERED, stats=False
        )
        server.startService()
        self.addCleanup(server.stopService)
        port = yield server.listening
        yield self.load(port.getHost().port, BUFFERED, COMPACT, "txscales buffered compact")


class ServerServiceTests(TestCase):
    """
    The server as a Twisted service, over real TCP.
    """

    timeout = TIMEOUT

    @inlineCallbacks
    def test_stopFinishesCalls(self):
        """
        Stopping the service stops listening, lets a running call finish,
        and closes its connection.
        """
        handler = TestServiceHandler(reactor)
        started = Deferred()
        delayedQuery = handler.delayedQuery
        handler.delayedQuery = lambda x, ms: (started.callback(None), delayedQuery(x, ms))[1]
        server = Thrift.newServer(TestService.Iface, handler, "tcp:0:interface=127.0.0.1", stats=False)
        server.startService()
        port = (yield server.listening).getHost().port
        client = newClient(self, TestService.Iface, port, FRAMED, BINARY)
        self.assertEqual((yield client.query("a")), "aa")
        running = client.delayedQuery("b", 100)
        yield started
        stopped = server.stopService()
        self.assertEqual((yield running), "bb")
        yield stopped
        self.assertEqual(server.factory.protocols, set())
        fresh = newClient(self, TestService.Iface, port, FRAMED, BINARY)
        yield self.assertFailure(fresh.query("c"), ConnectError)

    @inlineCallbacks
    def test_twistdServe(self):
        """
        C{twistd txscales serve --protocol thrift --transport buffered}
        serves a generated service to Apache Thrift's client, and shuts down
        cleanly on SIGTERM.
        """
        from txscales.tap import ServeOptions

        try:
            ServeOptions().parseOptions(
                ["--iface", "txscales.demo.gen.TestService.Iface", "--handler", "txscales.demo.handler:makeHandler", "--protocol", "thrift"]
            )
        except UsageError as e:
            raise SkipTest("this txscales.tap has no --protocol thrift (%s)" % (e,))
        server = yield startTwistd(
            [
                "txscales",
                "serve",
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--iface",
                "txscales.demo.gen.TestService.Iface",
                "--handler",
                "txscales.demo.handler:makeHandler",
                "--protocol",
                "thrift",
                "--transport",
                "buffered",
            ],
            addCleanup=self.addCleanup,
        )
        argv = [sys.executable, APACHE_CLIENT, "--port", str(server.port)]
        argv += ["--transport", "buffered", "--protocol", "compact"]
        result = yield runPeer(argv, addCleanup=self.addCleanup, timeout=TIMEOUT - 10)
        summary = result.lastJSON()
        self.assertEqual((summary["ok"], summary["wrong"], summary["errors"], summary["exceptionsOk"]), (101, 0, 0, 3))
        ended = yield server.terminate()
        self.assertIn("Server Shut Down.", ended.output, ended.describe())
        self.assertNotIn("Traceback", ended.output, ended.describe())
