"""
Tests for the C{twistd txscales} options and services, and for the exit
status and error line of real C{twistd txscales} processes.
"""

import io

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txscales.demo._client import DemoRun
from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales.tap import DemoClientOptions, FreezeHeapService, Options, loadCallable, makeService
from txscales.testing import MemoryNetwork
from txscales.thriftmux import ThriftMux
from txscales.thriftmux._server import ThriftMuxServerService

from tests._twistd import freePort, runPeer, startDemoServer, twistdCommand

IFACE = "txscales.demo.gen.TestService.Iface"
HANDLER = "txscales.demo.handler:makeHandler"


def parse(*argv):
    options = Options()
    options.parseOptions(list(argv))
    return options


def makeUpperHandler():
    """
    A handler callable for C{serve --handler}: query answers upper case.
    """

    class Upper(TestServiceHandler):
        def query(self, x):
            return x.upper()

    return Upper(reactor)


def makePartialHandler():
    """
    A handler callable for C{serve --handler} lacking two methods.
    """

    class Partial:
        def query(self, x):
            return x

        def log(self, message):
            pass

    return Partial()


def makeBrokenHandler():
    """
    A handler callable for C{serve --handler} that fails.
    """
    raise RuntimeError("no database")


class FlakyHandler(TestServiceHandler):
    """
    The demo handler, failing C{query("demo-1")}.
    """

    def query(self, x):
        if x == "demo-1":
            raise RuntimeError("flaky")
        return x + x


