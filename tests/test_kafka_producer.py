"""
Tests for the Kafka producer against a real broker (Tansu), read back with
kafka-python, an independent client.
"""

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from tests._kafka import ConsumedRecord, TansuBroker, consumeAll, createTopic
from tests._proxy import ObservingProxy
from tests._twistd import freePort
from txscales._framing import LengthPrefixDecoder
from txscales.errors import ClientClosedError
from txscales.kafka import (
    BufferExhaustedError,
    DeliveryTimeoutError,
    Kafka,
    MessageTooLargeError,
    RecordMetadata,
    UnknownTopicOrPartitionError,
)

T0 = 1700000000000
N = 20000

RECORDS = [
    (b"k0", b"v0", [("h", b"1")], 0),
    (None, b"no key", [], 1),
    (b"k2", b"", [("a", b""), ("a", b"again"), ("\u00e9t\u00e9", bytes(range(256)))], 2),
    (b"k3", None, [], 0),
    (b"", b"x" * 10000, [("big", b"y" * 1000)], 2),
    (b"k5", bytes(range(256)), [], 1),
]


class _ThreePartitions:
    """
    The part of kafka-python's ClusterMetadata its partitioner reads: one
    topic of three partitions.
    """

    def topics(self):
        return {"order"}

    def partitions_for_topic(self, topic):
        return {0, 1, 2}

    def available_partitions_for_topic(self, topic):
        return {0, 1, 2}


class ProducerTests(TestCase):
    """
    Tests for L{Kafka.newProducer} against Tansu.
    """

    servers = True
    timeout = 120

    @inlineCallbacks
    def setUp(self):
        self.broker = TansuBroker(reactor, self.addCleanup)
        yield self.broker.start()

    def producer(self, **options):
        """
        A producer for the broker, closed at cleanup.
        """
        producer = Kafka.newProducer(self.broker.dest, reactor=reactor, **options)
        self.addCleanup(producer.close)
        return producer

    @inlineCallbacks
    def test_readBackExactly(self):
        """
        Keys, values, headers, timestamps and partitions read back exactly
        as sent, at the offsets the producer reported.
        """
        yield createTopic(reactor, self.broker.bootstrap, "t", partitions=3, broker=self.broker)
        producer = self.producer()
        sent = yield gatherResults([
            producer.send("t", value, key=key, partition=partition, headers=headers, timestamp=T0 + i)
            for i, (key, value, headers, partition) in enumerate(RECORDS)
        ])
        expected = [
            ConsumedRecord("t", meta.partition, meta.offset, T0 + i, 0, key, value, tuple(headers))
            for i, ((key, value, headers, partition), meta) in enumerate(zip(RECORDS, sent))
        ]
        self.assertEqual([m.partition for m in sent], [r[3] for r in RECORDS])
        self.assertIsInstance(sent[0], RecordMetadata)
        records = yield consumeAll(reactor, self.broker.bootstrap, "t", broker=self.broker)
        self.assertEqual(records, sorted(expected, key=lambda r: (r.partition, r.offset)))

    @inlineCallbacks
    def test_acks(self):
        """
        With acks 0, 1 and "all" every record is written; acks 0 reports
        no offset.
        """
        yield createTopic(reactor, self.broker.bootstrap, "acks", partitions=1, broker=self.broker)
        offsets = {}
        for acks in (0, 1, "all"):
            producer = self.producer(acks=acks)
            sent = yield gatherResults([producer.send("acks", b"%r-%d" % (acks, i)) for i in range(10)])
            offsets[acks] = [m.offset for m in sent]
            yield producer.close()
        self.assertEqual(offsets[0], [-1] * 10)
        self.assertEqual(offsets[1], list(range(10, 20)))
        self.assertEqual(offsets["all"], list(range(20, 30)))
        records = yield consumeAll(reactor, self.broker.bootstrap, "acks", broker=self.broker)
        self.assertEqual([r.value for r in records],
                         [b"%r-%d" % (acks, i) for acks in (0, 1, "all") for i in range(10)])

    @inlineCallbacks
    def test_orderAndKeyedPartition(self):
        """
        10,000 keyed records land in kafka-python's DefaultPartitioner's
        partition for their key, each partition in the order sent.
        """
        from kafka.partitioner.default import DefaultPartitioner

        yield createTopic(reactor, self.broker.bootstrap, "order", partitions=3, broker=self.broker)
        producer = self.producer(lingerMs=2, batchSize=4096)
        keys = [b"key-%d" % (i % 97,) for i in range(10000)]
        sent = yield gatherResults([producer.send("order", b"%d" % (i,), key=key) for i, key in enumerate(keys)])
        expected = [DefaultPartitioner().partition("order", key, key, None, None, _ThreePartitions())
                    for key in keys]
        self.assertEqual([m.partition for m in sent], expected)
        self.assertEqual(set(expected), {0, 1, 2})
        records = yield consumeAll(reactor, self.broker.bootstrap, "order", broker=self.broker)
        self.assertEqual(len(records), 10000)
        for partition in range(3):
            values = [int(r.value) for r in records if r.partition == partition]
            self.assertEqual(values, [i for i in range(10000) if expected[i] == partition])

    @inlineCallbacks
    def test_codecs(self):
        """
        Batches compressed with every installed codec are read back by
        kafka-python.
        """
        yield createTopic(reactor, self.broker.bootstrap, "codecs", partitions=1, broker=self.broker)
        codecs = ["none", "gzip", "snappy", "lz4", "zstd"]
        for codec in codecs:
            producer = self.producer(compression=codec)
            yield gatherResults([producer.send("codecs", (codec.encode() + b" ") * (i + 1)) for i in range(50)])
            yield producer.close()
        records = yield consumeAll(reactor, self.broker.bootstrap, "codecs", broker=self.broker)
        self.assertEqual([r.value for r in records],
                         [(codec.encode() + b" ") * (i + 1) for codec in codecs for i in range(50)])

    @inlineCallbacks
    def test_unknownTopic(self):
        """
        A record for a topic the cluster says does not exist fails with
        L{UnknownTopicOrPartitionError}, well before its delivery timeout.
        """
        producer = self.producer(deliveryTimeout=60.0)
        start = reactor.seconds()
        yield self.assertFailure(producer.send("missing", b"v"), UnknownTopicOrPartitionError)
        self.assertLess(reactor.seconds() - start, 10.0)

    def test_recordOverMaxRequestSize(self):
        """
        A record over maxRequestSize fails at once, before any connection
        is made, with L{MessageTooLargeError}.
        """
        producer = self.producer(maxRequestSize=1000)
        self.failureResultOf(producer.send("t", b"x" * 1000), MessageTooLargeError)
        self.assertEqual(producer._cluster._connections, {})


