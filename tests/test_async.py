"""
Calling a client from C{async def} code: in trial against an in-process
ThriftMux server, and in real processes on the asyncio reactor, with the
code and commands that docs/async.rst shows.
"""

import io
import os
import re
import shlex
import sys
import textwrap

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txscales.demo.asyncclient import demo, errorCode, queryAll, timedOut
from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales.thriftmux import ThriftMux

from tests._twistd import runPeer, startTwistd, twistdCommand

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "async.rst")
SOURCES = [os.path.join(ROOT, "txscales", "demo", "asyncclient.py"), os.path.join(ROOT, "tests", "test_async.py")]


class Handler(TestServiceHandler):
    """
    The demo handler, whose C{delayedQuery} answers only when discarded:
    C{discarded} fires then.
    """

    def __init__(self):
        TestServiceHandler.__init__(self, reactor)
        self.discarded = Deferred()

    def delayedQuery(self, x, delayMs):
        return Deferred(lambda d: self.discarded.callback(x))


class CoroutineTests(TestCase):
    """
    C{async def} code awaits calls to an in-process ThriftMux server.
    """

    @inlineCallbacks
    def setUp(self):
        self.handler = Handler()
        server = ThriftMux.newServer(TestService.Iface, self.handler, "tcp:0:interface=127.0.0.1", reactor=reactor)
        server.startService()
        self.addCleanup(server.stopService)
        self.port = (yield server.listening).getHost().port

    def client(self):
        client = ThriftMux.newClient(TestService.Iface, "tcp://127.0.0.1:%d" % (self.port,), timeout=5, reactor=reactor)
        self.addCleanup(client.close)
        return client

    def test_fromCoroutine(self):
        """
        A coroutine started with C{Deferred.fromCoroutine} gets the answers
        of its calls, and catches a declared exception with try/except.
        """
        client = self.client()

        async def calls():
            self.assertEqual(await queryAll(client, ["a", "b"]), ["aa", "bb"])
            self.assertEqual(await errorCode(client, 7), 7)

        return Deferred.fromCoroutine(calls())

    def test_ensureDeferred(self):
        """
        A coroutine started with C{ensureDeferred} gets the answers of its
        calls.
        """
        client = self.client()
        return ensureDeferred(queryAll(client, ["x"])).addCallback(self.assertEqual, ["xx"])

    def test_timeout(self):
        """
        A call's timeout is raised at its C{await} as
        L{txscales.errors.RequestTimeoutError}; the server saw the call
        discarded.
        """
        client = self.client()

        async def timeout():
            self.assertTrue(await timedOut(client, 2000, 0.05))
            self.assertEqual(await self.handler.discarded, "slow")

        return Deferred.fromCoroutine(timeout())

    def test_demo(self):
        """
        The example's calls all give what they should, and it says so.
        """
        out = io.StringIO()

        async def run():
            self.assertTrue(await demo(self.client(), out))
            await self.handler.discarded

        d = Deferred.fromCoroutine(run())
        return d.addCallback(lambda _: self.assertIn("RESULT: OK\n", out.getvalue()))


def codeBlocks(kind):
    """
    @return: the code blocks of C{kind} (C{"python"}, C{"console"}) in
        docs/async.rst, as lists of lines without their common indentation.
    """
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: %s\n\n((?:[ \t]+\S.*\n|\n)+)" % (kind,), text, re.M):
        blocks.append(textwrap.dedent(match.group(1)).rstrip("\n").split("\n"))
    return blocks


def excerptOf(block, source):
    """
    @return: whether the non-blank lines of C{block} are lines of C{source}
        in the same order and under the same extra indentation.
    """
    wanted = [line for line in block if line.strip()]
    lines = source.split("\n")
    for start, line in enumerate(lines):
        indent = line[: len(line) - len(line.lstrip())]
        if line != indent + wanted[0]:
            continue
        rest = iter(lines[start + 1 :])
        if all(any(candidate == indent + w for candidate in rest) for w in wanted[1:]):
            return True
    return False


class DocumentationTests(SynchronousTestCase):
    """
    docs/async.rst shows code that the tests run.
    """

    def test_pythonBlocksAreTested(self):
        """
        Every Python block of docs/async.rst is an excerpt of the example
        module or of these tests.
        """
        sources = []
        for path in SOURCES:
            with open(path, encoding="utf-8") as f:
                sources.append(f.read())
        blocks = codeBlocks("python")
        self.assertGreaterEqual(len(blocks), 8)
        for block in blocks:
            self.assertTrue(any(excerptOf(block, s) for s in sources), "\n".join(block))

    def test_consoleCommands(self):
        """
        The console blocks hold the commands L{AsyncioReactorTests} runs.
        """
        commands = [line[2:] for block in codeBlocks("console") for line in block if line.startswith("$ ")]
        self.assertEqual(commands, [SERVER, CLIENT, EXAMPLE])


SERVER = "twistd -r asyncio -n txscales demo-server --listen tcp:9090:interface=127.0.0.1"
CLIENT = "twistd -r asyncio -n txscales demo-client --dest tcp://127.0.0.1:9090 --count 100"
EXAMPLE = "python -m txscales.demo.asyncclient tcp://127.0.0.1:9090"


class AsyncioReactorTests(TestCase):
    """
    The commands of docs/async.rst, run as real processes on a free port:
    twistd's demo server and client on the asyncio reactor, and the
    example module.
    """

    timeout = 120

    @inlineCallbacks
    def test_commands(self):
        """
        demo-server and demo-client run under C{twistd -r asyncio}; the
        client, and the example, print RESULT: OK and exit 0.
        """
        server = yield startTwistd(
            shlex.split(SERVER.replace("tcp:9090:", "tcp:0:"))[1:], twistdOptions=("--pidfile=",), addCleanup=self.addCleanup
        )
        self.assertIn("AsyncioSelectorReactor", server.output)
        client = shlex.split(CLIENT.replace(":9090", ":%d" % (server.port,)))
        example = shlex.split(EXAMPLE.replace(":9090", ":%d" % (server.port,)))
        clientResult = yield runPeer(twistdCommand() + ["--pidfile="] + client[1:], addCleanup=self.addCleanup, timeout=60)
        self.assertIn("AsyncioSelectorReactor", clientResult.output)
        exampleResult = yield runPeer([sys.executable] + example[1:], addCleanup=self.addCleanup, timeout=60)
        for result in (clientResult, exampleResult):
            self.assertEqual((result.exitCode, result.signal), (0, None), result.describe())
            self.assertIn("RESULT: OK\n", result.stdout, result.describe())