class OptionsTests(SynchronousTestCase):
    """
    The subcommands parse as DESIGN.md's contracts say.
    """

    def test_serve(self):
        """
        serve takes --listen, --iface, --handler and --protocol.
        """
        options = parse(
            "serve", "--listen", "tcp:0", "--iface", IFACE, "--handler", "tests.test_tap:makeUpperHandler",
            "--protocol", "thriftmux",
        )
        self.assertEqual(options.subCommand, "serve")
        self.assertEqual(options.subOptions["listen"], "tcp:0")
        self.assertIs(options.subOptions.iface, TestService.Iface)
        self.assertEqual(options.subOptions.handler.query("a"), "A")

    def test_serveNeedsIfaceAndHandler(self):
        """
        serve without --iface or --handler is a usage error.
        """
        self.assertRaises(usage.UsageError, parse, "serve", "--listen", "tcp:0")

    def test_unknownProtocol(self):
        """
        An unsupported --protocol is a usage error naming it.
        """
        e = self.assertRaises(
            usage.UsageError, parse, "serve", "--iface", "a.Iface", "--handler", "b:c", "--protocol", "smoke"
        )
        self.assertIn("smoke", str(e))

    def test_thriftTransport(self):
        """
        --transport framed|buffered goes with --protocol thrift; another
        transport, or a buffered one with another protocol, is a usage
        error.
        """
        base = ("serve", "--iface", IFACE, "--handler", HANDLER)
        sub = parse(*base + ("--protocol", "thrift", "--transport", "buffered")).subOptions
        self.assertEqual((sub["protocol"], sub["transport"]), ("thrift", "buffered"))
        self.assertEqual(parse(*base + ("--protocol", "thrift")).subOptions["transport"], "framed")
        e = self.assertRaises(usage.UsageError, parse, *base + ("--protocol", "thrift", "--transport", "http"))
        self.assertIn("http", str(e))
        self.assertRaises(usage.UsageError, parse, *base + ("--transport", "buffered"))

    def test_serveBadIfaceOrHandler(self):
        """
        An --iface or --handler that does not load, an --iface that is not
        a generated service's Iface and a handler callable that fails are
        one-line usage errors naming the option and the cause.
        """
        cases = [
            (("nope.Iface", HANDLER), "--iface nope.Iface: cannot load it: "),
            (("txscales.demo.gen.TestService", HANDLER), "not the Iface class of a generated Thrift service"),
            ((IFACE, "txscales.demo.handler:nope"), "--handler txscales.demo.handler:nope: cannot load it: "),
            ((IFACE, "nope.module:make"), "--handler nope.module:make: cannot load it: "),
            ((IFACE, "tests.test_tap:makeBrokenHandler"), "calling it failed: RuntimeError: no database"),
        ]
        for (iface, handler), message in cases:
            e = self.assertRaises(usage.UsageError, parse, "serve", "--iface", iface, "--handler", handler)
            self.assertIn(message, str(e))
            self.assertNotIn("\n", str(e))

    def test_serveHandlerMissingMethods(self):
        """
        A handler lacking methods of the service is a usage error naming
        them.
        """
        e = self.assertRaises(
            usage.UsageError, parse, "serve", "--iface", IFACE, "--handler", "tests.test_tap:makePartialHandler"
        )
        self.assertIn("lacks methods of %s: delayedQuery, raiseError" % (IFACE,), str(e))

    def test_subcommandRequired(self):
        """
        A subcommand is required.
        """
        self.assertRaises(usage.UsageError, parse)

    def test_demoClient(self):
        """
        demo-client takes --dest, --count, --concurrency and --timeout.
        """
        sub = parse("demo-client", "--dest", "tcp://127.0.0.1:1", "--count", "5", "--concurrency", "2", "--timeout", "0.5").subOptions
        self.assertEqual((sub["dest"], sub["count"], sub["concurrency"], sub["timeout"]), ("tcp://127.0.0.1:1", 5, 2, 0.5))

    def test_demoClientDestHelp(self):
        """
        --dest's help gives the URI forms it takes.
        """
        usage = " ".join(str(DemoClientOptions()).split())
        self.assertIn("tcp://host:port[,host:port...] or zk://zkhost:port[,zkhost:port...]/path[#endpoint]", usage)

    def test_demoClientBadDest(self):
        """
        A mistyped tcp:// or zk:// --dest is a one-line usage error giving
        the forms expected; well-formed ones, and other schemes (left to
        their plugins), parse.
        """
        for dest in ("tcp:/127.0.0.1:1", "127.0.0.1:9090", "tcp://127.0.0.1", "tcp://127.0.0.1:", "tcp://127.0.0.1:65536", "zk://zk:2181"):
            e = self.assertRaises(usage.UsageError, parse, "demo-client", "--dest", dest)
            self.assertIn(repr(dest)[1:-1], str(e))
            self.assertIn("expected tcp://host:port", str(e))
            self.assertNotIn("\n", str(e))
        for dest in ("tcp://127.0.0.1:1,[::1]:65535", "zk://zk1:2181,zk2:2181/twitter/service#thrift", "other://x"):
            self.assertEqual(parse("demo-client", "--dest", dest).subOptions["dest"], dest)

    def test_loadCallable(self):
        """
        Handlers load from module:callable and dotted names.
        """
        self.assertIs(loadCallable("tests.test_tap:makeUpperHandler"), makeUpperHandler)
        self.assertIs(loadCallable("tests.test_tap.makeUpperHandler"), makeUpperHandler)

    def test_metricsBarePortIsLocal(self):
        """
        A bare --metrics port listens on 127.0.0.1 only; an endpoint string
        is kept as it is, and the help says both.
        """
        for command in ("serve", "demo-server"):
            options = Options().subCommands
            sub = [o for o in options if o[0] == command][0][2]()
            self.assertIn("127.0.0.1", sub.docs["metrics"])
            self.assertNotIn("(e.g. tcp:9990)", sub.docs["metrics"])
        self.assertEqual(parse("demo-server", "--metrics", "9990").subOptions["metrics"], "tcp:9990:interface=127.0.0.1")
        listen = "tcp:9990:interface=0.0.0.0"
        self.assertEqual(parse("demo-server", "--metrics", listen).subOptions["metrics"], listen)
        self.assertRaises(usage.UsageError, parse, "demo-server", "--metrics", "65536")

    def test_demoServerService(self):
        """
        demo-server makes a ThriftMux server service on its --listen.
        """
        service = makeService(parse("demo-server", "--listen", "tcp:0", "--drain-timeout", "3"), reactor)
        self.assertIsInstance(service, ThriftMuxServerService)
        self.assertEqual(service._listen, "tcp:0")
        self.assertEqual(service._drainTimeout, 3.0)

    def test_gcFreeze(self):
        """
        --gc-freeze adds a L{FreezeHeapService} after the server (which it
        lacks by default), for serve as for demo-server.
        """
        self.assertIsInstance(makeService(parse("demo-server", "--listen", "tcp:0"), reactor), ThriftMuxServerService)
        for argv in (("demo-server",), ("serve", "--iface", IFACE, "--handler", HANDLER)):
            service = makeService(parse(*(argv + ("--listen", "tcp:0", "--gc-freeze"))), reactor)
            self.assertEqual([type(s) for s in service], [ThriftMuxServerService, FreezeHeapService])

    def test_slowPeerLimits(self):
        """
        The timeouts and the connection limit have defaults, take numbers,
        and 0 or off turns them off, for ThriftMux and plain Thrift.
        """
        service = makeService(parse("demo-server", "--listen", "tcp:0"), reactor)
        timeouts = service.factory.timeouts
        self.assertEqual((timeouts.handshake, timeouts.read, timeouts.idle), (10.0, 30.0, 300.0))
        self.assertEqual(service.limit.maxConnections, 10000)
        for protocol in ("thriftmux", "thrift"):
            service = makeService(
                parse(
                    "demo-server", "--listen", "tcp:0", "--protocol", protocol, "--handshake-timeout", "2.5",
                    "--read-timeout", "off", "--idle-timeout", "0", "--max-connections", "7",
                ),
                reactor,
            )
            timeouts = service.factory.timeouts
            self.assertEqual((timeouts.handshake, timeouts.read, timeouts.idle), (2.5, None, None))
            self.assertEqual(service.limit.maxConnections, 7)
        service = makeService(parse("demo-server", "--listen", "tcp:0", "--max-connections", "off"), reactor)
        self.assertIsNone(service.limit)
        self.assertRaises(usage.UsageError, parse, "demo-server", "--read-timeout", "-1")


