"""
Tests of the C{txscales} command run as users run it, a process of its own,
against C{twistd -n txscales serve --idl} (both ends read the demo's IDL at
run time) and C{twistd -n txscales demo-server} (the client's runtime IDL
calls the server's generated code).
"""

import json
import os
import sys

from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

import txscales.demo
from tests._tls import Authorities
from tests._twistd import freePort, runPeer, startDemoServer, startTwistd
from tests.test_cli import needThriftpy2

DEMO_IDL = ("--idl", os.path.join(os.path.dirname(os.path.abspath(txscales.demo.__file__)), "TestService.thrift"))


IDL_HANDLER = "txscales.demo.handler:makeIdlHandler"


class CallCommandTests(TestCase):
    """
    C{txscales call} and C{txscales list} processes print results, declared
    exceptions and errors, with their exit statuses.
    """

    timeout = 120

    def setUp(self):
        needThriftpy2(self)

    def txscales(self, *args):
        """
        Run the C{txscales} command (C{python -m txscales._cli}, what the
        console script runs) to its end.

        @return: a Deferred firing with its L{tests._twistd.ProcessResult}.
        """
        return runPeer([sys.executable, "-m", "txscales._cli"] + list(args), addCleanup=self.addCleanup, timeout=60)

    def assertExited(self, result, status):
        """
        C{result} is a process that exited with C{status}.
        """
        self.assertEqual((result.exitCode, result.signal), (status, None), result.describe())

    @inlineCallbacks
    def test_call(self):
        """
        Calls over ThriftMux and plain Thrift (to C{serve --idl}) and Thrift
        over HTTP (to C{demo-server}) print their results as JSON
        (arguments by name or in order) and exit 0; a declared exception
        prints as JSON and exits 1; a timeout prints the typed error and
        exits 2.
        """
        serve = ("txscales", "serve", "--listen", "tcp:0:interface=127.0.0.1", "--handler", IDL_HANDLER) + DEMO_IDL
        mux, http = yield gatherResults(
            [startTwistd(serve, addCleanup=self.addCleanup), startDemoServer("--protocol", "http", addCleanup=self.addCleanup)]
        )
        results = yield gatherResults(
            [
                self.txscales("call", mux.dest, "TestService.query", '{"x": "a"}', *DEMO_IDL),
                self.txscales("call", "-p", "thrift", mux.dest, "TestService.delayedQuery", '["b", 1]', *DEMO_IDL),
                self.txscales("call", "-p", "http", http.dest, "TestService.query", '["c"]', *DEMO_IDL),
                self.txscales("call", mux.dest, "TestService.raiseError", '{"errorCode": 7}', *DEMO_IDL),
                self.txscales("call", mux.dest, "delayedQuery", '["d", 10000]', "--timeout", "0.5", *DEMO_IDL),
            ]
        )
        for result, answer in zip(results, ["aa", "bb", "cc"]):
            self.assertExited(result, 0)
            self.assertEqual(json.loads(result.stdout), answer, result.describe())
        self.assertExited(results[3], 1)
        self.assertEqual(
            json.loads(results[3].stdout),
            {"exception": "InvalidQueryException", "fields": {"errorCode": 7}},
            results[3].describe(),
        )
        self.assertExited(results[4], 2)
        self.assertEqual(
            results[4].stderr,
            "txscales call: txscales.errors.RequestTimeoutError: call timed out after 0.5 s [mayHaveReachedServer=True]\n",
        )

    @inlineCallbacks
    def test_tls(self):
        """
        A call over TLS trusting --tls-ca succeeds; one trusting another
        CA prints the typed TLS error and exits 2.
        """
        ca, stranger = Authorities.get()
        server = yield startDemoServer(
            "--tls-cert", ca.path("server.pem"), "--tls-key", ca.path("server.key"), addCleanup=self.addCleanup
        )
        dest = "tls://127.0.0.1:%d" % (server.port,)
        trusted, untrusted = yield gatherResults(
            [
                self.txscales("call", dest, "TestService.query", '["t"]', "--tls-ca", ca.path("ca.pem"), *DEMO_IDL),
                self.txscales("call", dest, "TestService.query", '["t"]', "--tls-ca", stranger.path("ca.pem"), *DEMO_IDL),
            ]
        )
        self.assertExited(trusted, 0)
        self.assertEqual(json.loads(trusted.stdout), "tt")
        self.assertExited(untrusted, 2)
        self.assertIn("txscales call: txscales.errors.TlsCertificateUntrustedError: ", untrusted.stderr)
        self.assertIn("[mayHaveReachedServer=False]", untrusted.stderr)

    @inlineCallbacks
    def test_withoutServer(self):
        """
        A refused connection prints the typed error and exits 2; a usage
        error exits 64; list prints the IDL's methods and exits 0.
        """
        refused, wrong, listed = yield gatherResults(
            [
                self.txscales("call", "tcp://127.0.0.1:%d" % (freePort(),), "TestService.query", '["x"]', *DEMO_IDL),
                self.txscales("call", "tcp://127.0.0.1:1", "TestService.query", '{"y": 1}', *DEMO_IDL),
                self.txscales("list", *DEMO_IDL),
            ]
        )
        self.assertExited(refused, 2)
        self.assertIn("txscales call: txscales.errors.ConnectError: cannot connect to 127.0.0.1:", refused.stderr)
        self.assertIn("[mayHaveReachedServer=False]", refused.stderr)
        self.assertExited(wrong, 64)
        self.assertIn("txscales call: error: TestService.query has no argument y (its arguments: x)", wrong.stderr)
        self.assertExited(listed, 0)
        self.assertEqual(
            listed.stdout.splitlines(),
            [
                "string TestService.query(1: string x) throws (1: InvalidQueryException ex)",
                "string TestService.delayedQuery(1: string x, 2: i32 delayMs) throws (1: InvalidQueryException ex)",
                "string TestService.raiseError(1: i32 errorCode) throws (1: InvalidQueryException ex)",
                "oneway void TestService.log(1: string message)",
            ],
        )
