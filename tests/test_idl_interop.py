"""
The demo service loaded from its IDL at run time (C{txscales.thrift.loadIdl},
C{twistd txscales serve --idl}) against real, independent peers, each in its
own process, as the generated code is in C{tests/test_interop.py} and
C{tests/test_thrift_interop.py}: Scales', Apache Thrift's and thriftpy2's
clients against C{twistd -n txscales serve --idl}, txscales' clients of the
IDL against it and against Apache Thrift's and thriftpy2's servers, and the
usage errors of C{serve --idl} processes.
"""

import os
import sys

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from txscales.demo.handler import IDL, TestServiceHandler
from txscales.errors import ApplicationError
from txscales.thrift import BINARY, BUFFERED, COMPACT, FRAMED, Thrift, loadIdl
from txscales.thriftmux import ThriftMux

from tests._twistd import runPeer, startTwistd, twistdCommand
from tests.test_interop import SCALES_CLIENT, assertShutDownCleanly, scalesPython
from tests.test_thrift_interop import (
    APACHE_CLIENT,
    APACHE_SERVER,
    THRIFTPY2_CLIENT,
    THRIFTPY2_SERVER,
    startPeerServer,
    thriftpy2Python,
)
from tests.test_tap_idl import writeFile

HANDLER = "txscales.demo.handler:makeIdlHandler"
TIMEOUT = 60
demo = loadIdl(IDL)


def startServer(testCase, *options):
    """
    Start C{twistd -n txscales serve --idl} of the demo IDL.

    @return: a Deferred firing with the L{tests._twistd.TwistdProcess}.
    """
    argv = ["txscales", "serve", "--listen", "tcp:0:interface=127.0.0.1", "--idl", IDL, "--service", "TestService"]
    return startTwistd(argv + ["--handler", HANDLER] + list(options), addCleanup=testCase.addCleanup)


@inlineCallbacks
def runThriftClient(testCase, python, script, port, transport, protocol):
    """
    Run Apache Thrift's or thriftpy2's client peer: 50 queries, a delayed
    query, 3 declared exceptions, a one-way call and a query after it.
    """
    argv = [python, script, "--port", str(port), "--transport", transport, "--protocol", protocol, "--count", "50"]
    result = yield runPeer(argv, addCleanup=testCase.addCleanup, timeout=TIMEOUT - 10)
    testCase.assertEqual(result.exitCode, 0, result.describe())
    summary = result.lastJSON()
    testCase.assertEqual(
        (summary["ok"], summary["wrong"], summary["errors"], summary["exceptionsOk"], summary["afterOnewayOk"]),
        (51, 0, 0, 3, True),
        result.describe(),
    )


@inlineCallbacks
def checkClient(testCase, client, oneway=None):
    """
    Calls of a txscales client of the demo IDL: answers, a declared
    exception as the IDL module's class, an unknown outcome.

    @param oneway: when given, a Deferred that fires once the server logged
        the one-way call C{log("hello")}, which is then made.
    """
    answers = yield gatherResults([client.query("q%d" % i) for i in range(20)])
    testCase.assertEqual(answers, ["q%dq%d" % (i, i) for i in range(20)])
    testCase.assertEqual((yield client.delayedQuery("d", 20)), "dd")
    error = yield testCase.assertFailure(client.raiseError(7), demo.InvalidQueryException)
    testCase.assertEqual(error.errorCode, 7)
    if oneway is not None:
        testCase.assertIsNone((yield client.log("hello")))
        yield oneway
    testCase.assertEqual((yield client.query("after")), "afterafter")


class FailingHandler(TestServiceHandler):
    """
    The demo handler, failing C{query("fail")} with an exception the IDL does
    not declare.
    """

    def query(self, x):
        if x == "fail":
            raise ZeroDivisionError("fail")
        return x + x


