"""
Tests for the Kafka producer when its broker is killed (SIGKILL) and
restarted mid-stream: Tansu with S3 storage (a local moto server), so
that what the broker wrote survives, counted by consuming with
kafka-python; and an idempotent producer's epoch bump against Tansu.
"""

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.trial.unittest import TestCase

from tests._kafka import S3Server, TansuBroker, consumeAll, createTopic
from txscales.kafka import Kafka

N = 20000
KILL_AFTER = 4000


class _Tally:
    """
    What happened to each record of a stream: acknowledged or failed.
    """

    def __init__(self, threshold):
        self.acknowledged = set()
        self.asDuplicates = set()
        self.failed = {}
        self.reached = Deferred()
        self._threshold = threshold

    def track(self, number, d):
        def acknowledged(metadata):
            self.acknowledged.add(number)
            if metadata.offset == -1:
                self.asDuplicates.add(number)
            if len(self.acknowledged) >= self._threshold and not self.reached.called:
                self.reached.callback(None)

        def failed(failure):
            self.failed[number] = failure.value

        return d.addCallbacks(acknowledged, failed)


class KillAndRestartTests(TestCase):
    """
    A stream of 20,000 records across a kill -9 and restart of the broker,
    which keeps its records in S3.
    """

    servers = True
    timeout = 120

    @inlineCallbacks
    def stream(self, topic, **options):
        """
        Send N records to C{topic} (two partitions), killing and restarting
        the broker once C{KILL_AFTER} of them were acknowledged.

        @return: a Deferred firing with (the L{_Tally}, the values read
            back, the counts line for failure messages).
        """
        s3 = S3Server(reactor, self.addCleanup)
        yield s3.start()
        broker = TansuBroker(reactor, self.addCleanup, storage=s3)
        yield broker.start()
        yield createTopic(reactor, broker.bootstrap, topic, partitions=2, broker=broker)
        producer = Kafka.newProducer(broker.dest, reactor=reactor, lingerMs=2, batchSize=2048,
                                     requestTimeout=5.0, retryBackoff=0.05, deliveryTimeout=40.0, **options)
        self.addCleanup(producer.close)
        tally = _Tally(KILL_AFTER)
        sent = [tally.track(i, producer.send(topic, b"%d" % (i,), key=b"%d" % (i % 10,))) for i in range(N)]
        yield tally.reached
        result = yield broker.kill()
        self.assertEqual(9, result.signal)
        atKill = len(tally.acknowledged)
        producerAtKill = (producer._producerId, producer._producerEpoch)
        self.assertLess(atKill, N, "the stream ended before the kill")
        yield broker.start()
        yield DeferredList(sent)
        records = yield consumeAll(reactor, broker.bootstrap, topic, broker=broker)
        values = [int(r.value) for r in records]
        duplicates = len(values) - len(set(values))
        counts = ("sent %d, acknowledged %d (%d before the kill, %d as duplicates), failed %d %r, consumed %d,"
                  " duplicates %d; producer id and epoch %r at the kill, %r at the end"
                  % (N, len(tally.acknowledged), atKill, len(tally.asDuplicates), len(tally.failed),
                     sorted({repr(e) for e in tally.failed.values()})[:3], len(values), duplicates,
                     producerAtKill, (producer._producerId, producer._producerEpoch)))
        print(counts)
        return tally, values, counts

    @inlineCallbacks
    def test_idempotentExactlyOnce(self):
        """
        With idempotence every record is acknowledged and none is written
        twice; every record acknowledged with its offset is in the log.

        A record the broker acknowledged as a duplicate (DUPLICATE_SEQUENCE_NUMBER,
        offset -1: a retried batch whose sequence it had recorded) is at
        most once in the log, not surely once: Tansu 0.6's S3 storage
        records a batch's sequence, then its offset, then writes the batch
        (tansu-storage/src/dynostore.rs, C{produce}), so a kill -9 between
        the first and the last loses a batch that it then calls a duplicate.
        """
        tally, values, counts = yield self.stream("idem")
        seen = {}
        for v in values:
            seen[v] = seen.get(v, 0) + 1
        lost = sorted(n for n in tally.acknowledged - tally.asDuplicates if n not in seen)
        twice = sorted(n for n in tally.acknowledged if seen.get(n, 0) > 1)
        print("acknowledged as duplicates and not in the log: %d" % (len(tally.asDuplicates - set(seen)),))
        self.assertEqual((lost[:10], twice[:10]), ([], []), counts)
        self.assertEqual(len(tally.acknowledged), N, counts)

    @inlineCallbacks
    def test_notIdempotentNoLoss(self):
        """
        Without idempotence no acknowledged record is lost.
        """
        tally, values, counts = yield self.stream("plain", idempotence=False)
        lost = sorted(tally.acknowledged - set(values))
        self.assertEqual(lost[:10], [], counts)


class EpochBumpTests(TestCase):
    """
    The epoch bump of an idempotent producer against Tansu.
    """

    servers = True
    timeout = 60

    @inlineCallbacks
    def test_bumpThenNewId(self):
        """
        Tansu cannot bump the epoch of a producer id (InitProducerId with
        the id answers UNKNOWN_SERVER_ERROR), so a bump takes a new id, and
        the records sent before and after it are each in the log once, in
        order.
        """
        broker = TansuBroker(reactor, self.addCleanup)
        yield broker.start()
        yield createTopic(reactor, broker.bootstrap, "bump", partitions=1, broker=broker)
        producer = Kafka.newProducer(broker.dest, reactor=reactor, lingerMs=1, batchSize=1024)
        self.addCleanup(producer.close)
        yield DeferredList([producer.send("bump", b"%d" % (i,)) for i in range(500)], fireOnOneErrback=True)
        before = (producer._producerId, producer._producerEpoch)
        # What _resetProducer does when the broker refuses a batch of the
        # current epoch.
        producer._previousProducer, producer._producerId = before, -1
        producer._sequences.clear()
        yield DeferredList([producer.send("bump", b"%d" % (i,)) for i in range(500, 1000)],
                           fireOnOneErrback=True)
        after = (producer._producerId, producer._producerEpoch)
        self.assertNotEqual(after[0], before[0])
        records = yield consumeAll(reactor, broker.bootstrap, "bump", broker=broker)
        self.assertEqual([int(r.value) for r in records], list(range(1000)))
