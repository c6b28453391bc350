"""
A fake Kafka cluster for clock-driven tests of the producer: the part of
L{txscales.kafka._cluster.Cluster} and L{KafkaConnection} the producer
uses, with every request recorded (Produce requests decoded) and answered
by the test, one response frame at a time.

    clock = Clock()
    cluster = FakeCluster(clock, {"t": [0, 1]})      # partition -> leader
    producer = KafkaProducer(cluster, clock, lingerMs=5)
    d = producer.send("t", b"v", partition=0)
    clock.advance(0.005)
    request = cluster.produces()[0]                    # a L{ProduceRequest}
    request.answer()                                   # every batch written
"""

from twisted.internet.defer import Deferred, fail, succeed

from txscales.errors import ConnectError
from txscales.kafka._errors import UnknownTopicOrPartitionError
from txscales.kafka._messages import (
    INIT_PRODUCER_ID,
    PRODUCE,
    PartitionMetadata,
    TopicMetadata,
)
from txscales.kafka._primitives import Reader, int16, int32, int64
from txscales.kafka._records import decodeRecordBatches


class ProduceRequest:
    """
    A Produce request the producer sent.

    @ivar node: the broker it went to.
    @ivar acks: its acks.
    @ivar batches: C{{(topic, partition): RecordBatch}}, decoded.
    @ivar deferred: the Deferred the producer waits on (None for acks 0).
    """

    def __init__(self, node, version, body, deferred):
        self.node = node
        self.version = version
        self.deferred = deferred
        reader = Reader(body)
        reader.nullableString()
        self.acks = reader.int16()
        reader.int32()
        self.batches = {}
        for _ in range(reader.int32()):
            topic = reader.string()
            for _ in range(reader.int32()):
                partition = reader.int32()
                [batch] = decodeRecordBatches(reader.bytesField())
                self.batches[(topic, partition)] = batch
        reader.expectEnd("Produce request")

    def values(self, tp):
        """
        @return: the values of the records for C{tp}.
        """
        return [r.value for r in self.batches[tp].records]

    def producerState(self, tp):
        """
        @return: (producer id, epoch, base sequence) of C{tp}'s batch.
        """
        batch = self.batches[tp]
        return batch.producerId, batch.producerEpoch, batch.baseSequence

    def answer(self, errors=None, baseOffsets=None):
        """
        Answer it (Produce v3): each partition written at C{baseOffsets}
        (default 0) unless C{errors} gives its error code.
        """
        errors = errors or {}
        baseOffsets = baseOffsets or {}
        topics = {}
        for tp in self.batches:
            topics.setdefault(tp[0], []).append(tp[1])
        body = int32(len(topics))
        for topic, partitions in topics.items():
            body += int16(len(topic)) + topic.encode() + int32(len(partitions))
            for p in partitions:
                code = errors.get((topic, p), 0)
                body += int32(p) + int16(code) + int64(-1 if code else baseOffsets.get((topic, p), 0)) + int64(-1)
        self.deferred.callback(int32(0) + body + int32(0))

    def fail(self, error):
        """
        Fail it as a lost connection or a timeout would.
        """
        self.deferred.errback(error)


class InitProducerIdRequest:
    """
    An InitProducerId v3 request the producer sent.

    @ivar producerId: the producer id it gave (-1 for none).
    @ivar producerEpoch: the epoch it gave (-1 for none).
    """

    def __init__(self, node, version, body, deferred):
        self.node = node
        self.deferred = deferred
        reader = Reader(body)
        self.transactionalId = reader.nullableString(True)
        reader.int32()
        self.producerId = reader.int64()
        self.producerEpoch = reader.int16()

    def answer(self, producerId, producerEpoch, errorCode=0):
        """
        Answer it with a producer id and epoch, or an error code.
        """
        self.deferred.callback(int32(0) + b"\x00" + int32(0) + int16(errorCode) + int64(producerId)
                               + int16(producerEpoch) + b"\x00")


class FakeConnection:
    """
    A broker connection speaking Produce v3 and InitProducerId v3.
    """

    def __init__(self, cluster, node):
        self._cluster = cluster
        self.node = node
        self.closed = False

    def version(self, apiKey):
        return {PRODUCE: 3, INIT_PRODUCER_ID: self._cluster.initProducerIdVersion}[apiKey]

    def request(self, apiKey, version, body, timeout=-1.0):
        d = Deferred()
        kind = ProduceRequest if apiKey == PRODUCE else InitProducerIdRequest
        self._cluster.requests.append(kind(self.node, version, body, d))
        return d

    def send(self, apiKey, version, body):
        self._cluster.requests.append(ProduceRequest(self.node, version, body, None))

    def close(self):
        self.closed = True


class FakeCluster:
    """
    The producer's view of a cluster: topics with a leader per partition,
    metadata refreshes that succeed at once (or fail while C{reachable} is
    false), and the requests sent.

    @ivar requests: every request sent, in order.
    @ivar leaders: C{{(topic, partition): node}}; a change shows after the
        next L{refresh}.
    @ivar refreshes: how many refreshes were asked.
    """

    def __init__(self, clock, topics, reachable=True):
        """
        @param topics: C{{topic: [the leader of each partition]}}.
        """
        self._clock = clock
        self.reachable = reachable
        self.initProducerIdVersion = 3
        self.requests = []
        self.refreshes = 0
        self.closed = False
        self.leaders = {(t, p): node for t, nodes in topics.items() for p, node in enumerate(nodes)}
        self.topics = {}
        self.brokers = {}
        self._connections = {}
        self._apply()

    def _apply(self):
        self.topics = {}
        for (t, p), node in sorted(self.leaders.items()):
            self.topics.setdefault(t, TopicMetadata(0, t, [])).partitions.append(PartitionMetadata(0, p, node))
        self.brokers = {node: ("broker%d" % (node,), 9092) for node in self.leaders.values() if node >= 0}

    def produces(self):
        """
        @return: the Produce requests sent, in order.
        """
        return [r for r in self.requests if isinstance(r, ProduceRequest)]

    def pending(self):
        """
        @return: the requests not answered yet.
        """
        return [r for r in self.requests if r.deferred is not None and not r.deferred.called]

    def invalidate(self):
        pass

    def refresh(self):
        self.refreshes += 1
        if not self.reachable:
            return fail(ConnectError("no broker reachable"))
        self._apply()
        return succeed(None)

    def topic(self, name):
        if not self.reachable:
            return fail(ConnectError("no broker reachable"))
        if name not in self.topics:
            return fail(UnknownTopicOrPartitionError("the cluster did not describe topic %r" % (name,)))
        return succeed(self.topics[name])

    def cached(self, name, now):
        return self.topics.get(name) if self.reachable else None

    def leaderOf(self, topic, partition):
        for p in self.topics.get(topic, TopicMetadata(0, topic, [])).partitions:
            if p.partition == partition:
                return p.leader if p.leader >= 0 else None
        return None

    def connectionToNode(self, node):
        if not self.reachable:
            return fail(ConnectError("cannot connect to broker %d" % (node,)))
        if node not in self._connections:
            self._connections[node] = FakeConnection(self, node)
        return succeed(self._connections[node])

    def close(self):
        self.closed = True
        for connection in self._connections.values():
            connection.close()
        return succeed(None)

