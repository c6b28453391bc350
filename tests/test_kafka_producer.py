"""
Tests for the Kafka producer against a real broker (Tansu), read back with
kafka-python, an independent client.
"""

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from tests._kafka import ConsumedRecord, TansuBroker, consumeAll, createTopic
from txscales.kafka import Kafka, RecordMetadata

T0 = 1700000000000

RECORDS = [
    (b"k0", b"v0", [("h", b"1")], 0),
    (None, b"no key", [], 1),
    (b"k2", b"", [("a", b""), ("a", b"again"), ("\u00e9t\u00e9", bytes(range(256)))], 2),
    (b"k3", None, [], 0),
    (b"", b"x" * 10000, [("big", b"y" * 1000)], 2),
    (b"k5", bytes(range(256)), [], 1),
]


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