class ServeTests(TestCase):
    """
    serve runs any handler for a generated service.
    """

    @inlineCallbacks
    def test_serveHandler(self):
        """
        The handler named by --handler answers calls.
        """
        service = makeService(
            parse(
                "serve", "--listen", "tcp:0:interface=127.0.0.1", "--iface", "txscales.demo.gen.TestService.Iface",
                "--handler", "tests.test_tap:makeUpperHandler",
            ),
            reactor,
        )
        service.startService()
        self.addCleanup(service.stopService)
        port = yield service.listening
        client = ThriftMux.newClient(TestService.Iface, "tcp://127.0.0.1:%d" % (port.getHost().port,), timeout=5)
        self.addCleanup(client.close)
        self.assertEqual((yield client.query("abc")), "ABC")

    @inlineCallbacks
    def test_metricsListensOnLoopback(self):
        """
        demo-server --metrics with a bare port serves metrics on 127.0.0.1.
        """
        service = makeService(parse("demo-server", "--listen", "tcp:0:interface=127.0.0.1", "--metrics", "0"), reactor)
        metrics = [s for s in service if type(s).__name__ == "MetricsService"][0]
        service.startService()
        self.addCleanup(service.stopService)
        port = yield metrics.listening
        self.assertEqual(port.getHost().host, "127.0.0.1")


