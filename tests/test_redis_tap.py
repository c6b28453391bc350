"""
Tests for C{twistd txscales redis-bench}: its options, its run on a
L{task.Clock} with a fake client, and real C{twistd} processes against a
real redis-server.
"""

import io
import signal

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, gatherResults, inlineCallbacks
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests._redis import RedisServer
from tests._twistd import Subprocess, runPeer, spawn, twistdCommand
from txscales.errors import RequestTimeoutError
from txscales.redis import ServerDownError
from txscales.redis.tap import BenchRun, RedisBenchService
from txscales.stats import MetricsService
from txscales.tap import Options, makeService


def parse(*argv):
    options = Options()
    options.parseOptions(["redis-bench"] + list(argv))
    return options


class OptionsTests(SynchronousTestCase):
    """
    redis-bench's options, each checked when parsed.
    """

    def test_defaults(self):
        """
        Nothing is needed: GET of 32 bytes, 100 in flight, against
        127.0.0.1:6379.
        """
        sub = parse().subOptions
        self.assertEqual(
            (sub["dest"], sub["command"], sub["count"], sub["concurrency"], sub["size"], sub["keys"], sub["timeout"],
             sub["protocol"]),
            ("tcp://127.0.0.1:6379", "get", 100000, 100, 32, 1, 5.0, 2),
        )

    def test_values(self):
        """
        --command takes any case; a destination without a scheme is tcp://.
        """
        sub = parse("--command", "SET", "--dest", "127.0.0.1:7000,127.0.0.1:7001", "--protocol", "3").subOptions
        self.assertEqual((sub["command"], sub["dest"], sub["protocol"]),
                         ("set", "tcp://127.0.0.1:7000,127.0.0.1:7001", 3))

    def test_badOptions(self):
        """
        A bad command, destination, protocol or number is a one-line usage
        error naming the option.
        """
        cases = [
            (("--command", "del"), "--command must be one of get, set, incr, ping, not 'del'"),
            (("--dest", "tcp://nowhere"), "--dest: "),
            (("--dest", "zk://zk:2181"), "--dest: "),
            (("--protocol", "1"), "--protocol must be 2 or 3, not 1"),
            (("--count", "0"), "--count must be 1 or more, not 0"),
            (("--concurrency", "0"), "--concurrency must be 1 or more, not 0"),
            (("--size", "-1"), "--size must be 0 or more, not -1"),
            (("--keys", "0"), "--keys must be 1 or more, not 0"),
            (("--timeout", "-1"), "--timeout must be 0 or more, not -1.0"),
            (("--metrics", "65536"), "--metrics: port 65536 is out of range"),
        ]
        for argv, message in cases:
            e = self.assertRaises(usage.UsageError, parse, *argv)
            self.assertIn(message, str(e))
            self.assertNotIn("\n", str(e))

    def test_metrics(self):
        """
        --metrics with a bare port serves metrics on 127.0.0.1 beside the
        run.
        """
        options = parse("--metrics", "9990")
        self.assertEqual(options.subOptions["metrics"], "tcp:9990:interface=127.0.0.1")
        service = makeService(options, reactor)
        self.assertEqual([type(s) for s in service], [MetricsService, RedisBenchService])
        self.assertEqual([type(s) for s in makeService(parse(), reactor)], [RedisBenchService])


class FakeClient:
    """
    A client whose commands' outcomes the test gives.

    @ivar sent: C{(command, key, value, Deferred)} of each command.
    """

    def __init__(self, refuse=None):
        self.sent = []
        self._refuse = refuse

    def _command(self, name, key, value=None):
        if self._refuse is not None:
            return fail(self._refuse)
        d = Deferred()
        self.sent.append((name, key, value, d))
        return d

    def get(self, key):
        return self._command("GET", key)

    def set(self, key, value):
        return self._command("SET", key, value)

    def incr(self, key):
        return self._command("INCR", key)

    def execute(self, *args):
        return self._command(*args, key=None)

    def answer(self, count, reply):
        """
        Answer the first C{count} commands not yet settled with C{reply}.
        """
        for entry in [e for e in self.sent if not e[3].called][:count]:
            entry[3].callback(reply)


