"""
Clock-driven tests of the idempotent Kafka producer's producer id, epoch
and sequence numbers, against a fake cluster (L{tests._kafkafake}): the
exact values each request carries, and the epoch bump after the broker
lost the producer's state.
"""

from collections import Counter

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests._kafkafake import FakeCluster
from txscales.errors import ConnectionLostError
from txscales.kafka import (
    DeliveryTimeoutError,
    InvalidProducerEpochError,
    KafkaError,
    OutOfOrderSequenceError,
    UnknownProducerIdError,
)
from txscales.kafka._producer import KafkaProducer

T0 = 1700000000000
P0, P1, P2 = ("t", 0), ("t", 1), ("t", 2)


class IdempotentProducerMixin:
    """
    An idempotent producer over a L{FakeCluster} of topic C{t}: partitions
    0 and 1 led by broker 0, partition 2 by broker 1.
    """

    def setUp(self):
        self.clock = Clock()
        self.cluster = FakeCluster(self.clock, {"t": [0, 0, 1]})
        self.producer = KafkaProducer(self.cluster, self.clock, idempotence=True, lingerMs=0,
                                      retryBackoff=0.1, deliveryTimeout=10.0)
        self.results = {}
        self.written = Counter()

    def send(self, partition, *values, drain=True):
        """
        Send C{values} to C{partition}, then let the producer drain unless
        C{drain} is false.
        """
        for value in values:
            self.results[value] = self.producer.send("t", value, partition=partition, timestamp=T0)
        if drain:
            self.clock.advance(0)

    def initProducerId(self, producerId=1000, epoch=0, expected=(-1, -1)):
        """
        Answer the pending InitProducerId request, checking the id and epoch
        it gave.
        """
        [request] = [r for r in self.cluster.pending() if not hasattr(r, "batches")]
        self.assertEqual((request.transactionalId, request.producerId, request.producerEpoch),
                         (None,) + expected)
        request.answer(producerId, epoch)
        self.clock.advance(0)

    def produces(self):
        return [r for r in self.cluster.pending() if hasattr(r, "batches")]

    def answer(self, request, errors=None):
        """
        Answer a Produce request, counting in C{written} the values of the
        batches it wrote.
        """
        errors = errors or {}
        for tp, batch in request.batches.items():
            if tp not in errors:
                self.written.update(r.value for r in batch.records)
        request.answer(errors=errors)
        self.clock.advance(0)

    def assertEachWrittenOnce(self):
        """
        Every record sent succeeded, and was in exactly one batch the broker
        wrote.
        """
        for d in self.results.values():
            self.successResultOf(d)
        self.assertEqual(self.written, Counter(list(self.results)))

    def tearDown(self):
        self.clock.advance(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class IdempotenceTests(IdempotentProducerMixin, SynchronousTestCase):
    """
    Producer ids, epochs and sequence numbers.
    """

    def test_sequenceNumbers(self):
        """
        The producer asks InitProducerId (no id, no epoch) before its first
        batch; each partition's sequence numbers start at 0 and advance by
        the records of each batch.
        """
        self.send(0, b"a", b"b")
        self.assertEqual(self.cluster.produces(), [])
        self.initProducerId()
        [first] = self.produces()
        self.assertEqual(first.producerState(P0), (1000, 0, 0))
        self.send(0, b"c", drain=False)
        self.send(1, b"d", drain=False)
        self.answer(first)
        [second] = self.produces()
        self.assertEqual((second.producerState(P0), second.producerState(P1)), ((1000, 0, 2), (1000, 0, 0)))
        self.answer(second)
        self.send(1, b"e")
        [third] = self.produces()
        self.assertEqual(third.producerState(P1), (1000, 0, 1))
        self.answer(third)
        self.assertEachWrittenOnce()

    def bumpAfter(self, code, newProducer):
        """
        The broker refuses partition 0's second batch with C{code} while
        partition 1's batch in the same request is written: one
        InitProducerId with the current id and epoch, then the refused batch
        again under the new id and epoch from sequence 0, and partition 1's
        next batch from sequence 0 too.  Every record is acknowledged once.
        """
        self.send(0, b"a", b"b")
        self.initProducerId()
        self.answer(self.produces()[0])
        self.send(0, b"c", drain=False)
        self.send(1, b"d")
        [request] = self.produces()
        self.assertEqual((request.producerState(P0), request.producerState(P1)), ((1000, 0, 2), (1000, 0, 0)))
        self.answer(request, {P0: code})
        self.assertNoResult(self.results[b"c"])
        self.successResultOf(self.results[b"d"])
        self.send(1, b"e")
        self.assertEqual(self.produces(), [])
        self.clock.advance(0.1)
        self.initProducerId(*newProducer, expected=(1000, 0))
        self.clock.advance(0.1)
        [retry] = self.produces()
        self.assertEqual((retry.values(P0), retry.producerState(P0)), ([b"c"], newProducer + (0,)))
        self.assertEqual((retry.values(P1), retry.producerState(P1)), ([b"e"], newProducer + (0,)))
        self.answer(retry)
        self.send(0, b"f")
        [after] = self.produces()
        self.assertEqual(after.producerState(P0), newProducer + (1,))
        self.answer(after)
        self.assertEachWrittenOnce()

    def test_outOfOrderSequence(self):
        """
        After OUT_OF_ORDER_SEQUENCE_NUMBER the producer bumps its epoch and
        restarts its sequence numbers.
        """
        self.bumpAfter(OutOfOrderSequenceError.code, (1000, 1))

    def test_unknownProducerId(self):
        """
        After UNKNOWN_PRODUCER_ID the producer bumps its epoch and restarts
        its sequence numbers.
        """
        self.bumpAfter(UnknownProducerIdError.code, (1000, 1))

    def test_invalidProducerEpoch(self):
        """
        After INVALID_PRODUCER_EPOCH the producer takes the new producer id
        the broker gives and restarts its sequence numbers.
        """
        self.bumpAfter(InvalidProducerEpochError.code, (2000, 0))

    def test_oneBumpForManyPartitions(self):
        """
        Two partitions refused in one answer make one InitProducerId; both
        batches are retried under the new epoch from sequence 0.
        """
        self.send(0, b"a", drain=False)
        self.send(1, b"b")
        self.initProducerId()
        [request] = self.produces()
        self.answer(request, {P0: UnknownProducerIdError.code, P1: OutOfOrderSequenceError.code})
        self.clock.advance(0.1)
        self.initProducerId(1000, 1, expected=(1000, 0))
        self.clock.advance(0.1)
        [retry] = self.produces()
        self.assertEqual((retry.producerState(P0), retry.producerState(P1)), ((1000, 1, 0), (1000, 1, 0)))
        self.answer(retry)
        self.assertEachWrittenOnce()

    def test_inFlightKeepsOldEpoch(self):
        """
        A batch of another broker in flight during the bump keeps its id,
        epoch and sequence numbers when it is retried, so the broker can
        still recognise a duplicate of it; that partition's next batch
        starts from sequence 0 under the new epoch.
        """
        self.send(2, b"x")
        self.initProducerId()
        self.answer(self.produces()[0])
        self.send(2, b"y", drain=False)
        self.send(0, b"a")
        onOne, onZero = sorted(self.produces(), key=lambda r: -r.node)
        self.assertEqual(onOne.producerState(P2), (1000, 0, 1))
        self.answer(onZero, {P0: UnknownProducerIdError.code})
        self.clock.advance(0.1)
        self.initProducerId(1000, 1, expected=(1000, 0))
        onOne.fail(ConnectionLostError())
        self.clock.advance(0.1)
        retries = sorted(self.produces(), key=lambda r: r.node)
        self.assertEqual([(r.node, list(r.batches)) for r in retries], [(0, [P0]), (1, [P2])])
        self.assertEqual((retries[0].producerState(P0), retries[1].producerState(P2)),
                         ((1000, 1, 0), (1000, 0, 1)))
        self.answer(retries[0])
        self.answer(retries[1])
        self.send(2, b"z")
        [after] = self.produces()
        self.assertEqual(after.producerState(P2), (1000, 1, 0))
        self.answer(after)
        self.assertEachWrittenOnce()

    def test_bumpRefusedNewId(self):
        """
        When the broker refuses to bump the epoch of the current id (Tansu
        answers UNKNOWN_SERVER_ERROR) the producer asks for a new id, and
        retries the batch under it from sequence 0.
        """
        self.send(0, b"a")
        self.initProducerId()
        self.answer(self.produces()[0], {P0: UnknownProducerIdError.code})
        self.clock.advance(0.1)
        [bump] = self.cluster.pending()
        self.assertEqual((bump.producerId, bump.producerEpoch), (1000, 0))
        bump.answer(-1, -1, errorCode=-1)
        self.initProducerId(2000, 0)
        self.clock.advance(0.1)
        [retry] = self.produces()
        self.assertEqual(retry.producerState(P0), (2000, 0, 0))
        self.answer(retry)
        self.assertEachWrittenOnce()

    def test_bumpRefused(self):
        """
        When neither a bump nor a new id is given, for an error that is not
        retriable, the waiting records fail with that typed error; a batch
        of another partition in flight meanwhile is still answered.
        """
        self.send(2, b"x")
        self.initProducerId()
        self.answer(self.produces()[0])
        self.send(2, b"y", drain=False)
        self.send(0, b"a")
        onOne, onZero = sorted(self.produces(), key=lambda r: -r.node)
        self.answer(onZero, {P0: UnknownProducerIdError.code})
        self.clock.advance(0.1)
        [bump] = self.cluster.pending()[1:]
        bump.answer(-1, -1, errorCode=31)
        self.clock.advance(0)
        [request] = self.cluster.pending()[1:]
        self.assertEqual((request.producerId, request.producerEpoch), (-1, -1))
        request.answer(-1, -1, errorCode=31)
        error = self.failureResultOf(self.results[b"a"], KafkaError).value
        self.assertEqual((error.code, error.name), (31, "CLUSTER_AUTHORIZATION_FAILED"))
        self.assertFalse(error.mayHaveBeenWritten)
        self.answer(onOne)
        self.successResultOf(self.results[b"y"])

    def test_bumpRetried(self):
        """
        A bump refused with a retriable error is asked again; a record
        whose delivery timeout passes meanwhile fails with
        L{DeliveryTimeoutError}.
        """
        self.send(0, b"a")
        self.initProducerId()
        self.answer(self.produces()[0], {P0: UnknownProducerIdError.code})
        asked = 0
        while not self.results[b"a"].called:
            self.clock.advance(0.1)
            for request in self.cluster.pending():
                asked += 1
                request.answer(-1, -1, errorCode=15)
        self.assertGreater(asked, 50)
        error = self.failureResultOf(self.results[b"a"], DeliveryTimeoutError).value
        self.assertIn("COORDINATOR_NOT_AVAILABLE", str(error))
        self.clock.advance(0.1)


class PipelinedTests(IdempotentProducerMixin, SynchronousTestCase):
    """
    An idempotent producer sends up to C{maxInFlight} batches of a
    partition at once, and after a failure sends them again in order.
    """

    def pipeline(self, *values):
        """
        Send each of C{values} to partition 0 in a batch of its own, each
        sent while the ones before are in flight.

        @return: their Produce requests.
        """
        self.send(0, values[0])
        self.initProducerId()
        for value in values[1:]:
            self.send(0, value)
        requests = self.produces()
        self.assertEqual([r.values(P0) for r in requests], [[v] for v in values])
        return requests

    def resentInOrder(self, *expected):
        """
        Partition 0's batches go again one at a time, each answered before
        the next leaves: C{expected} gives each one's value and producer
        state.  Then every record was written once.
        """
        for value, state in expected:
            [request] = self.produces()
            self.assertEqual((request.values(P0), request.producerState(P0)), ([value], state))
            self.answer(request)
        self.assertEachWrittenOnce()

    def test_upToMaxInFlight(self):
        """
        Five batches of one partition are in flight at once, numbered in
        order; the sixth leaves when the first is answered.
        """
        requests = self.pipeline(b"a", b"b", b"c", b"d", b"e")
        self.assertEqual([r.producerState(P0) for r in requests], [(1000, 0, i) for i in range(5)])
        self.send(0, b"f")
        self.assertEqual(self.produces(), requests)
        self.answer(requests[0])
        [sixth] = self.produces()[4:]
        self.assertEqual((sixth.values(P0), sixth.producerState(P0)), ([b"f"], (1000, 0, 5)))
        for request in self.produces():
            self.answer(request)
        self.assertEachWrittenOnce()

    def test_refusedThenOutOfOrder(self):
        """
        When a batch is refused, the broker refuses the later ones in
        flight as out of order: no epoch bump; the refused batch goes again
        once none of its partition is in flight, the others after it, each
        under its own sequence numbers.
        """
        first, second = self.pipeline(b"a", b"b")
        self.answer(first, {P0: 6})  # NOT_LEADER_OR_FOLLOWER
        self.clock.advance(0.1)
        self.assertEqual(self.produces(), [second])
        self.answer(second, {P0: OutOfOrderSequenceError.code})
        self.clock.advance(0.1)
        self.resentInOrder((b"a", (1000, 0, 0)), (b"b", (1000, 0, 1)))

    def test_bumpRenumbersLaterBatches(self):
        """
        When the partition's first batch is refused out of order (the broker
        lost the producer's sequence), the epoch is bumped and the batches
        in flight behind it are numbered again after it.
        """
        first, second = self.pipeline(b"a", b"b")
        self.answer(first, {P0: OutOfOrderSequenceError.code})
        self.answer(second, {P0: OutOfOrderSequenceError.code})
        self.clock.advance(0.1)
        self.initProducerId(1000, 1, expected=(1000, 0))
        self.clock.advance(0.1)
        self.resentInOrder((b"a", (1000, 1, 0)), (b"b", (1000, 1, 1)))

    def test_connectionLost(self):
        """
        Batches in flight on a lost connection go again in order, one at a
        time while any is to be sent again, under their own numbers.
        """
        requests = self.pipeline(b"a", b"b", b"c")
        self.answer(requests[0])
        for request in requests[1:]:
            request.fail(ConnectionLostError())
        self.clock.advance(0.1)
        self.resentInOrder((b"b", (1000, 0, 1)), (b"c", (1000, 0, 2)))

    def test_expiredThenBump(self):
        """
        A refused batch whose delivery timeout passes fails; the batch
        behind it (sent 5 s later), numbered after it, is then refused as
        out of order as the partition's first: the epoch is bumped and it
        is numbered again from 0, written once.
        """
        self.send(0, b"a")
        self.initProducerId()
        self.clock.advance(5)
        self.send(0, b"b")
        first, second = self.produces()
        self.assertEqual([first.producerState(P0), second.producerState(P0)], [(1000, 0, 0), (1000, 0, 1)])
        self.answer(first, {P0: 6})  # NOT_LEADER_OR_FOLLOWER
        self.answer(second, {P0: OutOfOrderSequenceError.code})
        while True:
            self.clock.advance(0.1)
            if self.results[b"a"].called:
                break
            [retry] = self.produces()
            self.assertEqual(retry.values(P0), [b"a"])
            self.answer(retry, {P0: 6})
        self.failureResultOf(self.results[b"a"], DeliveryTimeoutError)
        del self.results[b"a"]
        self.clock.advance(0.1)
        [behind] = self.produces()
        self.assertEqual((behind.values(P0), behind.producerState(P0)), ([b"b"], (1000, 0, 1)))
        self.answer(behind, {P0: OutOfOrderSequenceError.code})
        self.clock.advance(0.1)
        self.initProducerId(1000, 1, expected=(1000, 0))
        self.clock.advance(0.1)
        self.resentInOrder((b"b", (1000, 1, 0)))
