"""
The Kafka producer: an accumulator that collects records into one batch
per partition, and a sender that writes ready batches to their leaders,
one Produce request per broker.

A partition's records are written in the order they were sent, retries
included.  Without idempotence, a partition has at most one batch in flight
at a time.  An idempotent producer sends up to C{maxInFlight} batches of a
partition at once, in order: the broker writes a batch only after the one
before it (their sequence numbers say which), and refuses the later ones
when an earlier one fails; a batch to be sent again waits until none of
its partition is in flight, then all go again in order.  A retry keeps its
batch's sequence numbers, so the broker writes a batch it already has only
once.
"""

import random as _random
from collections import deque
from operator import itemgetter as _itemgetter
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple, Union, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from txscales._deferreds import CallDeferred
from txscales._registry import REGISTRY
from txscales.errors import ClientClosedError
from txscales.kafka._cluster import Cluster
from txscales.kafka._connection import KafkaConnection
from txscales.kafka._errors import DuplicateSequenceError, KafkaError, MessageTooLargeError, errorForCode
from txscales.kafka._idempotence import RESET_CODES, IdempotenceMixin
from txscales.kafka._messages import PRODUCE, PartitionProduceResponse, decodeProduceResponse, encodeProduceRequest
from txscales.kafka._codecs import checkCodec
from txscales.kafka._accumulator import Batch, FlushWaiter, WaitingRecord, recordSizeBound
from txscales.kafka._partitioners import Murmur2Partitioner, RandomSource, StickyPartitioner
from txscales.kafka._records import HEADER_SIZE, RecordBatchBuilder
from txscales.kafka._stats import ProducerStats
from txscales.kafka._waiting import BufferExhaustedError, DeliveryTimeoutError, WaitingMixin

__all__ = ["BufferExhaustedError", "DeliveryTimeoutError", "KafkaProducer", "RecordMetadata"]

TopicPartition = Tuple[str, int]
Header = Tuple[str, Optional[bytes]]


class RecordMetadata(tuple):
    """
    Where the broker appended a record: an immutable value with the
    attributes below, equal to another L{RecordMetadata} with the same
    ones.

    It is a tuple underneath (one object for the garbage collector to visit
    while its Deferred is kept, and quick to make: the producer makes one
    per record), yet never equal to a plain tuple.

    @ivar topic: its topic.
    @ivar partition: its partition.
    @ivar offset: its offset, or -1 when unknown (acks 0, or a duplicate of
        a batch the broker already had).
    @ivar timestamp: its timestamp in milliseconds: the broker's append
        time when the topic uses it, else the record's.
    """

    __slots__ = ()

    def __new__(cls, topic: str, partition: int, offset: int, timestamp: int) -> "RecordMetadata":
        return tuple.__new__(cls, (topic, partition, offset, timestamp))

    topic: str = property(_itemgetter(0), doc="its topic")  # type: ignore[assignment]
    partition: int = property(_itemgetter(1), doc="its partition")  # type: ignore[assignment]
    offset: int = property(_itemgetter(2), doc="its offset, or -1 when unknown")  # type: ignore[assignment]
    timestamp: int = property(_itemgetter(3), doc="its timestamp in milliseconds")  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return "RecordMetadata(topic=%r, partition=%r, offset=%r, timestamp=%r)" % tuple(self)

    def __reduce__(self) -> Any:
        return (RecordMetadata, tuple(self))