class NoBrokerTests(TestCase):
    """
    A producer with no broker to reach.
    """

    servers = True

    @inlineCallbacks
    def test_failsAfterDeliveryTimeout(self):
        """
        With no broker reachable a record fails with
        L{DeliveryTimeoutError} once its delivery timeout passed, not
        before.
        """
        producer = Kafka.newProducer("tcp://127.0.0.1:%d" % (freePort(),), reactor=reactor,
                                     deliveryTimeout=0.5, retryBackoff=0.05)
        start = reactor.seconds()
        error = yield self.assertFailure(producer.send("t", b"v"), DeliveryTimeoutError)
        self.assertGreaterEqual(reactor.seconds() - start, 0.5)
        self.assertFalse(error.mayHaveReachedServer)
        yield producer.close()

    @inlineCallbacks
    def test_bufferMemoryBounded(self):
        """
        A record that does not fit in bufferMemory waits maxBlock, then
        fails with L{BufferExhaustedError}, not sent; one that fits waits
        for its delivery timeout.
        """
        producer = Kafka.newProducer("tcp://127.0.0.1:%d" % (freePort(),), reactor=reactor,
                                     bufferMemory=100, maxBlock=0.2, deliveryTimeout=1.0, retryBackoff=0.05)
        first = producer.send("t", b"x" * 60)
        start = reactor.seconds()
        error = yield self.assertFailure(producer.send("t", b"y" * 60), BufferExhaustedError)
        self.assertGreaterEqual(reactor.seconds() - start, 0.2)
        self.assertFalse(error.mayHaveReachedServer)
        self.assertNoResult(first)
        yield self.assertFailure(first, DeliveryTimeoutError)
        yield producer.close()

    def test_sendAfterClose(self):
        """
        A record sent after close fails with L{ClientClosedError}.
        """
        producer = Kafka.newProducer("tcp://127.0.0.1:%d" % (freePort(),), reactor=reactor)
        self.successResultOf(producer.close())
        self.failureResultOf(producer.send("t", b"v"), ClientClosedError)


class BrokenConnectionTests(TestCase):
    """
    An idempotent producer whose connection breaks mid-stream.
    """

    servers = True
    timeout = 180

    @inlineCallbacks
    def test_exactlyOnceAcrossCuts(self):
        """
        20,000 records sent while the connection to the broker is cut
        three times are all acknowledged, and each is in the log exactly
        once, in order.
        """
        broker = TansuBroker(reactor, self.addCleanup)
        proxy = ObservingProxy("127.0.0.1", broker.port, lambda: LengthPrefixDecoder(1 << 30), reactor)
        yield proxy.listen()
        self.addCleanup(proxy.close)
        broker.advertisedPort = proxy.port
        yield broker.start()
        yield createTopic(reactor, broker.bootstrap, "cut", partitions=2, broker=broker)
        producer = Kafka.newProducer("tcp://127.0.0.1:%d" % (proxy.port,), reactor=reactor,
                                     lingerMs=1, batchSize=1024, requestTimeout=5.0, retryBackoff=0.05)
        self.addCleanup(producer.close)
        sent = [producer.send("cut", b"%d" % (i,), key=b"%d" % (i % 10,)) for i in range(N)]
        for responses in (5, 15, 25):
            yield proxy.waitUntil(lambda p: len(p.fromServer()) >= responses)
            for link in proxy.links:
                link.abort()
        results = yield gatherResults(sent)
        self.assertEqual(len(results), N)
        self.assertGreaterEqual(producer._producerId, 0)
        records = yield consumeAll(reactor, broker.bootstrap, "cut", broker=broker)
        values = [int(r.value) for r in records]
        self.assertEqual(sorted(values), list(range(N)))
        for partition in (0, 1):
            mine = [int(r.value) for r in records if r.partition == partition]
            self.assertEqual(mine, sorted(mine))
