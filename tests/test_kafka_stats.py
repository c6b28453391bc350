"""
Tests for the Kafka producer's Prometheus metrics: counted per batch and
per request against a fake cluster on a L{task.Clock}, and scraped from the
metrics page after sending to a real broker (Tansu).
"""

import struct

import treq
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests._kafka import TansuBroker, createTopic
from txscales.errors import ConnectionLostError
from txscales.kafka import Kafka, KafkaProducer
from txscales.kafka._messages import INIT_PRODUCER_ID, PRODUCE
from txscales.kafka._records import RecordBatchBuilder
from txscales.kafka._stats import ProducerStats
from txscales.stats import MetricsService

P = "txscales_kafka_producer_"


class _Partition:
    def __init__(self, partition):
        self.partition = partition


class _Topic:
    def __init__(self, partitions):
        self.partitions = [_Partition(p) for p in range(partitions)]


class FakeConnection:
    """
    A broker connection that speaks Produce v3 and keeps each request's
    answer for the test to give.

    @ivar requests: C{(body, Deferred)} of each Produce request.
    @ivar sent: bodies of requests sent without an answer (acks 0).
    """

    def __init__(self):
        self.requests = []
        self.sent = []

    def version(self, apiKey):
        return {PRODUCE: 3, INIT_PRODUCER_ID: 0}[apiKey]

    def request(self, apiKey, version, body):
        d = Deferred()
        self.requests.append((body, d))
        return d

    def send(self, apiKey, version, body):
        self.sent.append(body)


class FakeCluster:
    """
    One broker (node 0) leading every partition of topic C{t}.
    """

    def __init__(self, partitions=1):
        self.connection = FakeConnection()
        self.topics = {"t": _Topic(partitions)}
        self.brokers = {0: ("127.0.0.1", 9092)}
        self.invalidated = 0

    def topic(self, name):
        return succeed(self.topics[name])

    def cached(self, name, now):
        return self.topics[name]

    def leaderOf(self, topic, partition):
        return 0

    def invalidate(self):
        self.invalidated += 1

    def refresh(self):
        return succeed(None)

    def connectionToNode(self, node):
        return succeed(self.connection)

    def close(self):
        pass


def produceResponse(errorCode=0, baseOffset=0, partition=0, topic=b"t"):
    """
    @return: a Produce v3 response frame (correlation id 1) for one
        partition.
    """
    return (struct.pack(">ii", 1, 1) + struct.pack(">h", len(topic)) + topic
            + struct.pack(">iihqq", 1, partition, errorCode, baseOffset, -1) + struct.pack(">i", 0))


def batchSize(values, codec="none"):
    """
    @return: the size of the RecordBatch of C{values} (no key, timestamp 0,
        no producer id), as the producer sends it.
    """
    builder = RecordBatchBuilder(codec)
    for value in values:
        builder.append(0, None, value)
    return len(builder.build())


