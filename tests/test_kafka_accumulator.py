"""
Tests for the Kafka producer's accumulator and waiting queues, with a
stand-in cluster and a L{task.Clock}.
"""

import struct

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from txscales.kafka import BufferExhaustedError
from txscales.kafka._producer import KafkaProducer
from txscales.kafka._records import decodeRecordBatches


class _Partition:
    partition = 0
    leader = 0
    errorCode = 0


class _Topic:
    errorCode = 0
    partitions = [_Partition()]


class _Connection:
    """
    Keeps each Produce request until L{answer}.
    """

    def __init__(self):
        self.requests = []
        self.offset = 0

    def version(self, apiKey):
        return 7

    def request(self, apiKey, version, body):
        d = Deferred()
        self.requests.append((d, body))
        return d

    def answer(self):
        """
        Acknowledge every request so far.

        @return: the values of the records they carried, in order.
        """
        requests, self.requests = self.requests, []
        values = []
        for d, body in requests:
            # One topic ("t"), one partition: the batch follows 27 bytes.
            batches = decodeRecordBatches(body[27:])
            values += [r.value for b in batches for r in b.records]
            frame = (struct.pack(">ii", 1, 1) + struct.pack(">h", 1) + b"t" + struct.pack(">i", 1)
                     + struct.pack(">ihqqq", 0, 0, self.offset, -1, 0) + struct.pack(">i", 0))
            self.offset += sum(len(b.records) for b in batches)
            d.callback(frame)
        return values


class _Cluster:
    """
    A cluster of one broker whose metadata is known once L{learn} is called.
    """

    def __init__(self):
        self.topics = {}
        self.brokers = {0: ("127.0.0.1", 9092)}
        self.connection = _Connection()
        self.lookups = []

    def learn(self):
        self.topics["t"] = _Topic()
        lookups, self.lookups = self.lookups, []
        for d in lookups:
            d.callback(self.topics["t"])

    def topic(self, name):
        d = Deferred()
        self.lookups.append(d)
        return d

    def cached(self, name, now):
        return self.topics.get(name)

    def leaderOf(self, topic, partition):
        return 0

    def connectionToNode(self, node):
        return succeed(self.connection)

    def invalidate(self):
        pass

    def refresh(self):
        return succeed(None)

    def close(self):
        pass


class WaitingTests(TestCase):
    """
    Records that cannot go straight into a batch.
    """

    def setUp(self):
        self.clock = Clock()
        self.cluster = _Cluster()

    def producer(self, **options):
        return KafkaProducer(self.cluster, self.clock, idempotence=False, **options)

    def finish(self, producer):
        """
        Answer every request until all is settled; no timer is left.
        """
        done = producer.close()
        values = []
        while not done.called:
            self.clock.advance(0.01)
            values += self.cluster.connection.answer()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        return values

    def test_metadataWaitSharesOneLookupAndTimer(self):
        """
        A thousand records sent before their topic's metadata is known make
        one metadata lookup and one timer, then are written in the order
        sent.
        """
        producer = self.producer()
        sent = [producer.send("t", b"%d" % (i,)) for i in range(1000)]
        self.assertEqual(len(self.cluster.lookups), 1)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.cluster.learn()
        values = self.finish(producer)
        self.assertEqual(values, [b"%d" % (i,) for i in range(1000)])
        self.assertEqual([self.successResultOf(d).offset for d in sent], list(range(1000)))

    def test_memoryWaitKeepsOrder(self):
        """
        Records that wait for bufferMemory are written after those sent
        before them and before those sent after them, and none waits with a
        timer of its own.
        """
        self.cluster.learn()
        producer = self.producer(bufferMemory=2000, batchSize=1000)
        sent = [producer.send("t", b"%04d" % (i,)) for i in range(200)]
        self.assertLessEqual(len(self.clock.getDelayedCalls()), 4)
        values = self.finish(producer)
        self.assertEqual(values, [b"%04d" % (i,) for i in range(200)])
        self.assertEqual([self.successResultOf(d).offset for d in sent], list(range(200)))

    def test_memoryWaitBounded(self):
        """
        A record that waited maxBlock for bufferMemory fails with
        L{BufferExhaustedError}; those before it are written.
        """
        self.cluster.learn()
        producer = self.producer(bufferMemory=200, maxBlock=1.0)
        first = producer.send("t", b"x" * 100)
        second = producer.send("t", b"y" * 100)
        self.clock.advance(1.0)
        self.failureResultOf(second, BufferExhaustedError)
        self.assertEqual(self.finish(producer), [b"x" * 100])
        self.assertEqual(self.successResultOf(first).offset, 0)