class BenchRunTests(SynchronousTestCase):
    """
    L{BenchRun} keeps C{concurrency} commands in flight, reports progress
    once a second and sums the run up.
    """

    def setUp(self):
        self.clock = Clock()
        self.out = io.StringIO()

    def test_run(self):
        """
        The commands go out C{concurrency} at a time over C{keys} keys;
        progress comes once a second; the summary gives throughput, latency
        percentiles and errors by type, a GET answered with another value
        than the one set counting as a C{WrongReplyError}.
        """
        client = FakeClient()
        run = BenchRun(client, "get", 10, self.clock, self.out, concurrency=4, size=20, keys=3)
        d = run.run()
        self.assertEqual([(e[0], e[1]) for e in client.sent],
                         [("GET", b"txscales-bench:0"), ("GET", b"txscales-bench:1"), ("GET", b"txscales-bench:2"),
                          ("GET", b"txscales-bench:0")])
        self.assertEqual(run.value, b"txscalestxscalestxsc")
        self.clock.advance(0.5)
        client.answer(2, run.value)
        self.assertEqual(len(client.sent), 6)
        self.clock.advance(0.5)
        self.assertEqual(self.out.getvalue(), "progress: 2/10 commands, 0 failed, 2 commands/s\n")
        client.sent[2][3].errback(RequestTimeoutError(1.0))
        client.sent[3][3].errback(ServerDownError(("h", 1), ConnectionError()))
        client.answer(1, b"other")
        client.sent[5][3].errback(RequestTimeoutError(1.0))
        self.assertEqual(len(client.sent), 10)
        self.clock.advance(1.0)
        client.answer(3, run.value)
        self.assertNoResult(d)
        client.answer(1, run.value)
        self.assertIs(self.successResultOf(d), run)
        self.assertEqual((run.ok, run.failed, run.elapsed), (6, 4, 2.0))
        self.assertEqual(sorted(run.latencies), [0.5, 0.5, 1.0, 1.0, 1.0, 1.0])
        self.assertEqual(
            run.summary(),
            "commands=10 ok=6 failed=4 elapsed=2.000s\n"
            "throughput: 5 commands/s\n"
            "latency ms: p50=1000.000 p90=1000.000 p99=1000.000 p99.9=1000.000 max=1000.000\n"
            "errors: RequestTimeoutError=2, ServerDownError=1, WrongReplyError=1\n",
        )
        self.assertEqual(self.out.getvalue().count("progress: "), 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_commands(self):
        """
        set writes the run's value, incr and ping send theirs; a reply other
        than a GET's is not checked.
        """
        for command, expected in [("set", ("SET", b"txscales-bench:0", b"txsca")), ("incr", ("INCR", b"txscales-bench:0", None)),
                                  ("ping", ("PING", None, None))]:
            client = FakeClient()
            d = BenchRun(client, command, 1, self.clock, None, size=5).run()
            self.assertEqual(client.sent[0][:3], expected)
            client.answer(1, b"anything")
            self.assertEqual(self.successResultOf(d).ok, 1)

    def test_refusedAtOnce(self):
        """
        Commands that fail as they are sent all fail, without recursion
        however many they are, and the run ends.
        """
        client = FakeClient(refuse=ServerDownError(("h", 1), ConnectionError()))
        run = self.successResultOf(BenchRun(client, "get", 5000, self.clock, self.out, concurrency=1).run())
        self.assertEqual((run.ok, dict(run.failures)), (0, {"ServerDownError": 5000}))
        self.assertIn("errors: ServerDownError=5000\n", run.summary())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_interrupt(self):
        """
        An interrupted run ends at once with what was settled, sends no
        more, and says how many commands were still pending.
        """
        client = FakeClient()
        run = BenchRun(client, "get", 100, self.clock, self.out, concurrency=3)
        d = run.run()
        self.clock.advance(0.25)
        client.answer(1, run.value)
        run.interrupt()
        self.assertIs(self.successResultOf(d), run)
        self.assertTrue(run.interrupted)
        self.assertIn("commands=100 ok=1 failed=0 pending=3 (interrupted) elapsed=0.250s\n", run.summary())
        client.answer(3, run.value)
        self.assertEqual((len(client.sent), run.ok), (4, 4))
        run.interrupt()
        self.assertEqual(self.clock.getDelayedCalls(), [])


def lastLine(result):
    return [line for line in result.output.splitlines() if line.strip()][-1]


class CommandLineTests(TestCase):
    """
    Real C{twistd txscales redis-bench} processes against a real
    redis-server.
    """

    timeout = 120

    @inlineCallbacks
    def setUp(self):
        self.server = RedisServer(reactor, self.addCleanup)
        yield self.server.start()

    def twistd(self, *args):
        """
        Run C{twistd --pidfile= -n txscales redis-bench ARGS...} to its end.

        @return: a Deferred firing with its L{ProcessResult}.
        """
        argv = twistdCommand() + ["--pidfile=", "-n", "txscales", "redis-bench"] + list(args)
        return runPeer(argv, addCleanup=self.addCleanup, timeout=90)

    @inlineCallbacks
    def test_bench(self):
        """
        redis-bench runs every command, sets what it reads and writes what
        it is asked to, prints a summary with throughput and latency, and
        exits 0; over RESP3 too.
        """
        incr = yield self.twistd("--dest", self.server.dest, "--command", "incr", "--count", "3000", "--protocol", "3",
                                 "--concurrency", "1")
        self.assertEqual((yield self.server.execute("GET", BenchRun.key(0))), b"3000")
        get = yield self.twistd("--dest", self.server.dest, "--command", "get", "--count", "20000", "--size", "100",
                                "--keys", "7", "--concurrency", "50")
        for result, count in ((incr, 3000), (get, 20000)):
            self.assertEqual((result.exitCode, result.signal), (0, None), result.describe())
            self.assertIn("commands=%d ok=%d failed=0 " % (count, count), result.stdout, result.describe())
            self.assertRegex(result.stdout, r"throughput: \d+ commands/s\n")
            self.assertRegex(result.stdout, r"latency ms: p50=[\d.]+ p90=[\d.]+ p99=[\d.]+ p99.9=[\d.]+ max=[\d.]+\n")
            self.assertIn("errors: none\nRESULT: OK\n", result.stdout, result.describe())
            self.assertNotIn("Traceback", result.output, result.describe())
        values = yield gatherResults([self.server.execute("GET", BenchRun.key(i)) for i in range(7)])
        self.assertEqual(values, [b"txscales" * 12 + b"txsc"] * 7)
        result = yield self.twistd("--dest", self.server.dest, "--command", "set", "--count", "1000", "--size", "0",
                                   "--keys", "2")
        self.assertIn("RESULT: OK\n", result.stdout, result.describe())
        values = yield gatherResults([self.server.execute("GET", BenchRun.key(i)) for i in range(2)])
        self.assertEqual(values, [b"", b""])

    @inlineCallbacks
    def test_failedRun(self):
        """
        A run whose commands fail (a server that does not answer) sums up
        the errors by type and exits 1 without a traceback, as does one
        whose key holds another type; a bad option exits 1 with a one-line
        usage error.
        """
        yield self.server.execute("LPUSH", BenchRun.key(0), "x")
        refused, wrongType, bad = yield gatherResults([
            self.twistd("--dest", "tcp://127.0.0.1:1", "--command", "set", "--count", "20"),
            self.twistd("--dest", self.server.dest, "--command", "incr", "--count", "30"),
            self.twistd("--dest", self.server.dest, "--command", "del"),
        ])
        self.assertEqual((refused.exitCode, refused.signal), (1, None), refused.describe())
        self.assertIn("errors: ServerDownError=", refused.stdout, refused.describe())
        self.assertIn("RESULT: FAILED\n", refused.stdout, refused.describe())
        self.assertEqual((wrongType.exitCode, wrongType.signal), (1, None), wrongType.describe())
        self.assertIn("commands=30 ok=0 failed=30 ", wrongType.stdout, wrongType.describe())
        self.assertIn("errors: WrongTypeError=30\nRESULT: FAILED\n", wrongType.stdout, wrongType.describe())
        for result in (refused, wrongType, bad):
            self.assertNotIn("Traceback", result.output, result.describe())
        self.assertEqual((bad.exitCode, bad.signal), (1, None), bad.describe())
        self.assertIn("--command must be one of get, set, incr, ping, not 'del'", lastLine(bad), bad.describe())

    @inlineCallbacks
    def test_interrupted(self):
        """
        A long run prints progress; SIGINT in its middle prints the summary
        of the commands settled so far and RESULT: INTERRUPTED, without a
        traceback.
        """
        argv = twistdCommand() + ["--pidfile=", "-n", "txscales", "redis-bench", "--dest", self.server.dest,
                                  "--command", "set", "--count", "100000000"]
        process = Subprocess(argv, name="redis-bench")
        progress = process.waitForLine(r"^progress: [1-9]\d*/100000000 ", "a progress line with commands")
        spawn(process, reactor, addCleanup=self.addCleanup)
        yield progress
        result = yield process.signal("INT")
        self.assertEqual(result.signal, signal.SIGINT, result.describe())
        self.assertRegex(result.stdout, r"commands=100000000 ok=[1-9]\d* failed=0 pending=\d+ \(interrupted\)")
        self.assertIn("RESULT: INTERRUPTED\n", result.stdout, result.describe())
        self.assertNotIn("Traceback", result.output, result.describe())
