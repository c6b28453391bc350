"""
The Kafka test infrastructure itself (C{tests._kafka}): a Tansu broker
started on a free port, topics created and read back with kafka-python,
and a broker killed and started again on the same port.
"""

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThreadPool
from twisted.trial.unittest import TestCase

from tests._kafka import ConsumedRecord, KafkaHelperError, TansuBroker, consumeAll, createTopic
from tests._twistd import ProcessExitedEarly

# Producer time, milliseconds since the epoch: 2023-11-14T22:13:20Z.
T0 = 1700000000000

# (key, value, headers, partition): explicit partitions, so that every
# partition of a 3-partition topic gets records and one gets none of the
# keyless ones.
RECORDS = [
    (b"k0", b"v0", [("h", b"1")], 0),
    (None, b"no key", [], 1),
    (b"k2", b"", [("a", b""), ("a", b"again"), ("\u00e9t\u00e9", bytes(range(256)))], 2),
    (b"k3", None, [], 0),
    (b"", b"x" * 10000, [("big", b"y" * 1000)], 2),
    (b"k5", bytes(range(256)), [], 1),
]


def produceBlocking(bootstrap, topic, records, timestamp):
    """
    Send C{records} with kafka-python's producer, record I with timestamp
    C{timestamp + I}.

    @return: the L{ConsumedRecord}s expected back, from the producer's
        acknowledgements.
    """
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, request_timeout_ms=10000)
    try:
        sent = [
            producer.send(topic, value=value, key=key, headers=headers, partition=partition, timestamp_ms=timestamp + i)
            for i, (key, value, headers, partition) in enumerate(records)
        ]
        producer.flush(timeout=10)
        expected = []
        for i, ((key, value, headers, partition), future) in enumerate(zip(records, sent)):
            meta = future.get(timeout=0)
            expected.append(
                ConsumedRecord(topic, meta.partition, meta.offset, timestamp + i, 0, key, value, tuple(headers))
            )
        return expected
    finally:
        producer.close(timeout=5)


def produce(broker, topic, records, timestamp=T0):
    """
    L{produceBlocking} in the reactor's thread pool.
    """
    return deferToThreadPool(
        reactor, reactor.getThreadPool(), produceBlocking, broker.bootstrap, topic, records, timestamp
    )


class TansuBrokerTests(TestCase):
    """
    L{TansuBroker}, L{createTopic} and L{consumeAll} against a real broker.
    """

    timeout = 60

    @inlineCallbacks
    def setUp(self):
        self.broker = TansuBroker(reactor, self.addCleanup)
        yield self.broker.start()

    @inlineCallbacks
    def test_roundTrip(self):
        """
        Keys, values, headers, timestamps and partitions written by kafka-python read back exactly.
        """
        yield createTopic(reactor, self.broker.bootstrap, "smoke", partitions=3, broker=self.broker)
        expected = yield produce(self.broker, "smoke", RECORDS)
        consumed = yield consumeAll(reactor, self.broker.bootstrap, "smoke", broker=self.broker)
        self.assertEqual(sorted(expected, key=lambda r: (r.partition, r.offset)), consumed, self.broker.log)
        self.assertEqual({0, 1, 2}, {r.partition for r in consumed})

    @inlineCallbacks
    def test_manyRecords(self):
        """
        Every record is read, past Tansu's "latest" offset, which is the last batch's base offset plus one.
        """
        yield createTopic(reactor, self.broker.bootstrap, "many", partitions=1, broker=self.broker)
        records = [(None, b"%d" % (i,), [], 0) for i in range(600)]
        # The last batch starts at offset 499: Tansu's "latest" is 500, which
        # is also where kafka-python's first poll (500 records) stops.
        yield produce(self.broker, "many", records[:499])
        yield produce(self.broker, "many", records[499:])
        consumed = yield consumeAll(reactor, self.broker.bootstrap, "many", broker=self.broker)
        self.assertEqual([b"%d" % (i,) for i in range(600)], [r.value for r in consumed])
        self.assertEqual(list(range(600)), [r.offset for r in consumed])

    @inlineCallbacks
    def test_emptyTopic(self):
        """
        A topic with no record reads back as no record, at once.
        """
        yield createTopic(reactor, self.broker.bootstrap, "empty", partitions=2, broker=self.broker)
        consumed = yield consumeAll(reactor, self.broker.bootstrap, "empty", timeout=10, broker=self.broker)
        self.assertEqual([], consumed)

    @inlineCallbacks
    def test_killAndRestart(self):
        """
        After SIGKILL the broker starts again on the same port, empty.
        """
        port = self.broker.port
        yield createTopic(reactor, self.broker.bootstrap, "before", partitions=1, broker=self.broker)
        yield produce(self.broker, "before", RECORDS[:1])
        result = yield self.broker.kill()
        self.assertEqual(9, result.signal)
        yield self.broker.start()
        self.assertEqual(port, self.broker.port)
        self.assertIn("---- tansu on port %d, run 2 " % (port,), self.broker.log)
        yield createTopic(reactor, self.broker.bootstrap, "after", partitions=1, broker=self.broker)
        expected = yield produce(self.broker, "after", [(b"k", b"v", [], 0), (None, b"w", [("h", b"")], 0)])
        consumed = yield consumeAll(reactor, self.broker.bootstrap, "after", broker=self.broker)
        self.assertEqual(expected, consumed)
        # Memory storage: the first run's topic is gone.
        yield self.assertFailure(
            consumeAll(reactor, self.broker.bootstrap, "before", timeout=3, broker=self.broker), KafkaHelperError
        )

    @inlineCallbacks
    def test_portTaken(self):
        """
        A broker on a port already in use fails to start, at once and with its output.
        """
        other = TansuBroker(reactor, self.addCleanup, port=self.broker.port)
        error = yield self.assertFailure(other.start(), ProcessExitedEarly)
        self.assertIn("AddrInUse", str(error))
        self.assertIn(self.broker.bootstrap, str(error))
        self.assertEqual(1, other.log.count("---- tansu on port"))
