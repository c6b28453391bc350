"""
Clock-driven tests of the Kafka producer's accumulator and sender, against
a fake cluster (L{tests._kafkafake}) whose every request the test answers.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests._kafkafake import FakeCluster
from txscales.errors import ClientClosedError, ConnectionLostError
from txscales.kafka import (
    BufferExhaustedError,
    DeliveryTimeoutError,
    Kafka,
    MessageTooLargeError,
    NotEnoughReplicasError,
    RecordMetadata,
    UnsupportedCodecError,
)
from txscales.kafka import _codecs
from txscales.kafka._partitioners import murmur2Partition
from txscales.kafka._producer import KafkaProducer

T0 = 1700000000000


class SenderTestsMixin:
    """
    A producer over a L{FakeCluster} of topic C{t}: partitions 0 and 1 led
    by broker 0, partition 2 by broker 1.
    """

    def setUp(self):
        self.clock = Clock()
        self.cluster = FakeCluster(self.clock, {"t": [0, 0, 1, 0]})

    def producer(self, **options):
        options.setdefault("idempotence", False)
        options.setdefault("lingerMs", 0)
        options.setdefault("retryBackoff", 0.1)
        return KafkaProducer(self.cluster, self.clock, **options)

    def send(self, producer, value, partition=0, **kwargs):
        return producer.send("t", value, partition=partition, timestamp=T0, **kwargs)

    def assertNoDelayedCalls(self):
        """
        Nothing is left on the clock once the due calls ran.
        """
        self.clock.advance(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class AccumulatorTests(SenderTestsMixin, SynchronousTestCase):
    """
    Batching: C{lingerMs} and C{batchSize}.
    """

    def test_lingerWaits(self):
        """
        A batch waits C{lingerMs} for more records before it is sent, and
        carries the records sent meanwhile.
        """
        producer = self.producer(lingerMs=5)
        first = self.send(producer, b"a")
        self.clock.advance(0.004)
        second = self.send(producer, b"b")
        self.assertEqual(self.cluster.produces(), [])
        self.clock.advance(0.001)
        [request] = self.cluster.produces()
        self.assertEqual(request.values(("t", 0)), [b"a", b"b"])
        request.answer(baseOffsets={("t", 0): 7})
        self.assertEqual(self.successResultOf(first), RecordMetadata("t", 0, 7, T0))
        self.assertEqual(self.successResultOf(second), RecordMetadata("t", 0, 8, T0))
        self.assertNoDelayedCalls()

    def test_fullBatchAtOnce(self):
        """
        A batch that reached C{batchSize} is sent without waiting for
        C{lingerMs}; the next record starts a new batch.
        """
        producer = self.producer(lingerMs=10000, batchSize=250)
        sent = [self.send(producer, b"x" * 60) for _ in range(3)]
        self.clock.advance(0)
        [request] = self.cluster.produces()
        self.assertEqual(len(request.values(("t", 0))), 2)
        request.answer()
        self.clock.advance(0)
        self.assertEqual(len(self.cluster.produces()), 1)
        self.assertNoResult(sent[2])
        closed = producer.close()
        self.cluster.produces()[1].answer()
        self.successResultOf(sent[2])
        self.successResultOf(closed)
        self.assertNoDelayedCalls()


class InFlightTests(SenderTestsMixin, SynchronousTestCase):
    """
    What is in flight: C{maxInFlight} Produce requests per broker, and,
    without idempotence, one batch per partition.
    """

    def test_nextBatchBeforeDeferreds(self):
        """
        A response sends the partition's next batch before the records it
        acknowledged fire their Deferreds.
        """
        producer = self.producer(batchSize=250)
        first = self.send(producer, b"x" * 150)
        second = self.send(producer, b"y" * 150)
        self.clock.advance(0)
        [request] = self.cluster.produces()
        seen = []
        first.addCallback(lambda _: seen.append(len(self.cluster.produces())))
        request.answer()
        self.assertEqual(seen, [2])
        self.cluster.produces()[1].answer()
        self.successResultOf(second)
        self.assertNoDelayedCalls()

    def test_maxInFlightPerBroker(self):
        """
        No more than C{maxInFlight} Produce requests are in flight to one
        broker, each broker counted apart; the next leaves when one is
        answered.
        """
        producer = self.producer(maxInFlight=2)
        results = []
        for partition in (0, 1, 3, 2):
            results.append(self.send(producer, b"%d" % (partition,), partition=partition))
            self.clock.advance(0)
        self.assertEqual([(r.node, list(r.batches)) for r in self.cluster.pending()],
                         [(0, [("t", 0)]), (0, [("t", 1)]), (1, [("t", 2)])])
        self.cluster.pending()[0].answer()
        self.clock.advance(0)
        self.assertEqual([(r.node, list(r.batches)) for r in self.cluster.pending()],
                         [(0, [("t", 1)]), (1, [("t", 2)]), (0, [("t", 3)])])
        for request in self.cluster.pending():
            request.answer()
        self.assertEqual([self.successResultOf(d).partition for d in results], [0, 1, 3, 2])
        self.assertNoDelayedCalls()

    def test_oneBatchPerPartition(self):
        """
        Without idempotence, a partition's next batch waits until its batch
        in flight is answered, retries included, so the partition's order
        holds.
        """
        producer = self.producer()
        first = self.send(producer, b"1")
        self.clock.advance(0)
        second = self.send(producer, b"2")
        self.clock.advance(0)
        [request] = self.cluster.pending()
        request.answer(errors={("t", 0): NotEnoughReplicasError.code})
        self.clock.advance(0.1)
        [retry] = self.cluster.pending()
        self.assertEqual(retry.values(("t", 0)), [b"1"])
        retry.answer()
        self.clock.advance(0)
        [after] = self.cluster.pending()
        self.assertEqual(after.values(("t", 0)), [b"2"])
        after.answer(baseOffsets={("t", 0): 1})
        self.assertEqual([self.successResultOf(d).offset for d in (first, second)], [0, 1])
        self.assertNoDelayedCalls()


class RetryTests(SenderTestsMixin, SynchronousTestCase):
    """
    Retries go to the partition's leader after a metadata refresh.
    """

    def test_notLeaderRetriesToNewLeader(self):
        """
        After NOT_LEADER_OR_FOLLOWER the producer refreshes its metadata and
        retries the batch at the new leader.
        """
        producer = self.producer()
        d = self.send(producer, b"v")
        self.clock.advance(0)
        [request] = self.cluster.pending()
        self.assertEqual(request.node, 0)
        self.cluster.leaders[("t", 0)] = 1
        request.answer(errors={("t", 0): 6})
        self.clock.advance(0.1)
        [retry] = self.cluster.pending()
        self.assertEqual((retry.node, retry.values(("t", 0))), (1, [b"v"]))
        retry.answer()
        self.assertEqual(self.successResultOf(d).partition, 0)
        self.assertNoDelayedCalls()

    def test_lostConnectionRetriesToNewLeader(self):
        """
        When the connection to the leader is lost mid-request the producer
        refreshes its metadata and retries at the new leader.
        """
        producer = self.producer()
        d = self.send(producer, b"v")
        self.clock.advance(0)
        [request] = self.cluster.pending()
        self.cluster.leaders[("t", 0)] = 1
        request.fail(ConnectionLostError())
        self.clock.advance(0.1)
        [retry] = self.cluster.pending()
        self.assertEqual(retry.node, 1)
        retry.answer()
        self.successResultOf(d)
        self.assertNoDelayedCalls()


class DeliveryTimeoutTests(SenderTestsMixin, SynchronousTestCase):
    """
    C{deliveryTimeout} bounds the whole life of a record.
    """

    def test_waitingForMetadata(self):
        """
        A record whose topic's metadata cannot be fetched fails with
        L{DeliveryTimeoutError} at its delivery timeout, not before; it was
        not written.
        """
        self.cluster.reachable = False
        producer = self.producer(deliveryTimeout=2.0)
        d = self.send(producer, b"v")
        self.clock.pump([0.1] * 19)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        error = self.failureResultOf(d, DeliveryTimeoutError).value
        self.assertFalse(error.written)
        self.assertFalse(error.mayHaveReachedServer)
        self.assertNoDelayedCalls()

    def test_whileRetrying(self):
        """
        A record retried after retriable errors fails with
        L{DeliveryTimeoutError} at its delivery timeout, saying it may have
        been written.
        """
        producer = self.producer(deliveryTimeout=1.0, retryBackoff=0.25)
        d = self.send(producer, b"v")
        self.clock.advance(0)
        attempts = []
        failedAt = []
        d.addErrback(lambda f: failedAt.append(self.clock.seconds()) or f)
        while not failedAt:
            if self.cluster.pending():
                attempts.append(self.clock.seconds())
                self.clock.advance(0.125)
                self.cluster.pending()[0].answer(errors={("t", 0): NotEnoughReplicasError.code})
            else:
                self.clock.advance(0.125)
        self.assertEqual((attempts, failedAt), ([0.0, 0.375, 0.75], [1.0]))
        error = self.failureResultOf(d, DeliveryTimeoutError).value
        self.assertTrue(error.written)
        self.assertIn("NOT_ENOUGH_REPLICAS", str(error))
        self.clock.advance(0.125)
        self.assertEqual(self.cluster.pending(), [])
        self.assertNoDelayedCalls()

    def test_noBrokerReachable(self):
        """
        When no broker accepts a connection a record fails with
        L{DeliveryTimeoutError} after its delivery timeout, not before.
        """
        producer = self.producer(deliveryTimeout=3.0)
        self.send(producer, b"warm")
        self.clock.advance(0)
        self.cluster.pending()[0].answer()
        self.cluster.reachable = False
        d = self.send(producer, b"v")
        self.clock.pump([0.1] * 29)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d, DeliveryTimeoutError)
        self.assertNoDelayedCalls()


class BufferMemoryTests(SenderTestsMixin, SynchronousTestCase):
    """
    C{bufferMemory} and C{maxBlock}: backpressure.
    """

    def test_waitsForRoom(self):
        """
        A record that does not fit waits until acknowledged records make
        room.
        """
        producer = self.producer(bufferMemory=300, maxBlock=1.0)
        sent = [self.send(producer, b"x" * 100) for _ in range(3)]
        self.clock.advance(0)
        [request] = self.cluster.pending()
        self.assertEqual(len(request.values(("t", 0))), 2)
        self.clock.advance(0.5)
        request.answer()
        self.clock.advance(0)
        [second] = self.cluster.pending()
        second.answer()
        for d in sent:
            self.successResultOf(d)
        self.assertNoDelayedCalls()

    def test_failsAfterMaxBlock(self):
        """
        A record that finds no room within C{maxBlock} fails with
        L{BufferExhaustedError}, not sent; the others are unaffected.
        """
        producer = self.producer(bufferMemory=300, maxBlock=1.0)
        sent = [self.send(producer, b"x" * 100) for _ in range(3)]
        self.clock.advance(0)
        self.clock.advance(0.999)
        self.assertNoResult(sent[2])
        self.clock.advance(0.001)
        error = self.failureResultOf(sent[2], BufferExhaustedError).value
        self.assertFalse(error.mayHaveReachedServer)
        self.cluster.pending()[0].answer()
        self.successResultOf(sent[0])
        self.assertEqual(len(self.cluster.produces()), 1)
        self.assertNoDelayedCalls()


class AcksTests(SenderTestsMixin, SynchronousTestCase):
    """
    C{acks=0}.
    """

    def test_acksZero(self):
        """
        With acks 0 the Produce request asks for no answer and the record
        succeeds once written, its offset unknown (-1).
        """
        producer = self.producer(acks=0)
        d = self.send(producer, b"v")
        self.clock.advance(0)
        [request] = self.cluster.produces()
        self.assertEqual((request.acks, request.deferred), (0, None))
        self.assertEqual(self.successResultOf(d), RecordMetadata("t", 0, -1, T0))
        self.assertNoDelayedCalls()


class FlushCloseTests(SenderTestsMixin, SynchronousTestCase):
    """
    C{flush()} and C{close()}.
    """

    def test_flushWaitsForEarlierRecords(self):
        """
        C{flush()} sends at once and fires only when every record sent
        before it settled, not waiting for later ones.
        """
        producer = self.producer(lingerMs=10000)
        first = self.send(producer, b"1", partition=0)
        second = self.send(producer, b"2", partition=2)
        flushed = producer.flush()
        self.clock.advance(0)
        later = self.send(producer, b"3", partition=1)
        toZero, toOne = self.cluster.pending()
        toOne.answer()
        self.successResultOf(second)
        self.assertNoResult(flushed)
        toZero.answer(errors={("t", 0): 87})
        self.failureResultOf(first)
        self.assertIsNone(self.successResultOf(flushed))
        self.assertNoResult(later)
        closed = producer.close()
        self.clock.advance(0)
        self.cluster.pending()[0].answer()
        self.successResultOf(later)
        self.successResultOf(closed)
        self.assertNoDelayedCalls()

    def test_close(self):
        """
        C{close()} sends what is buffered, fires once it settled, then
        closes the connections; a later send fails with
        L{ClientClosedError}.
        """
        producer = self.producer(lingerMs=10000)
        d = self.send(producer, b"v")
        closed = producer.close()
        self.clock.advance(0)
        self.failureResultOf(self.send(producer, b"late"), ClientClosedError)
        self.assertNoResult(closed)
        self.assertFalse(self.cluster.closed)
        self.cluster.pending()[0].answer()
        self.successResultOf(d)
        self.successResultOf(closed)
        self.assertTrue(self.cluster.closed)
        self.assertNoDelayedCalls()


class TypedErrorTests(SenderTestsMixin, SynchronousTestCase):
    """
    The typed errors a send or a build fails with before anything is sent.
    """

    def test_recordTooLarge(self):
        """
        A record over C{maxRequestSize} fails at once with
        L{MessageTooLargeError}, before any request or timer.
        """
        producer = self.producer(maxRequestSize=1000)
        error = self.failureResultOf(self.send(producer, b"x" * 1000), MessageTooLargeError).value
        self.assertFalse(error.mayHaveReachedServer)
        self.assertEqual((self.cluster.requests, self.cluster.refreshes), ([], 0))
        self.assertNoDelayedCalls()
        self.successResultOf(producer.flush())

    def test_codecMissingAtBuild(self):
        """
        Asking for a codec whose library is missing fails when the producer
        is built, with L{UnsupportedCodecError}.
        """

        def missing(name):
            raise ImportError(name)

        self.patch(_codecs, "import_module", missing)
        for codec in ("snappy", "lz4", "zstd"):
            error = self.assertRaises(UnsupportedCodecError, Kafka.newProducer, "tcp://127.0.0.1:9092",
                                      compression=codec, reactor=self.clock)
            self.assertEqual(error.codec, codec)
            self.assertRaises(UnsupportedCodecError, self.producer, compression=codec)
        self.assertNoDelayedCalls()


class RecordMetadataTests(SynchronousTestCase):
    """
    L{RecordMetadata} is an immutable value.
    """

    def test_value(self) -> None:
        """
        It has its four attributes, equals and hashes as another with the
        same ones, never equals a plain tuple, and shows its fields.
        """
        metadata = RecordMetadata("t", 1, 7, T0)
        self.assertEqual((metadata.topic, metadata.partition, metadata.offset, metadata.timestamp), ("t", 1, 7, T0))
        self.assertEqual(metadata, RecordMetadata("t", 1, 7, T0))
        self.assertEqual(hash(metadata), hash(RecordMetadata("t", 1, 7, T0)))
        self.assertNotEqual(metadata, RecordMetadata("t", 1, 8, T0))
        self.assertNotEqual(metadata, ("t", 1, 7, T0))
        self.assertEqual(repr(metadata), "RecordMetadata(topic='t', partition=1, offset=7, timestamp=%d)" % (T0,))
        self.assertRaises(AttributeError, setattr, metadata, "offset", 8)


class StickyRoutingTests(SenderTestsMixin, SynchronousTestCase):
    """
    Records without a key, partition or headers stick to their topic's open
    batch, as the default partitioner says.
    """

    def test_stickyUntilBatchFull(self):
        """
        Records without a key share a partition until its batch is full:
        the record that finds it full opens the partition's next batch,
        and the ones after it go to another partition.  A keyed record, one
        with headers and one for a given partition in between go where
        they say, and move nothing.
        """
        producer = self.producer(batchSize=400)
        unkeyed = [producer.send("t", b"x" * 100, timestamp=T0) for _ in range(2)]
        keyed = producer.send("t", b"k", key=b"key", timestamp=T0)
        given = producer.send("t", b"g", partition=3, timestamp=T0)
        withHeaders = producer.send("t", b"h", headers=[("h", b"1")], timestamp=T0)
        unkeyed += [producer.send("t", b"x" * 100, timestamp=T0) for _ in range(3)]
        self.clock.advance(0)
        while self.cluster.pending():
            for request in self.cluster.pending():
                request.answer()
            self.clock.advance(0)
        partitions = [self.successResultOf(d).partition for d in unkeyed]
        self.assertEqual(partitions[:3], [partitions[0]] * 3)
        self.assertEqual(partitions[3], partitions[4])
        self.assertNotEqual(partitions[2], partitions[3])
        self.assertEqual(self.successResultOf(keyed).partition, murmur2Partition(b"key", 4))
        self.assertEqual(self.successResultOf(given).partition, 3)
        self.assertIn(self.successResultOf(withHeaders).partition, range(4))
        self.assertNoDelayedCalls()

    def test_newMetadataRoutesAgain(self):
        """
        Once the topic's metadata changes, the next record without a key is
        routed again: a partition the topic no longer has gets no record.
        """
        producer = self.producer()
        first = producer.send("t", b"a", timestamp=T0)
        [sticky] = producer._open
        leaders = self.cluster.leaders
        self.cluster.leaders = {tp: node for tp, node in leaders.items() if tp != sticky}
        self.cluster.refresh()
        second = producer.send("t", b"b", timestamp=T0)
        self.cluster.leaders = leaders
        self.cluster.refresh()
        self.clock.advance(0)
        for request in self.cluster.pending():
            request.answer()
        self.assertEqual(self.successResultOf(first).partition, sticky[1])
        self.assertNotEqual(self.successResultOf(second).partition, sticky[1])
        self.assertNoDelayedCalls()
