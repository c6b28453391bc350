"""
Tests for C{twistd txscales kafka-produce}: its options, its run on a
L{task.Clock} with a fake producer, and real C{twistd} processes writing to
a real broker (Tansu), read back with kafka-python.
"""

import io
import signal

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, gatherResults, inlineCallbacks
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests._kafka import TansuBroker, consumeAll, createTopic
from tests._twistd import Subprocess, runPeer, spawn, twistdCommand
from txscales.errors import ConnectionLostError
from txscales.kafka import DeliveryTimeoutError, MessageTooLargeError, RecordMetadata
from txscales.kafka._errors import errorForCode
from txscales.kafka.tap import KafkaProduceService, ProduceRun
from txscales.stats import MetricsService
from txscales.tap import Options, makeService


def parse(*argv):
    options = Options()
    options.parseOptions(["kafka-produce"] + list(argv))
    return options


class OptionsTests(SynchronousTestCase):
    """
    kafka-produce's options, each checked when parsed.
    """

    def test_defaults(self):
        """
        Only --topic is needed; the defaults are the producer's, acks all.
        """
        sub = parse("--topic", "t").subOptions
        self.assertEqual(
            (sub["dest"], sub["topic"], sub["count"], sub["size"], sub["acks"], sub["linger"], sub["compression"]),
            ("tcp://127.0.0.1:9092", "t", 10000, 100, "all", 5.0, "none"),
        )

    def test_acks(self):
        """
        --acks takes 0, 1, all (and -1, Kafka's name for all).
        """
        for given, acks in (("0", 0), ("1", 1), ("all", "all"), ("-1", "all")):
            self.assertEqual(parse("--topic", "t", "--acks", given).subOptions["acks"], acks)

    def test_badOptions(self):
        """
        A missing topic, a bad destination, acks, codec or count are
        one-line usage errors naming the option.
        """
        cases = [
            ((), "--topic is required"),
            (("--topic", "t", "--acks", "2"), "--acks must be 0, 1 or all, not '2'"),
            (("--topic", "t", "--dest", "127.0.0.1"), "--dest: "),
            (("--topic", "t", "--dest", "zk://zk:2181"), "--dest: "),
            (("--topic", "t", "--dest", "tcp://127.0.0.1:0"), "(expected tcp://host:port[,host:port...] or zk://"),
            (("--topic", "t", "--compression", "brotli"), "--compression: compression codec 'brotli'"),
            (("--topic", "t", "--count", "0"), "--count must be 1 or more, not 0"),
            (("--topic", "t", "--size", "-1"), "--size must be 0 or more, not -1"),
            (("--topic", "t", "--outstanding", "0"), "--outstanding must be 1 or more"),
            (("--topic", "t", "--metrics", "65536"), "--metrics: port 65536 is out of range"),
        ]
        for argv, message in cases:
            e = self.assertRaises(usage.UsageError, parse, *argv)
            self.assertIn(message, str(e))
            self.assertNotIn("\n", str(e))

    def test_destinations(self):
        """
        --dest takes a tcp:// list (or one without its scheme), a zk://
        serverset, and other schemes, left to their discovery plugins.
        """
        for dest in ("tcp://127.0.0.1:1,[::1]:2", "127.0.0.1:9092", "zk://zk1:2181,zk2:2181/kafka#plain", "other://x"):
            self.assertEqual(parse("--topic", "t", "--dest", dest).subOptions["dest"], dest)

    def test_metrics(self):
        """
        --metrics with a bare port serves metrics on 127.0.0.1 beside the
        run.
        """
        options = parse("--topic", "t", "--metrics", "9990")
        self.assertEqual(options.subOptions["metrics"], "tcp:9990:interface=127.0.0.1")
        service = makeService(options, reactor)
        self.assertEqual([type(s) for s in service], [MetricsService, KafkaProduceService])
        self.assertEqual([type(s) for s in makeService(parse("--topic", "t"), reactor)], [KafkaProduceService])


class FakeProducer:
    """
    A producer whose records' outcomes the test gives.

    @ivar sent: C{(topic, value, key, Deferred)} of each record.
    """

    def __init__(self, refuse=None):
        self.sent = []
        self._refuse = refuse

    def send(self, topic, value, key=None):
        if self._refuse is not None:
            return fail(self._refuse)
        d = Deferred()
        self.sent.append((topic, value, key, d))
        return d

    def acknowledge(self, count):
        """
        Acknowledge the first C{count} records not yet settled.
        """
        for topic, value, key, d in [r for r in self.sent if not r[3].called][:count]:
            d.callback(RecordMetadata(topic, 0, 0, 0))


