"""
Tests for the C{twistd txscales} options and services.
"""

import io

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txscales.demo._client import DemoRun, percentile
from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales.tap import Options, loadCallable, makeService
from txscales.testing import MemoryNetwork
from txscales.thriftmux import ThriftMux
from txscales.thriftmux._server import ThriftMuxServerService


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


class OptionsTests(SynchronousTestCase):
    """
    The subcommands parse as DESIGN.md's contracts say.
    """

    def test_serve(self):
        """
        serve takes --listen, --iface, --handler and --protocol.
        """
        options = parse(
            "serve", "--listen", "tcp:0", "--iface", "txscales.demo.gen.TestService.Iface",
            "--handler", "tests.test_tap:makeUpperHandler", "--protocol", "thriftmux",
        )
        self.assertEqual(options.subCommand, "serve")
        self.assertEqual(options.subOptions["listen"], "tcp:0")

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
        base = ("serve", "--iface", "a.Iface", "--handler", "b:c")
        sub = parse(*base + ("--protocol", "thrift", "--transport", "buffered")).subOptions
        self.assertEqual((sub["protocol"], sub["transport"]), ("thrift", "buffered"))
        self.assertEqual(parse(*base + ("--protocol", "thrift")).subOptions["transport"], "framed")
        e = self.assertRaises(usage.UsageError, parse, *base + ("--protocol", "thrift", "--transport", "http"))
        self.assertIn("http", str(e))
        self.assertRaises(usage.UsageError, parse, *base + ("--transport", "buffered"))

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

    def test_loadCallable(self):
        """
        Handlers load from module:callable and dotted names.
        """
        self.assertIs(loadCallable("tests.test_tap:makeUpperHandler"), makeUpperHandler)
        self.assertIs(loadCallable("tests.test_tap.makeUpperHandler"), makeUpperHandler)

    def test_demoServerService(self):
        """
        demo-server makes a ThriftMux server service on its --listen.
        """
        service = makeService(parse("demo-server", "--listen", "tcp:0", "--drain-timeout", "3"), reactor)
        self.assertIsInstance(service, ThriftMuxServerService)
        self.assertEqual(service._listen, "tcp:0")
        self.assertEqual(service._drainTimeout, 3.0)


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

    def test_percentile(self):
        """
        Percentiles pick from sorted values; empty gives 0.
        """
        self.assertEqual(percentile([], 0.5), 0.0)
        self.assertEqual(percentile([1, 2, 3, 4, 5], 0.5), 3)
        self.assertEqual(percentile([1, 2, 3, 4, 5], 1.0), 5)