class ServeIdlTests(TestCase):
    """
    Peers' clients and txscales' ThriftMux client of the IDL against
    C{twistd -n txscales serve --idl}.
    """

    timeout = TIMEOUT

    @inlineCallbacks
    def test_clients(self):
        """
        Apache Thrift's and thriftpy2's clients (framed Thrift, which the
        ThriftMux server downgrades to, binary and compact) and txscales'
        ThriftMux client of the IDL are all answered; the server then shuts
        down cleanly.
        """
        server = yield startServer(self)
        client = ThriftMux.newClient(demo.TestService, server.dest, timeout=10)
        self.addCleanup(client.close)
        yield gatherResults(
            [
                runThriftClient(self, sys.executable, APACHE_CLIENT, server.port, FRAMED, BINARY),
                runThriftClient(self, thriftpy2Python(), THRIFTPY2_CLIENT, server.port, FRAMED, COMPACT),
                checkClient(self, client),
            ]
        )
        yield client.close()
        assertShutDownCleanly(self, (yield server.terminate()))

    @inlineCallbacks
    def test_scalesClient(self):
        """
        Scales' ThriftMux client is answered, and receives the declared
        exception.
        """
        python = scalesPython()
        server = yield startServer(self)
        argv = [python, "-I", SCALES_CLIENT, "--port", str(server.port), "--mode", "error", "--count", "3", "--max-seconds", "30"]
        result = yield runPeer(argv, addCleanup=self.addCleanup)
        self.assertEqual(result.exitCode, 0, result.describe())
        summary = result.lastJSON()
        got = {key: summary.get(key) for key in ("ok", "wrong", "errorTypes", "afterErrorQueryOk")}
        self.assertEqual(
            got,
            {"ok": 3, "wrong": 0, "errorTypes": ["ScalesError(InvalidQueryException)"], "afterErrorQueryOk": True},
            result.describe(),
        )
        self.assertEqual(summary["surfaced"][0]["errorCode"], 7, result.describe())

    @inlineCallbacks
    def test_badOptions(self):
        """
        An unknown service, a file that is not Thrift, and thriftpy2 missing
        each end the process at once with a one-line usage error and no
        traceback.
        """
        bad = writeFile(self, "Bad.thrift", "service Bad {\n  string f(1: nosuchtype x)\n}\n")
        # A thriftpy2 that cannot be imported, first on the path.
        fake = writeFile(self, os.path.join("fake", "thriftpy2", "__init__.py"), "raise ImportError('no thriftpy2 here')\n")
        hidden = {"PYTHONPATH": os.pathsep.join([os.path.dirname(os.path.dirname(fake))] + sys.path)}
        cases = [
            ((IDL, "Nope"), None, "--service Nope: %s defines no service 'Nope' (services: TestService)" % (IDL,)),
            ((bad, "Bad"), None, "--idl %s: %s: " % (bad, bad)),
            ((IDL, "TestService"), hidden, "needs thriftpy2: no thriftpy2 here (install txscales[idl])"),
        ]
        serve = twistdCommand() + ["--pidfile=", "-n", "txscales", "serve", "--listen", "tcp:0:interface=127.0.0.1"]
        results = yield gatherResults(
            [
                runPeer(serve + ["--idl", idl, "--service", service, "--handler", HANDLER], addCleanup=self.addCleanup, env=env, timeout=TIMEOUT - 10)
                for (idl, service), env, _ in cases
            ]
        )
        for (_, _, message), result in zip(cases, results):
            self.assertEqual((result.exitCode, result.signal), (1, None), result.describe())
            lines = [line for line in result.output.splitlines() if line.strip()]
            self.assertIn(message, lines[-1], result.describe())
            self.assertNotIn("Traceback", result.output, result.describe())


class PlainThriftTests(TestCase):
    """
    txscales' plain Thrift client of the IDL against Apache Thrift's and
    thriftpy2's servers, and a peer's client against txscales' plain Thrift
    server of the IDL.
    """

    timeout = TIMEOUT

    @inlineCallbacks
    def checkServer(self, argv, transport, protocol):
        process, port = yield startPeerServer(self, argv + ["--transport", transport, "--protocol", protocol])
        client = Thrift.newClient(
            demo.TestService, "tcp://127.0.0.1:%d" % (port,), transport=transport, protocol=protocol, timeout=10, stats=False
        )
        self.addCleanup(client.close)
        yield checkClient(self, client, process.waitForLine(r"^LOG hello$", "the one-way call's LOG line"))

    def test_apacheServer(self):
        """
        Apache Thrift's threaded server, framed compact, answers the client
        of the IDL.
        """
        return self.checkServer([sys.executable, APACHE_SERVER, "--server", "threaded"], FRAMED, COMPACT)

    def test_thriftpy2Server(self):
        """
        thriftpy2's threaded server, buffered binary, answers the client of
        the IDL.
        """
        return self.checkServer([thriftpy2Python(), THRIFTPY2_SERVER, "--server", "threaded"], BUFFERED, BINARY)

    @inlineCallbacks
    def test_apacheClient(self):
        """
        Apache Thrift's client, buffered compact, is answered by txscales'
        plain Thrift server of the IDL, which records its one-way call.
        """
        handler = FailingHandler(reactor, exceptions=demo)
        server = Thrift.newServer(demo.TestService, handler, "tcp:0:interface=127.0.0.1", transport=BUFFERED, stats=False)
        server.startService()
        self.addCleanup(server.stopService)
        port = (yield server.listening).getHost().port
        yield runThriftClient(self, sys.executable, APACHE_CLIENT, port, BUFFERED, COMPACT)
        self.assertEqual(handler.messages, ["hello"])
        client = Thrift.newClient(demo.TestService, "tcp://127.0.0.1:%d" % (port,), transport=BUFFERED, timeout=10, stats=False)
        self.addCleanup(client.close)
        error = yield self.assertFailure(client.query("fail"), ApplicationError)
        self.assertIn("ZeroDivisionError", str(error))
        self.flushLoggedErrors(ZeroDivisionError)