class KafkaProducer(WaitingMixin, IdempotenceMixin):
    """
    Send records to the partitions of Kafka topics.

    Made by L{txscales.kafka.Kafka.newProducer}.
    """

    def __init__(self, cluster: Cluster, reactor: Any, acks: Union[int, str] = "all", lingerMs: float = 5,
                 batchSize: int = 16384, maxRequestSize: int = 1048576, bufferMemory: int = 32 * 1024 * 1024,
                 maxBlock: float = 60.0, compression: str = "none", requestTimeout: float = 30.0,
                 deliveryTimeout: float = 120.0, retryBackoff: float = 0.1, maxInFlight: int = 5,
                 idempotence: Optional[bool] = None, random: Any = None, partitioner: Any = None,
                 stats: Optional[ProducerStats] = None) -> None:
        self._cluster = cluster
        self._clock = reactor
        self.acks = {"all": -1, -1: -1, 0: 0, 1: 1}[acks]
        if idempotence and self.acks != -1:
            raise ValueError("an idempotent producer needs acks='all'")
        self._linger = lingerMs / 1000.0
        self._batchSize = batchSize
        self._maxRequestSize = maxRequestSize
        self._bufferMemory = bufferMemory
        self._maxBlock = maxBlock
        self._compression = compression
        checkCodec(compression)
        self._requestTimeout = requestTimeout
        self._deliveryTimeout = deliveryTimeout
        self._retryBackoff = retryBackoff
        self._maxInFlight = maxInFlight
        self._idempotence = idempotence if self.acks == -1 else False
        self._producerId = -1
        self._producerEpoch = -1
        # The id and epoch to bump, once the broker lost this producer's
        # state or refused its epoch (see _resetProducer).
        self._previousProducer = (-1, -1)
        self._initializing: Optional["Deferred[None]"] = None
        self._sequences: Dict[TopicPartition, int] = {}
        # An IPartitioner, resolved once (default: Kafka's, murmur2 for
        # keyed records, sticky for the others).
        self._partitioner = partitioner if partitioner is not None else Murmur2Partitioner(
            cast(RandomSource, random if random is not None else _random.Random()))
        # Its names on the admin page (Kafka.newProducer sets them).
        self.label = "kafka"
        self.dest = ""
        self.partitionerName = type(self._partitioner).__name__
        self._batches: Dict[TopicPartition, Deque[Batch]] = {}
        # Produce requests in flight per broker, batches per partition.
        self._inFlight: Dict[int, int] = {}
        self._partitionInFlight: Dict[TopicPartition, int] = {}
        self._used = 0
        self._initWaiting()
        self._batchLimit = min(batchSize, maxRequestSize)
        # The batch of each partition that takes its next records.
        self._open: Dict[TopicPartition, Batch] = {}
        # With a sticky partitioner (Kafka's default), the last topic sent a
        # record without a key, partition or headers, its metadata and the
        # open batch the record went to: the next such record of the topic
        # goes there too while the batch is open and the metadata the same.
        self._stickyRoutes = type(self._partitioner) in (Murmur2Partitioner, StickyPartitioner)
        self._sticky: Optional[Tuple[str, Any, Batch]] = None
        self._partitions: Dict[str, Tuple[Any, List[int]]] = {}
        self._flushing = 0
        self._drainTimer: Optional[IDelayedCall] = None
        self._closed = False
        self._stats = stats
        if stats is not None:
            stats.watch(self)

    # Public API

    def send(self, topic: str, value: Optional[bytes], key: Optional[bytes] = None,
             partition: Optional[int] = None, headers: Optional[Sequence[Header]] = None,
             timestamp: Optional[int] = None) -> "Deferred[RecordMetadata]":
        """
        Send a record.

        @param timestamp: its create time in milliseconds (default: now).
        @return: a Deferred firing with its L{RecordMetadata} once the
            broker acknowledged it, or failing with L{ClientClosedError},
            L{MessageTooLargeError} (the record alone exceeds
            C{maxRequestSize}; nothing was sent), L{BufferExhaustedError},
            L{DeliveryTimeoutError}, or the broker's L{KafkaError}.
        """
        if self._closed:
            return _failed(ClientClosedError("the producer is closed"))
        if headers is None:
            headers = ()
        # recordSizeBound, inlined for the usual record.
        size = 36 + (len(value) if value is not None else 0)
        if key is not None:
            size += len(key)
        if headers:
            headers = list(headers)
            size = recordSizeBound(key, value, headers)
        if size + HEADER_SIZE > self._maxRequestSize or size > self._bufferMemory:
            tooLarge = MessageTooLargeError("the record is up to %d bytes, over maxRequestSize %d or bufferMemory %d"
                                            % (size + HEADER_SIZE, self._maxRequestSize, self._bufferMemory))
            tooLarge.mayHaveReachedServer = False  # nothing was sent
            return _failed(tooLarge)
        now = self._clock.seconds()
        if timestamp is None:
            timestamp = int(now * 1000)
        result: "Deferred[RecordMetadata]" = CallDeferred()
        if not self._memoryQueue and topic not in self._topicQueues and self._used + size <= self._bufferMemory:
            # The fast path: memory is free, the topic's metadata known and
            # no earlier record waits for either.
            metadata = self._cluster.cached(topic, now)
            if metadata is not None:
                sticky = self._sticky
                if key is None and partition is None and not headers and sticky is not None \
                        and sticky[0] == topic and sticky[1] is metadata:
                    batch = sticky[2]
                    if self._open.get(batch.tp) is batch and batch.size + size <= self._batchLimit:
                        self._used += size
                        self._appendTo(batch, result, timestamp, None, value, headers, size)
                        return result
                try:
                    tp = self._route(topic, key, partition, metadata)
                except KafkaError as e:
                    result.errback(Failure(e))
                    return result
                self._used += size
                opened = self._open.get(tp)
                batch = self._append(tp, result, timestamp, key, value, headers, size, now)
                if batch is opened and key is None and partition is None and not headers and self._stickyRoutes:
                    # (A record that opened a batch may have moved the
                    # partitioner on: the next one is routed again.)
                    self._sticky = (topic, metadata, batch)
                return result
        self._sendLater(WaitingRecord(result, topic, value, key, partition, headers, timestamp, size, now))
        return result

    def flush(self) -> "Deferred[None]":
        """
        Send every record sent so far without waiting for C{lingerMs}.

        @return: a Deferred firing once each of them succeeded or failed.
        """
        waiter = FlushWaiter(Deferred())
        for queue in self._batches.values():
            for batch in queue:
                batch.waiters.append(waiter)
                waiter.remaining += 1
        for record in self._waitingRecords():
            if record.waiters is None:
                record.waiters = []
            record.waiters.append(waiter)
            waiter.remaining += 1
        if not waiter.remaining:
            return succeed(None)
        self._flushing += 1
        self._drain()
        return cast("Deferred[None]", waiter.deferred)

    def close(self) -> "Deferred[None]":
        """
        Refuse new records, flush, then close the connections.

        @return: a Deferred firing once closed.
        """
        self._closed = True
        REGISTRY.removeClient(self)

        def closed(_: Any) -> "Deferred[None]":
            done = self._cluster.close()
            if self._drainTimer is not None and self._drainTimer.active():
                self._drainTimer.cancel()
            return done

        return self.flush().addCallback(closed)

    def describe(self) -> Dict[str, Any]:
        """
        @return: the producer for the admin page, in the shape of
            L{txscales.stack.ClientStack.describe}: its C{label},
            C{destination}, its C{partitioner} as the C{balancer}, the
            brokers as C{endpoints} (Produce requests in flight as their
            C{pending}), its C{buffer} (bytes free of C{bufferMemory},
            batches waiting) and its C{discovery} members; Kafka has no
            retry budget.
        """
        return {
            "label": self.label,
            "destination": self.dest,
            "protocol": "kafka",
            "balancer": {"name": self.partitionerName},
            "retryBudget": None,
            "resolved": bool(self._cluster.brokers),
            "closed": self._closed,
            "endpoints": self._cluster.describeBrokers(self._inFlight),
            "buffer": {"bufferMemory": self._bufferMemory, "available": self.bufferAvailable(),
                       "batches": sum(len(queue) for queue in self._batches.values())},
            "discovery": self._cluster.describeDiscovery(),
        }

    # Memory

    def bufferAvailable(self) -> int:
        """
        @return: bytes of C{bufferMemory} not held by records (0 once
            closed).
        """
        return 0 if self._closed else self._bufferMemory - self._used

    # Routing

    def _route(self, topic: str, key: Optional[bytes], partition: Optional[int], metadata: Any) -> TopicPartition:
        """
        @param metadata: the topic's metadata.
        @return: the partition a record goes to.
        @raise UnknownTopicOrPartitionError: for a partition the topic does
            not have.
        """
        cached = self._partitions.get(topic)
        if cached is None or cached[0] is not metadata:
            cached = self._partitions[topic] = (metadata, [p.partition for p in metadata.partitions])
        partitions = cached[1]
        if partition is not None:
            if partition not in partitions:
                raise errorForCode(3, "topic %r has no partition %d" % (topic, partition))
            return (topic, partition)
        return (topic, self._partitioner.partition(topic, key, partitions))

    # Accumulator

    def _append(self, tp: TopicPartition, deferred: "Deferred[RecordMetadata]", timestamp: int,
                key: Optional[bytes], value: Optional[bytes], headers: Sequence[Header], size: int, sentAt: float,
                waiters: Optional[List[FlushWaiter]] = None) -> Batch:
        """
        Encode a record into its partition's open batch, or a new one.

        @param size: the memory it holds (L{recordSizeBound}).
        @param sentAt: when it was sent: a new batch's linger and delivery
            timeout count from then.
        @param waiters: the flush waiters that counted it before it had a
            batch.
        @return: the batch.
        """
        batch = self._open.get(tp)
        if batch is None or batch.size + size > self._batchLimit:
            batch = self._newBatch(tp, timestamp, sentAt)
        self._appendTo(batch, deferred, timestamp, key, value, headers, size, waiters)
        return batch

    def _appendTo(self, batch: Batch, deferred: "Deferred[RecordMetadata]", timestamp: int,
                  key: Optional[bytes], value: Optional[bytes], headers: Sequence[Header], size: int,
                  waiters: Optional[List[FlushWaiter]] = None) -> None:
        """
        Encode a record into an open batch with room for it, closing the
        batch once it is full.
        """
        batch.size += batch.builder.append(timestamp, key, value, headers)  # type: ignore[union-attr]
        batch.deferreds.append(deferred)
        batch.deltas.append(timestamp - batch.baseTimestamp)
        batch.memory += size
        if waiters:
            for waiter in waiters:
                if waiter in batch.waiters:
                    waiter.remaining -= 1
                else:
                    batch.waiters.append(waiter)
        if batch.size >= self._batchSize:
            self._close(batch)
            self._scheduleDrain(0)

    def _newBatch(self, tp: TopicPartition, timestamp: int, sentAt: float) -> Batch:
        """
        Close the partition's open batch, if any, and open a new one.
        """
        full = self._open.get(tp)
        if full is not None:
            # It is sent now, not after lingerMs.
            self._close(full)
            self._scheduleDrain(0)
        queue = self._batches.get(tp)
        if queue is None:
            queue = self._batches[tp] = deque()
        batch = Batch(tp, RecordBatchBuilder(self._compression), timestamp, sentAt, sentAt + self._deliveryTimeout)
        batch.timer = self._clock.callLater(max(0.0, batch.deadline - self._clock.seconds()), self._expire, batch)
        queue.append(batch)
        self._open[tp] = batch
        self._scheduleDrain(self._linger)
        return batch

    def _close(self, batch: Batch) -> None:
        """
        Take no more records into C{batch}: the next of its partition start
        a new one, and the partitioner may move on.
        """
        if self._open.get(batch.tp) is batch:
            del self._open[batch.tp]
        if not batch.full:
            batch.full = True
            self._partitioner.onNewBatch(batch.tp[0], batch.tp[1], self._partitionsOf(batch.tp[0]))

    def _partitionsOf(self, topic: str) -> List[int]:
        cached = self._partitions.get(topic)
        return cached[1] if cached is not None else []

    def _expire(self, batch: Batch) -> None:
        batch.timer = None
        if batch.inFlight:
            return
        self._removeBatch(batch)
        self._failBatch(batch, Failure(DeliveryTimeoutError(self._deliveryTimeout, batch.written, batch.lastError)))

    def _removeBatch(self, batch: Batch) -> None:
        if self._open.get(batch.tp) is batch:
            del self._open[batch.tp]
        queue = self._batches.get(batch.tp)
        if queue is None:
            return
        if queue and queue[0] is batch:
            # The usual case: the partition's oldest batch, acknowledged.
            queue.popleft()
        elif batch in queue:
            queue.remove(batch)
        if not queue:
            del self._batches[batch.tp]

    # Sender

    def _scheduleDrain(self, delay: float) -> None:
        if not self._batches:
            return
        if self._drainTimer is not None and self._drainTimer.active():
            if self._drainTimer.getTime() <= self._clock.seconds() + delay:
                return
            self._drainTimer.cancel()
        self._drainTimer = self._clock.callLater(delay, self._drain)

    def _drain(self) -> None:
        if self._drainTimer is not None and self._drainTimer.active():
            self._drainTimer.cancel()
        self._drainTimer = None
        if self._idempotence is not False and self._producerId < 0:
            self._initProducerId()
            return
        now = self._clock.seconds()
        nextWake: Optional[float] = None
        pipelined = self._idempotence is True
        # A request takes one batch per partition: with idempotence, each
        # pass takes the next batch of each partition, until the brokers'
        # maxInFlight or the ready batches run out.
        while True:
            byNode: Dict[int, List[Batch]] = {}
            for tp, queue in list(self._batches.items()):
                flying = self._partitionInFlight.get(tp, 0)
                if not flying:
                    batch = queue[0]
                elif not pipelined or flying >= self._maxInFlight or len(queue) <= flying:
                    continue
                else:
                    batch = queue[flying]
                    if batch.inFlight or batch.encoded is not None:
                        # A batch sent before goes again once none of its
                        # partition is in flight.
                        continue
                due = now if (batch.full or self._flushing or self._closed) else batch.createdAt + self._linger
                due = max(due, batch.retryAt)
                if due > now:
                    nextWake = due if nextWake is None else min(nextWake, due)
                    continue
                leader = self._cluster.leaderOf(*tp)
                if leader is None:
                    self._refreshThenDrain()
                    continue
                if self._inFlight.get(leader, 0) >= self._maxInFlight:
                    continue
                byNode.setdefault(leader, []).append(batch)
            if not byNode:
                break
            for node, batches in byNode.items():
                self._sendTo(node, batches)
            if not pipelined:
                break
        if nextWake is not None:
            self._scheduleDrain(nextWake - now)

    def _refreshThenDrain(self) -> None:
        self._cluster.invalidate()
        self._cluster.refresh().addErrback(lambda f: None).addCallback(
            lambda _: self._scheduleDrain(self._retryBackoff))

    def _sendTo(self, node: int, batches: List[Batch]) -> None:
        total = 0
        chosen: List[Batch] = []
        for batch in batches:
            sequence = -1
            if self._idempotence and (batch.encoded is None or batch.stale):
                sequence = self._sequences.get(batch.tp, 0)
                self._sequences[batch.tp] = (sequence + len(batch.deferreds)) & 0x7FFFFFFF
            if batch.encoded is None:
                self._close(batch)
            encoded = batch.build(self._producerId, self._producerEpoch, sequence)
            if chosen and total + len(encoded) > self._maxRequestSize:
                break
            total += len(encoded)
            chosen.append(batch)
            batch.inFlight = True
            self._partitionInFlight[batch.tp] = self._partitionInFlight.get(batch.tp, 0) + 1
        self._inFlight[node] = self._inFlight.get(node, 0) + 1

        def send(connection: KafkaConnection) -> Any:
            version = connection.version(PRODUCE)
            topicData: Dict[str, List[Tuple[int, bytes]]] = {}
            for batch in chosen:
                topicData.setdefault(batch.tp[0], []).append((batch.tp[1], batch.encoded or b""))
            body = encodeProduceRequest(version, self.acks, int(self._requestTimeout * 1000),
                                        list(topicData.items()))
            for batch in chosen:
                batch.written = True
            if self.acks == 0:
                connection.send(PRODUCE, version, body)
                if self._stats is not None:
                    self._stats.requestSent(None)
                return None
            answer = connection.request(PRODUCE, version, body)
            if self._stats is not None:
                self._stats.requestSent(answer)
            return answer.addCallback(lambda frame: decodeProduceResponse(frame, version))

        def answered(response: Any) -> None:
            self._landed(node, chosen)
            if response is None:
                for batch in chosen:
                    self._removeBatch(batch)
                    self._complete(batch, None)
                return
            acknowledged = []
            for batch in chosen:
                parts = [p for p in response.topics.get(batch.tp[0], []) if p.partition == batch.tp[1]]
                if not parts:
                    self._retry(batch, errorForCode(-1, "the broker did not answer for %s-%d" % batch.tp))
                elif parts[0].errorCode in (0, DuplicateSequenceError.code):
                    self._removeBatch(batch)
                    acknowledged.append((batch, parts[0]))
                else:
                    error = errorForCode(parts[0].errorCode, parts[0].errorMessage)
                    if self._idempotence and error.code in RESET_CODES:
                        if self._batches[batch.tp][0] is batch:
                            self._resetProducer(batch, error)
                        else:
                            # An earlier batch of its partition was refused
                            # or lost: it goes again after that one.
                            self._retry(batch, error)
                        continue
                    if error.refreshMetadata:
                        self._refreshThenDrain()
                    if error.retryable:
                        self._retry(batch, error)
                    else:
                        self._removeBatch(batch)
                        self._failBatch(batch, Failure(error))
            if acknowledged:
                # The partitions' next batches are written before these
                # records' Deferreds fire, without a reactor turn between.
                try:
                    self._drain()
                finally:
                    for batch, part in acknowledged:
                        self._complete(batch, part)
            if len(acknowledged) < len(chosen):
                # Batches to retry: the drain finds when they are due.
                self._scheduleDrain(0)

        def failed(failure: Failure) -> None:
            self._landed(node, chosen)
            self._refreshThenDrain()
            for batch in chosen:
                self._retry(batch, failure.value or Exception("request failed"))
            self._scheduleDrain(self._retryBackoff)

        self._cluster.connectionToNode(node).addCallback(send).addCallbacks(answered, failed)

    def _landed(self, node: int, batches: List[Batch]) -> None:
        """
        A Produce request to C{node} was answered, or failed: its batches
        are no longer in flight.
        """
        self._inFlight[node] -= 1
        for batch in batches:
            batch.inFlight = False
            flying = self._partitionInFlight[batch.tp] - 1
            if flying:
                self._partitionInFlight[batch.tp] = flying
            else:
                del self._partitionInFlight[batch.tp]

    def _retry(self, batch: Batch, error: BaseException) -> None:
        batch.lastError = error
        batch.retryAt = self._clock.seconds() + self._retryBackoff
        if batch.timer is None:
            # Its deadline passed while it was in flight.
            self._removeBatch(batch)
            self._failBatch(batch, Failure(DeliveryTimeoutError(self._deliveryTimeout, batch.written, error)))
        elif self._stats is not None:
            self._stats.retried(error, len(batch.deferreds))

    def _complete(self, batch: Batch, response: Optional[PartitionProduceResponse]) -> None:
        """
        Fire the Deferreds of an acknowledged batch, already removed from
        its partition's queue.
        """
        if batch.timer is not None and batch.timer.active():
            batch.timer.cancel()
        batch.timer = None
        self._release(batch.memory)
        if self._stats is not None:
            self._stats.batchSent(len(batch.deferreds), len(batch.encoded or b""), batch.size)
        topic, partition = batch.tp
        offset = appendTime = -1
        if response is not None and response.errorCode == 0:
            offset = response.baseOffset
            appendTime = response.logAppendTimeMs
        base = batch.baseTimestamp
        # RecordMetadata.__new__, inlined: tuple's own constructor.
        new = tuple.__new__
        for i, (deferred, delta) in enumerate(zip(batch.deferreds, batch.deltas)):
            deferred.callback(new(RecordMetadata, (topic, partition, offset + i if offset >= 0 else -1,
                                                   appendTime if appendTime != -1 else base + delta)))
        self._settle(batch)

    def _failBatch(self, batch: Batch, failure: Failure) -> None:
        if self._stats is not None:
            self._stats.failed(failure.value, len(batch.deferreds))
        if batch.timer is not None and batch.timer.active():
            batch.timer.cancel()
        batch.timer = None
        self._release(batch.memory)
        for deferred in batch.deferreds:
            if not deferred.called:
                deferred.errback(failure)
        self._settle(batch)

    def _settle(self, batch: Batch) -> None:
        """
        The batch's records all succeeded or failed: count it off the
        flush waiters that wait for it.
        """
        self._unwait(batch.waiters)
        batch.waiters = []

    def _unwait(self, waiters: List[FlushWaiter]) -> None:
        for waiter in waiters:
            waiter.remaining -= 1
            if waiter.remaining == 0:
                self._flushing -= 1
                waiter.deferred.callback(None)


def _failed(error: Exception) -> "Deferred[Any]":
    d: "Deferred[Any]" = Deferred()
    d.errback(Failure(error))
    return d