class ServeThriftTests(TestCase):
    """
    serve --protocol thrift serves plain Thrift.
    """

    @inlineCallbacks
    def test_serveBuffered(self):
        """
        The handler answers plain Thrift calls on the chosen transport, in
        either protocol.
        """
        from txscales.thrift import Thrift, ThriftServerService

        service = makeService(
            parse(
                "serve", "--listen", "tcp:0:interface=127.0.0.1", "--iface", "txscales.demo.gen.TestService.Iface",
                "--handler", "tests.test_tap:makeUpperHandler", "--protocol", "thrift", "--transport", "buffered",
            ),
            reactor,
        )
        self.assertIsInstance(service, ThriftServerService)
        service.startService()
        self.addCleanup(service.stopService)
        port = yield service.listening
        for protocol in ("binary", "compact"):
            client = Thrift.newClient(
                TestService.Iface, "tcp://127.0.0.1:%d" % (port.getHost().port,), transport="buffered",
                protocol=protocol, timeout=5,
            )
            self.addCleanup(client.close)
            self.assertEqual((yield client.query("abc")), "ABC")


class DemoRunTests(SynchronousTestCase):
    """
    The demo client's run counts answers, failures and latency.
    """

    def test_run(self):
        """
        A run over an in-memory network counts every call and prints a
        summary.
        """
        network = MemoryNetwork()
        network.serveThriftMux(TestService.Iface, TestServiceHandler(network.clock))
        client = network.thriftMuxClient(TestService.Iface, "tcp://127.0.0.1:9090")
        out = io.StringIO()
        ticks = iter(range(1000))
        run = self.successResultOf(DemoRun(client, 20, 4, clock=lambda: next(ticks), out=out).run())
        self.assertEqual((len(run.latencies), run.wrong, sum(run.failures.values())), (20, 0, 0))
        self.assertIn("calls=20 ok=20 wrong=0 failed=0", run.summary())
        self.assertIn("progress: 20/20 calls", out.getvalue())
        self.successResultOf(client.close())


def lastLine(result):
    """
    @return: the last non-empty line a process wrote.
    """
    return [line for line in result.output.splitlines() if line.strip()][-1]