class ProducerStatsTests(SynchronousTestCase):
    """
    L{ProducerStats} counts a producer's batches, requests, errors and free
    buffer.
    """

    def setUp(self):
        self.clock = Clock()
        self.registry = CollectorRegistry()
        self.cluster = FakeCluster()

    def producer(self, label="p", **options):
        options.setdefault("lingerMs", 1)
        stats = ProducerStats(label, self.clock, self.registry)
        return KafkaProducer(self.cluster, self.clock, stats=stats, **options)

    def value(self, name, **labels):
        return self.registry.get_sample_value(P + name, dict(client="p", **labels))

    def sendAll(self, producer, values):
        """
        Send C{values} to C{t}, past the linger: one batch in one request.

        @return: the records' Deferreds.
        """
        sent = [producer.send("t", v) for v in values]
        self.clock.advance(0.001)
        # The producer's due time may come a rounding error later.
        self.clock.advance(0.001)
        return sent

    def answer(self, frame=None):
        """
        Answer the last request with C{frame} (default: success), then let
        the producer act on it.
        """
        self.cluster.connection.requests[-1][1].callback(frame or produceResponse())
        self.clock.advance(0)

    def test_batch(self):
        """
        A batch acknowledged counts its records and bytes once, its size and
        compression ratio (1 uncompressed) once, and its request's latency.
        """
        producer = self.producer()
        values = [b"a" * 10, b"b" * 20, b"c" * 30]
        sent = self.sendAll(producer, values)
        self.assertEqual(len(self.cluster.connection.requests), 1)
        self.assertEqual((self.value("requests_total"), self.value("requests_pending")), (1, 1))
        self.clock.advance(0.002)
        self.answer()
        self.assertEqual([self.successResultOf(d).offset for d in sent], [0, 1, 2])
        size = batchSize(values)
        self.assertEqual(self.value("records_total"), 3)
        self.assertEqual(self.value("bytes_total"), size)
        self.assertEqual((self.value("batch_size_bytes_count"), self.value("batch_size_bytes_sum")), (1, size))
        self.assertEqual((self.value("compression_ratio_count"), self.value("compression_ratio_sum")), (1, 1.0))
        self.assertEqual(self.value("requests_pending"), 0)
        self.assertEqual(self.value("request_latency_seconds_count"), 1)
        self.assertAlmostEqual(self.value("request_latency_seconds_sum"), 0.003)
        self.assertEqual(self.value("request_latency_seconds_bucket", le="0.0025"), 0)
        self.assertEqual(self.value("request_latency_seconds_bucket", le="0.005"), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_perBatch(self):
        """
        500 records in one batch are one observation of the batch size.
        """
        producer = self.producer(batchSize=1 << 20)
        values = [b"%d" % (i,) for i in range(500)]
        self.sendAll(producer, values)
        self.answer()
        self.assertEqual(self.value("records_total"), 500)
        self.assertEqual(self.value("batch_size_bytes_count"), 1)
        self.assertEqual(self.value("batch_size_bytes_sum"), batchSize(values))

    def test_compressionRatio(self):
        """
        A gzip batch of repetitive values is observed with its bytes sent
        per uncompressed byte.
        """
        producer = self.producer(compression="gzip")
        values = [b"x" * 1000] * 10
        self.sendAll(producer, values)
        self.answer()
        builder = RecordBatchBuilder("none")
        for v in values:
            builder.append(0, None, v)
        ratio = batchSize(values, "gzip") / builder.sizeInBytes()
        self.assertLess(ratio, 0.1)
        self.assertAlmostEqual(self.value("compression_ratio_sum"), ratio)
        self.assertEqual(self.value("compression_ratio_bucket", le="0.1"), 1)
        self.assertEqual(self.value("bytes_total"), batchSize(values, "gzip"))

    def test_errorsByCode(self):
        """
        A retryable error code counts the batch's records as retries under
        its code and name; a lost connection under its class; a
        non-retryable code counts them as errors.
        """
        producer = self.producer(retryBackoff=0.1)
        sent = self.sendAll(producer, [b"a", b"b"])
        self.answer(produceResponse(errorCode=6))
        self.assertEqual(self.value("record_retries_total", code="6", error="NOT_LEADER_OR_FOLLOWER"), 2)
        self.clock.advance(0.1)
        self.cluster.connection.requests[-1][1].errback(ConnectionLostError())
        self.assertEqual(self.value("record_retries_total", code="none", error="ConnectionLostError"), 2)
        self.clock.advance(0.1)
        self.answer(produceResponse(errorCode=10))
        self.assertEqual(self.value("record_errors_total", code="10", error="MESSAGE_TOO_LARGE"), 2)
        self.assertEqual(self.value("records_total"), 0)
        self.assertEqual(self.value("requests_total"), 3)
        self.assertEqual(self.value("requests_pending"), 0)
        self.assertEqual(self.value("request_latency_seconds_count"), 3)
        for d in sent:
            self.failureResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_deliveryTimeout(self):
        """
        A batch whose delivery timeout passes counts its records as errors
        of the producer's own C{DeliveryTimeoutError}.
        """
        producer = self.producer(deliveryTimeout=1.0)
        sent = self.sendAll(producer, [b"a"])
        self.clock.advance(1.0)
        self.answer(produceResponse(errorCode=6))
        self.failureResultOf(sent[0])
        self.assertEqual(self.value("record_errors_total", code="none", error="DeliveryTimeoutError"), 1)
        self.assertIsNone(self.value("record_retries_total", code="6", error="NOT_LEADER_OR_FOLLOWER"))

    def test_acksZero(self):
        """
        With acks 0 a request is counted and settled at once, with no
        latency, and its records are counted as sent.
        """
        producer = self.producer(acks=0)
        sent = self.sendAll(producer, [b"a", b"b"])
        self.assertEqual(len(self.cluster.connection.sent), 1)
        self.assertEqual([self.successResultOf(d).offset for d in sent], [-1, -1])
        self.assertEqual((self.value("requests_total"), self.value("requests_pending")), (1, 0))
        self.assertEqual(self.value("request_latency_seconds_count"), 0)
        self.assertEqual(self.value("records_total"), 2)

    def test_bufferAvailable(self):
        """
        The buffer gauge is read when collected: the free bytes of every
        open producer of the label, none for a closed one.
        """
        first = self.producer(bufferMemory=1000)
        second = self.producer(bufferMemory=500)
        self.assertEqual(self.value("buffer_available_bytes"), 1500)
        d = first.send("t", b"x" * 100)
        held = 1000 - first.bufferAvailable()
        self.assertGreater(held, 100)
        self.assertEqual(self.value("buffer_available_bytes"), 1500 - held)
        self.clock.advance(0.001)
        self.clock.advance(0)
        self.answer()
        self.successResultOf(d)
        self.assertEqual(self.value("buffer_available_bytes"), 1500)
        self.successResultOf(second.close())
        self.assertEqual(self.value("buffer_available_bytes"), 1000)
        del second
        self.assertEqual(self.value("buffer_available_bytes"), 1000)

    def test_labelsApart(self):
        """
        Producers of other labels have series of their own in one registry.
        """
        self.sendAll(self.producer("p"), [b"a"])
        self.answer()
        self.sendAll(self.producer("q"), [b"b", b"c"])
        self.answer()
        self.assertEqual(self.value("records_total"), 1)
        self.assertEqual(self.registry.get_sample_value(P + "records_total", {"client": "q"}), 2)

    def test_newProducer(self):
        """
        L{Kafka.newProducer} counts in the registry given, labelled with
        C{label} or else the client id; C{stats=False} counts nothing.
        """
        clock = Clock()
        producers = [
            Kafka.newProducer("tcp://127.0.0.1:1", reactor=clock, registry=self.registry, clientId="svc"),
            Kafka.newProducer("tcp://127.0.0.1:1", reactor=clock, registry=self.registry, label="mine"),
        ]
        quiet = Kafka.newProducer("tcp://127.0.0.1:1", reactor=clock, registry=self.registry, stats=False,
                                  label="quiet")
        self.assertIsNone(quiet._stats)
        for label in ("svc", "mine"):
            self.assertEqual(self.registry.get_sample_value(P + "buffer_available_bytes", {"client": label}),
                             32 * 1024 * 1024)
        self.assertIsNone(self.registry.get_sample_value(P + "buffer_available_bytes", {"client": "quiet"}))
        for producer in producers + [quiet]:
            self.successResultOf(producer.close())


class ScrapeTests(TestCase):
    """
    The metrics page after sending to a real broker.
    """

    servers = True
    timeout = 60

    @inlineCallbacks
    def test_scrapeAfterSending(self):
        """
        After 1,000 records to Tansu, C{/metrics} shows them acknowledged,
        every request answered and timed, no error, and the whole buffer
        free.
        """
        broker = TansuBroker(reactor, self.addCleanup)
        yield broker.start()
        yield createTopic(reactor, broker.bootstrap, "m", partitions=2, broker=broker)
        registry = CollectorRegistry()
        producer = Kafka.newProducer(broker.dest, reactor=reactor, registry=registry, label="scraped",
                                     bufferMemory=1 << 20)
        self.addCleanup(producer.close)
        yield gatherResults([producer.send("m", b"%d" % (i,), key=b"%d" % (i,)) for i in range(1000)])
        service = MetricsService("tcp:0:interface=127.0.0.1", reactor, registry)
        service.startService()
        self.addCleanup(service.stopService)
        port = yield service.listening
        response = yield treq.get("http://127.0.0.1:%d/metrics" % (port.getHost().port,), persistent=False)
        text = yield treq.text_content(response, encoding="utf-8")
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text) for s in family.samples}

        def sample(name, **labels):
            return samples.get((P + name, tuple(sorted(dict(client="scraped", **labels).items()))))

        self.assertEqual(sample("records_total"), 1000, text)
        self.assertGreater(sample("bytes_total"), 1000 * 4)
        self.assertEqual(sample("bytes_total"), sample("batch_size_bytes_sum"))
        self.assertGreaterEqual(sample("batch_size_bytes_count"), 2)
        self.assertEqual(sample("compression_ratio_sum"), sample("compression_ratio_count"))
        self.assertEqual(sample("request_latency_seconds_count"), sample("requests_total"))
        self.assertEqual(sample("requests_pending"), 0)
        self.assertEqual(sample("buffer_available_bytes"), 1 << 20)
        self.assertNotIn(P + "record_errors_total{", text)
        self.assertNotIn(P + "record_retries_total{", text)