class ProduceRunTests(SynchronousTestCase):
    """
    L{ProduceRun} sends a bounded window of records, reports progress once a
    second and sums the run up.
    """

    def setUp(self):
        self.clock = Clock()
        self.out = io.StringIO()

    def test_run(self):
        """
        The records go out C{outstanding} at a time, with keys over C{keys}
        and values of C{size} bytes; progress comes once a second; the
        summary gives throughput, latency percentiles and errors by type.
        """
        producer = FakeProducer()
        run = ProduceRun(producer, "t", 10, 50, self.clock, self.out, keys=3, outstanding=4)
        d = run.run()
        self.assertEqual(len(producer.sent), 4)
        self.assertEqual([r[2] for r in producer.sent], [b"0", b"1", b"2", b"0"])
        self.assertEqual([len(r[1]) for r in producer.sent], [50] * 4)
        self.assertTrue(producer.sent[1][1].startswith(b"1 "))
        self.assertEqual(producer.sent[1][1], run.value(1))
        self.clock.advance(0.5)
        producer.acknowledge(2)
        self.assertEqual(len(producer.sent), 6)
        self.clock.advance(0.5)
        self.assertEqual(self.out.getvalue(),
                         "progress: 2/10 records acknowledged, 0 failed, 2 records/s, 0.00 MB/s\n")
        producer.sent[2][3].errback(errorForCode(6))
        producer.sent[3][3].errback(DeliveryTimeoutError(1.0, True))
        producer.sent[4][3].errback(errorForCode(6))
        producer.sent[5][3].errback(errorForCode(13))
        self.assertEqual(len(producer.sent), 10)
        self.clock.advance(1.0)
        producer.acknowledge(3)
        self.assertNoResult(d)
        producer.acknowledge(1)
        self.assertIs(self.successResultOf(d), run)
        self.assertEqual(len(producer.sent), 10)
        self.assertEqual((run.acknowledged, run.failed, run.elapsed), (6, 4, 2.0))
        self.assertEqual(sorted(run.latencies), [0.5, 0.5, 1.0, 1.0, 1.0, 1.0])
        self.assertEqual(
            run.summary(),
            "records=10 acknowledged=6 failed=4 elapsed=2.000s\n"
            "throughput: 3 records/s, 0.00 MB/s\n"
            "latency ms: p50=1000.00 p99=1000.00 max=1000.00\n"
            "errors: DeliveryTimeoutError=1, KafkaError_NETWORK_EXCEPTION=1, NotLeaderOrFollowerError=2\n",
        )
        self.assertEqual(self.out.getvalue().count("progress: "), 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_refusedAtOnce(self):
        """
        Records that fail as they are sent all fail, without recursion
        however many they are, and the run ends.
        """
        producer = FakeProducer(refuse=MessageTooLargeError("too big"))
        run = self.successResultOf(ProduceRun(producer, "t", 5000, 10, self.clock, self.out, outstanding=1).run())
        self.assertEqual((run.acknowledged, dict(run.failures)), (0, {"MessageTooLargeError": 5000}))
        self.assertIn("errors: MessageTooLargeError=5000\n", run.summary())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_connectionErrorNamed(self):
        """
        Errors other than the broker's are named by their class.
        """
        producer = FakeProducer()
        d = ProduceRun(producer, "t", 1, 0, self.clock, self.out).run()
        self.assertEqual(producer.sent[0][1], b"")
        producer.sent[0][3].errback(ConnectionLostError())
        self.assertEqual(dict(self.successResultOf(d).failures), {"ConnectionLostError": 1})

    def test_interrupt(self):
        """
        An interrupted run ends at once with what was settled, sends no
        more, and says how many records were still pending.
        """
        producer = FakeProducer()
        run = ProduceRun(producer, "t", 100, 10, self.clock, self.out, outstanding=3)
        d = run.run()
        self.clock.advance(0.25)
        producer.acknowledge(1)
        run.interrupt()
        self.assertIs(self.successResultOf(d), run)
        self.assertTrue(run.interrupted)
        self.assertEqual(run.elapsed, 0.25)
        self.assertIn("records=100 acknowledged=1 failed=0 pending=3 (interrupted) elapsed=0.250s\n", run.summary())
        producer.acknowledge(3)
        self.assertEqual((len(producer.sent), run.acknowledged), (4, 4))
        run.interrupt()
        self.assertEqual(self.clock.getDelayedCalls(), [])


def lastLine(result):
    return [line for line in result.output.splitlines() if line.strip()][-1]


class CommandLineTests(TestCase):
    """
    Real C{twistd txscales kafka-produce} processes against Tansu.
    """

    servers = True
    timeout = 120

    @inlineCallbacks
    def setUp(self):
        self.broker = TansuBroker(reactor, self.addCleanup)
        yield self.broker.start()

    def twistd(self, *args):
        """
        Run C{twistd --pidfile= -n txscales kafka-produce ARGS...} to its end.

        @return: a Deferred firing with its L{ProcessResult}.
        """
        argv = twistdCommand() + ["--pidfile=", "-n", "txscales", "kafka-produce"] + list(args)
        return runPeer(argv, addCleanup=self.addCleanup, timeout=90)

    @inlineCallbacks
    def test_produce(self):
        """
        kafka-produce writes every record, keyed and sized as asked, prints
        progress and a summary with throughput and latency, and exits 0;
        with acks 1 and gzip too.
        """
        yield createTopic(reactor, self.broker.bootstrap, "p", partitions=3, broker=self.broker)
        results = yield gatherResults([
            self.twistd("--dest", self.broker.dest, "--topic", "p", "--count", "3000", "--size", "64",
                        "--keys", "7", "--outstanding", "500"),
            self.twistd("--dest", self.broker.dest, "--topic", "p", "--count", "500", "--size", "10",
                        "--acks", "1", "--compression", "gzip"),
        ])
        for result, count in zip(results, (3000, 500)):
            self.assertEqual((result.exitCode, result.signal), (0, None), result.describe())
            self.assertIn("records=%d acknowledged=%d failed=0 " % (count, count), result.stdout, result.describe())
            self.assertRegex(result.stdout, r"throughput: \d+ records/s, [\d.]+ MB/s\n")
            self.assertRegex(result.stdout, r"latency ms: p50=[\d.]+ p99=[\d.]+ max=[\d.]+\n")
            self.assertIn("errors: none\nRESULT: OK\n", result.stdout, result.describe())
            self.assertNotIn("Traceback", result.output, result.describe())
        records = yield consumeAll(reactor, self.broker.bootstrap, "p", broker=self.broker)
        keyed = ProduceRun(None, "p", 3000, 64, Clock(), io.StringIO())
        small = ProduceRun(None, "p", 500, 10, Clock(), io.StringIO())
        self.assertEqual(sorted((r.key or b"", r.value) for r in records),
                         sorted([(b"%d" % (i % 7,), keyed.value(i)) for i in range(3000)]
                                + [(b"", small.value(i)) for i in range(500)]))
        for r in records:
            if r.key is not None:
                self.assertEqual(len(r.value), 64)

    @inlineCallbacks
    def test_failedRun(self):
        """
        A run whose records fail (the topic does not exist) sums up the
        errors by type and exits 1, without a traceback, as does one whose
        producer cannot be made (no plugin for the scheme); a bad option
        exits 1 with a one-line usage error.
        """
        failed, bad, scheme = yield gatherResults([
            self.twistd("--dest", self.broker.dest, "--topic", "missing", "--count", "20"),
            self.twistd("--dest", self.broker.dest, "--topic", "t", "--acks", "2"),
            self.twistd("--dest", "nope://x", "--topic", "t"),
        ])
        self.assertEqual((scheme.exitCode, scheme.signal), (1, None), scheme.describe())
        self.assertIn("RESULT: FAILED (UnknownPluginError: ", scheme.stdout, scheme.describe())
        self.assertNotIn("Traceback", scheme.output, scheme.describe())
        self.assertEqual((failed.exitCode, failed.signal), (1, None), failed.describe())
        self.assertIn("records=20 acknowledged=0 failed=20 ", failed.stdout, failed.describe())
        self.assertIn("errors: UnknownTopicOrPartitionError=20\nRESULT: FAILED\n", failed.stdout, failed.describe())
        self.assertNotIn("Traceback", failed.output, failed.describe())
        self.assertEqual((bad.exitCode, bad.signal), (1, None), bad.describe())
        self.assertIn("--acks must be 0, 1 or all, not '2'", lastLine(bad), bad.describe())
        self.assertNotIn("Traceback", bad.output, bad.describe())

    @inlineCallbacks
    def test_interrupted(self):
        """
        SIGINT in the middle of a run prints the summary of the records
        settled so far and RESULT: INTERRUPTED, without a traceback.
        """
        yield createTopic(reactor, self.broker.bootstrap, "i", partitions=1, broker=self.broker)
        argv = twistdCommand() + ["--pidfile=", "-n", "txscales", "kafka-produce", "--dest", self.broker.dest,
                                  "--topic", "i", "--count", "100000000", "--outstanding", "200"]
        process = Subprocess(argv, name="kafka-produce")
        progress = process.waitForLine(r"^progress: [1-9]\d*/100000000 ", "a progress line with records")
        spawn(process, reactor, addCleanup=self.addCleanup)
        yield progress
        result = yield process.signal("INT")
        self.assertEqual(result.signal, signal.SIGINT, result.describe())
        self.assertRegex(result.stdout, r"records=100000000 acknowledged=[1-9]\d* failed=0 pending=\d+ \(interrupted\)")
        self.assertIn("RESULT: INTERRUPTED\n", result.stdout, result.describe())
        self.assertNotIn("Traceback", result.output, result.describe())