class CommandLineTests(TestCase):
    """
    Real C{twistd txscales} processes exit non-zero, with a one-line error
    and no traceback, when their options are wrong or their run fails.
    """

    timeout = 120

    def twistd(self, *args):
        """
        Run C{twistd --pidfile= -n txscales ARGS...} to its end.

        @return: a Deferred firing with its L{ProcessResult}.
        """
        argv = twistdCommand() + ["--pidfile=", "-n", "txscales"] + list(args)
        return runPeer(argv, addCleanup=self.addCleanup, timeout=60)

    def assertFailedWith(self, result, message):
        """
        C{result} is a process that exited 1 with a last line containing
        C{message}, and no traceback.
        """
        self.assertEqual((result.exitCode, result.signal), (1, None), result.describe())
        self.assertIn(message, lastLine(result), result.describe())
        self.assertNotIn("Traceback", result.output, result.describe())

    @inlineCallbacks
    def test_demoClientBadDest(self):
        """
        demo-client with a mistyped --dest exits at once with a usage error
        instead of hanging.
        """
        dests = ["tcp:/127.0.0.1:1", "127.0.0.1:9090", "tcp://127.0.0.1", "tcp://127.0.0.1:70000"]
        results = yield gatherResults([self.twistd("demo-client", "--dest", dest) for dest in dests])
        for dest, result in zip(dests, results):
            self.assertFailedWith(result, "--dest: ")
            self.assertIn(repr(dest), lastLine(result))
            self.assertIn("(expected tcp://host:port[,host:port...] or zk://", lastLine(result))

    @inlineCallbacks
    def test_demoClientUnknownScheme(self):
        """
        demo-client with a --dest of a scheme no plugin handles fails its
        run, saying so, and exits 1.
        """
        result = yield self.twistd("demo-client", "--dest", "tpc://127.0.0.1:1", "--count", "3")
        self.assertEqual(result.exitCode, 1, result.describe())
        self.assertIn("RESULT: FAILED (UnknownPluginError: no discovery scheme named 'tpc'", result.output, result.describe())
        self.assertNotIn("Traceback", result.output, result.describe())

    @inlineCallbacks
    def test_demoClientClosedPort(self):
        """
        demo-client against a port nothing listens on prints RESULT: FAILED
        and exits 1.
        """
        dest = "tcp://127.0.0.1:%d" % (freePort(),)
        result = yield self.twistd("demo-client", "--dest", dest, "--count", "3", "--timeout", "2")
        self.assertEqual(result.exitCode, 1, result.describe())
        self.assertIn("RESULT: FAILED (ConnectError: ", result.output, result.describe())

    @inlineCallbacks
    def test_demoClientFailedCalls(self):
        """
        demo-client against a server failing some calls prints its summary
        and RESULT: FAILED, and exits 1.
        """
        server = ThriftMux.newServer(TestService.Iface, FlakyHandler(reactor), "tcp:0:interface=127.0.0.1", reactor=reactor)
        server.startService()
        self.addCleanup(server.stopService)
        port = yield server.listening
        dest = "tcp://127.0.0.1:%d" % (port.getHost().port,)
        result = yield self.twistd("demo-client", "--dest", dest, "--count", "5", "--timeout", "5")
        self.assertEqual(result.exitCode, 1, result.describe())
        self.assertIn("calls=5 ok=4 wrong=0 failed=1", result.output, result.describe())
        self.assertIn("RESULT: FAILED\n", result.stdout, result.describe())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    @inlineCallbacks
    def test_demoClientOk(self):
        """
        demo-client against demo-server prints RESULT: OK and exits 0.
        """
        server = yield startDemoServer(addCleanup=self.addCleanup)
        result = yield self.twistd("demo-client", "--dest", server.dest, "--count", "20", "--timeout", "5")
        self.assertEqual((result.exitCode, result.signal), (0, None), result.describe())
        self.assertIn("RESULT: OK", result.stdout, result.describe())

    @inlineCallbacks
    def test_serveBadOptions(self):
        """
        serve with an --iface or --handler that does not load, or a handler
        lacking methods, exits 1 with a one-line usage error.
        """
        cases = [
            (("nope.Iface", HANDLER), "--iface nope.Iface: cannot load it: "),
            ((IFACE, "txscales.demo.handler:nope"), "--handler txscales.demo.handler:nope: cannot load it: "),
            ((IFACE, "txscales.demo.gen.ttypes:InvalidQueryException"), "lacks methods of %s: " % (IFACE,)),
        ]
        results = yield gatherResults(
            [self.twistd("serve", "--listen", "tcp:0", "--iface", i, "--handler", h) for (i, h), _ in cases]
        )
        for (_, message), result in zip(cases, results):
            self.assertFailedWith(result, message)


class FakeCollector:
    """
    Records the calls of L{FreezeHeapService} to the C{gc} module.
    """

    def __init__(self):
        self.calls = []

    def collect(self):
        self.calls.append("collect")

    def freeze(self):
        self.calls.append("freeze")


class FreezeHeapServiceTests(SynchronousTestCase):
    """
    Tests for L{FreezeHeapService}.
    """

    def test_freezesAfterStartUp(self):
        """
        The service collects, then freezes, in the reactor turn after it
        started, not while the services are starting.
        """
        clock, collector = Clock(), FakeCollector()
        service = FreezeHeapService(clock, collector)
        service.startService()
        self.assertEqual(collector.calls, [])
        clock.advance(0)
        self.assertEqual(collector.calls, ["collect", "freeze"])
        service.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_stoppedBeforeFreezing(self):
        """
        A service stopped before its turn came freezes nothing and leaves
        no delayed call.
        """
        clock, collector = Clock(), FakeCollector()
        service = FreezeHeapService(clock, collector)
        service.startService()
        service.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(1)
        self.assertEqual(collector.calls, [])
