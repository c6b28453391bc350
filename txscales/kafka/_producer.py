"""
The Kafka producer: an accumulator that collects records into one batch
per partition, and a sender that writes ready batches to their leaders,
one Produce request per broker.

At most one batch per partition is in flight at a time, so a partition's
records are written in the order they were sent, retries included; an
idempotent producer's retry keeps its batch's sequence numbers, so the
broker writes a batch it already has only once.
"""

import random as _random
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple, Union, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from txscales.errors import ClientClosedError, TxScalesError
from txscales.kafka._cluster import Cluster
from txscales.kafka._connection import KafkaConnection
from txscales.kafka._errors import (
    DuplicateSequenceError,
    InvalidProducerEpochError,
    KafkaError,
    MessageTooLargeError,
    OutOfOrderSequenceError,
    UnknownProducerIdError,
    errorForCode,
)
from txscales.kafka._messages import (
    INIT_PRODUCER_ID,
    PRODUCE,
    PartitionProduceResponse,
    decodeInitProducerIdResponse,
    decodeProduceResponse,
    encodeInitProducerIdRequest,
    encodeProduceRequest,
)
from txscales.kafka._codecs import checkCodec
from txscales.kafka._partitioners import Murmur2Partitioner, RandomSource
from txscales.kafka._records import HEADER_SIZE, RecordBatchBuilder, encodeRecord, producerOf
from txscales.kafka._stats import ProducerStats

TopicPartition = Tuple[str, int]
# Answers to an idempotent batch after which the producer bumps its epoch.
_RESET_CODES = frozenset([OutOfOrderSequenceError.code, InvalidProducerEpochError.code, UnknownProducerIdError.code])
Header = Tuple[str, Optional[bytes]]


class BufferExhaustedError(TxScalesError):
    """
    A record did not fit in the producer's C{bufferMemory} within
    C{maxBlock}; it was not sent.
    """

    mayHaveReachedServer = False
    retryable = True


class DeliveryTimeoutError(TxScalesError):
    """
    A record was not acknowledged within the producer's
    C{deliveryTimeout}.

    @ivar written: whether a request carrying it was written to a broker
        (it may then have been appended).
    """

    def __init__(self, timeout: float, written: bool, last: Optional[BaseException] = None) -> None:
        TxScalesError.__init__(self, "record not delivered within %g s%s"
                               % (timeout, "" if last is None else " (last error: %s)" % (last,)))
        self.timeout = timeout
        self.written = written
        self.mayHaveReachedServer = written


@dataclass(frozen=True)
class RecordMetadata:
    """
    Where the broker appended a record.

    @ivar topic: its topic.
    @ivar partition: its partition.
    @ivar offset: its offset, or -1 when unknown (acks 0, or a duplicate of
        a batch the broker already had).
    @ivar timestamp: its timestamp in milliseconds: the broker's append
        time when the topic uses it, else the record's.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int


class _Record:
    __slots__ = ("deferred", "timestamp", "size")

    def __init__(self, deferred: "Deferred[RecordMetadata]", timestamp: int, size: int) -> None:
        self.deferred = deferred
        self.timestamp = timestamp
        self.size = size


class _Batch:
    """
    The records of one partition that travel in one RecordBatch.
    """

    def __init__(self, tp: TopicPartition, builder: RecordBatchBuilder, deadline: float) -> None:
        self.tp = tp
        self.builder = builder
        self.records: List[_Record] = []
        self.deadline = deadline
        self.full = False
        self.inFlight = False
        self.written = False
        self.encoded: Optional[bytes] = None
        self.baseSequence = -1
        self.retryAt = 0.0
        self.lastError: Optional[BaseException] = None
        self.timer: Optional[IDelayedCall] = None


class KafkaProducer:
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
        self._batches: Dict[TopicPartition, Deque[_Batch]] = {}
        self._inFlight: Dict[int, int] = {}
        self._used = 0
        self._memoryWaiters: Deque[Tuple[int, "Deferred[None]", IDelayedCall]] = deque()
        self._count = 0
        self._outstanding: Dict[int, None] = {}
        self._flushWaiters: List[Tuple[int, "Deferred[None]"]] = []
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
        headerList = list(headers or ())
        if timestamp is None:
            timestamp = int(self._clock.seconds() * 1000)
        size = len(encodeRecord(0, 0, key, value, headerList))
        if size + HEADER_SIZE > self._maxRequestSize or size > self._bufferMemory:
            tooLarge = MessageTooLargeError("the record is %d bytes, over maxRequestSize %d or bufferMemory %d"
                                            % (size + HEADER_SIZE, self._maxRequestSize, self._bufferMemory))
            tooLarge.mayHaveReachedServer = False  # nothing was sent
            return _failed(tooLarge)
        number = self._count
        self._count += 1
        self._outstanding[number] = None
        result: "Deferred[RecordMetadata]" = Deferred()
        record = _Record(result, timestamp, size)
        deadline = self._clock.seconds() + self._deliveryTimeout

        held = [False]

        def hold(_: None) -> None:
            held[0] = True

        def done(outcome: Any) -> Any:
            if held[0]:
                self._release(size)
            del self._outstanding[number]
            self._wakeFlushers()
            return outcome

        reserved: "Deferred[Any]" = self._reserve(size)
        reserved.addCallback(hold)
        reserved.addCallback(lambda _: self._route(topic, key, partition, deadline))
        reserved.addCallback(lambda tp: self._append(tp, record, key, value, headerList, deadline))
        reserved.addErrback(lambda f: self._finish(record, f))
        out: "Deferred[RecordMetadata]" = Deferred()
        result.addBoth(done).addBoth(lambda outcome: _fire(out, outcome))
        return out

    def flush(self) -> "Deferred[None]":
        """
        Send every record sent so far without waiting for C{lingerMs}.

        @return: a Deferred firing once each of them succeeded or failed.
        """
        if not self._outstanding:
            return succeed(None)
        d: "Deferred[None]" = Deferred()
        self._flushWaiters.append((self._count, d))
        self._flushing += 1
        self._drain()
        return d

    def close(self) -> "Deferred[None]":
        """
        Refuse new records, flush, then close the connections.

        @return: a Deferred firing once closed.
        """
        self._closed = True

        def closed(_: Any) -> "Deferred[None]":
            done = self._cluster.close()
            if self._drainTimer is not None and self._drainTimer.active():
                self._drainTimer.cancel()
            return done

        return self.flush().addCallback(closed)

    # Memory

    def bufferAvailable(self) -> int:
        """
        @return: bytes of C{bufferMemory} not held by records (0 once
            closed).
        """
        return 0 if self._closed else self._bufferMemory - self._used

    def _reserve(self, size: int) -> "Deferred[None]":
        if not self._memoryWaiters and self._used + size <= self._bufferMemory:
            self._used += size
            return succeed(None)
        d: "Deferred[None]" = Deferred()

        def timedOut() -> None:
            self._memoryWaiters.remove(entry)
            d.errback(BufferExhaustedError("no room for %d bytes in bufferMemory within %g s"
                                           % (size, self._maxBlock)))

        entry = (size, d, self._clock.callLater(self._maxBlock, timedOut))
        self._memoryWaiters.append(entry)
        return d

    def _release(self, size: int) -> None:
        self._used -= size
        while self._memoryWaiters and self._used + self._memoryWaiters[0][0] <= self._bufferMemory:
            size, d, timer = self._memoryWaiters.popleft()
            timer.cancel()
            self._used += size
            d.callback(None)

    # Routing

    def _route(self, topic: str, key: Optional[bytes], partition: Optional[int],
               deadline: float) -> "Deferred[TopicPartition]":
        result: "Deferred[TopicPartition]" = Deferred()
        last: List[Optional[BaseException]] = [None]
        retry: List[Optional[IDelayedCall]] = [None]

        def attempt() -> None:
            retry[0] = None
            self._cluster.topic(topic).addCallbacks(found, failed)

        def expired() -> None:
            if retry[0] is not None and retry[0].active():
                retry[0].cancel()
            result.errback(DeliveryTimeoutError(self._deliveryTimeout, False, last[0]))

        timer = self._clock.callLater(max(0.0, deadline - self._clock.seconds()), expired)

        def found(metadata: Any) -> None:
            if result.called:
                return
            timer.cancel()
            partitions = [p.partition for p in metadata.partitions]
            if partition is not None:
                if partition not in partitions:
                    result.errback(errorForCode(3, "topic %r has no partition %d" % (topic, partition)))
                    return
                result.callback((topic, partition))
            else:
                result.callback((topic, self._partitioner.partition(topic, key, partitions)))

        def failed(failure: Failure) -> None:
            if result.called:
                return
            error = failure.value
            # UNKNOWN_TOPIC_OR_PARTITION here means the cluster answered
            # that the topic does not exist.
            if isinstance(error, KafkaError) and (not error.retryable or error.code == 3):
                timer.cancel()
                result.errback(failure)
                return
            last[0] = error
            retry[0] = self._clock.callLater(self._retryBackoff, attempt)

        attempt()
        return result

    # Accumulator

    def _append(self, tp: TopicPartition, record: _Record, key: Optional[bytes], value: Optional[bytes],
                headers: List[Header], deadline: float) -> None:
        queue = self._batches.setdefault(tp, deque())
        batch = queue[-1] if queue else None
        if batch is not None and (batch.full or batch.encoded is not None
                                  or batch.builder.sizeInBytes() + record.size > self._batchSize
                                  or batch.builder.sizeInBytes() + record.size > self._maxRequestSize):
            if not batch.full:
                batch.full = True
                self._partitioner.onNewBatch(tp[0], tp[1], self._partitionsOf(tp[0]))
                self._scheduleDrain(0)
            batch = None
        if batch is None:
            batch = _Batch(tp, RecordBatchBuilder(self._compression), deadline)
            batch.timer = self._clock.callLater(max(0.0, deadline - self._clock.seconds()), self._expire, batch)
            queue.append(batch)
            self._scheduleDrain(self._linger)
        batch.builder.append(record.timestamp, key, value, headers)
        batch.records.append(record)
        if batch.builder.sizeInBytes() >= self._batchSize:
            batch.full = True
            self._partitioner.onNewBatch(tp[0], tp[1], self._partitionsOf(tp[0]))
            self._scheduleDrain(0)

    def _partitionsOf(self, topic: str) -> List[int]:
        metadata = self._cluster.topics.get(topic)
        return [p.partition for p in metadata.partitions] if metadata else []

    def _expire(self, batch: _Batch) -> None:
        batch.timer = None
        if batch.inFlight:
            return
        self._removeBatch(batch)
        self._failBatch(batch, Failure(DeliveryTimeoutError(self._deliveryTimeout, batch.written, batch.lastError)))

    def _removeBatch(self, batch: _Batch) -> None:
        queue = self._batches.get(batch.tp)
        if queue is not None and batch in queue:
            queue.remove(batch)
            if not queue:
                del self._batches[batch.tp]

    # Sender

    def _scheduleDrain(self, delay: float) -> None:
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
        byNode: Dict[int, List[_Batch]] = {}
        nextWake: Optional[float] = None
        for tp, queue in list(self._batches.items()):
            batch = queue[0]
            if batch.inFlight:
                continue
            due = now if (batch.full or self._flushing or self._closed) else batch.deadline - self._deliveryTimeout + self._linger
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
        for node, batches in byNode.items():
            self._sendTo(node, batches)
        if nextWake is not None:
            self._scheduleDrain(nextWake - now)

    def _refreshThenDrain(self) -> None:
        self._cluster.invalidate()
        self._cluster.refresh().addErrback(lambda f: None).addCallback(
            lambda _: self._scheduleDrain(self._retryBackoff))

    def _initProducerId(self) -> None:
        if self._initializing is not None:
            return

        def initialize(connection: KafkaConnection) -> Any:
            version = connection.version(INIT_PRODUCER_ID)
            if version < 3:
                # Older versions need a transaction coordinator (and
                # Tansu answers them wrongly): no idempotence.
                if self._idempotence:
                    raise errorForCode(35, "the broker speaks InitProducerId v%d, not v3+" % (version,))
                self._idempotence = False
                return None
            return ask(connection, version)

        def ask(connection: KafkaConnection, version: int) -> Any:
            body = encodeInitProducerIdRequest(version, producerId=self._previousProducer[0],
                                               producerEpoch=self._previousProducer[1])
            return connection.request(INIT_PRODUCER_ID, version, body).addCallback(
                lambda frame: answered(decodeInitProducerIdResponse(frame, version), connection, version))

        def answered(response: Any, connection: KafkaConnection, version: int) -> Any:
            if response.errorCode:
                error = errorForCode(response.errorCode)
                if self._previousProducer != (-1, -1) and not error.retryable:
                    # A broker that cannot bump this id's epoch (Tansu
                    # answers UNKNOWN_SERVER_ERROR) may give a new id.
                    self._previousProducer = (-1, -1)
                    return ask(connection, version)
                raise error
            self._producerId, self._producerEpoch = response.producerId, response.producerEpoch
            self._previousProducer = (-1, -1)
            self._idempotence = True
            return None

        def done(result: Any) -> None:
            self._initializing = None
            if isinstance(result, Failure) and not self._retryOrFail(result):
                return
            self._scheduleDrain(0 if not isinstance(result, Failure) else self._retryBackoff)

        d = self._cluster.refresh().addCallback(lambda _: self._anyConnection())
        self._initializing = d.addCallback(initialize).addBoth(done)

    def _anyConnection(self) -> "Deferred[KafkaConnection]":
        nodes = sorted(self._cluster.brokers)
        if not nodes:
            raise errorForCode(8, "the cluster named no broker")
        return self._cluster.connectionToNode(nodes[0])

    def _retryOrFail(self, failure: Failure) -> bool:
        """
        InitProducerId failed: fail every batch whose deadline passed, or
        all of them when the error is not retryable.

        @return: whether to try again.
        """
        retry = getattr(failure.value, "retryable", False) or not isinstance(failure.value, KafkaError)
        for queue in list(self._batches.values()):
            for batch in list(queue):
                batch.lastError = failure.value
                if not retry and not batch.inFlight:
                    self._removeBatch(batch)
                    self._failBatch(batch, failure)
        return retry and bool(self._batches)

    def _sendTo(self, node: int, batches: List[_Batch]) -> None:
        total = 0
        chosen: List[_Batch] = []
        for batch in batches:
            if batch.encoded is None:
                if self._idempotence:
                    batch.baseSequence = self._sequences.get(batch.tp, 0)
                    self._sequences[batch.tp] = (batch.baseSequence + len(batch.records)) & 0x7FFFFFFF
                batch.encoded = batch.builder.build(self._producerId, self._producerEpoch, batch.baseSequence)
            if chosen and total + len(batch.encoded) > self._maxRequestSize:
                break
            total += len(batch.encoded)
            chosen.append(batch)
            batch.inFlight = True
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
            self._inFlight[node] -= 1
            for batch in chosen:
                batch.inFlight = False
            if response is None:
                for batch in chosen:
                    self._complete(batch, None)
                return
            for batch in chosen:
                parts = [p for p in response.topics.get(batch.tp[0], []) if p.partition == batch.tp[1]]
                if not parts:
                    self._retry(batch, errorForCode(-1, "the broker did not answer for %s-%d" % batch.tp))
                elif parts[0].errorCode in (0, DuplicateSequenceError.code):
                    self._complete(batch, parts[0])
                else:
                    error = errorForCode(parts[0].errorCode, parts[0].errorMessage)
                    if self._idempotence and error.code in _RESET_CODES:
                        self._resetProducer(batch, error)
                        continue
                    if error.refreshMetadata:
                        self._refreshThenDrain()
                    if error.retryable:
                        self._retry(batch, error)
                    else:
                        self._removeBatch(batch)
                        self._failBatch(batch, Failure(error))
            self._scheduleDrain(0)

        def failed(failure: Failure) -> None:
            self._inFlight[node] -= 1
            self._refreshThenDrain()
            for batch in chosen:
                batch.inFlight = False
                self._retry(batch, failure.value or Exception("request failed"))
            self._scheduleDrain(self._retryBackoff)

        self._cluster.connectionToNode(node).addCallback(send).addCallbacks(answered, failed)

    def _retry(self, batch: _Batch, error: BaseException) -> None:
        batch.lastError = error
        batch.retryAt = self._clock.seconds() + self._retryBackoff
        if batch.timer is None:
            # Its deadline passed while it was in flight.
            self._removeBatch(batch)
            self._failBatch(batch, Failure(DeliveryTimeoutError(self._deliveryTimeout, batch.written, error)))
        elif self._stats is not None:
            self._stats.retried(error, len(batch.records))

    def _resetProducer(self, batch: _Batch, error: KafkaError) -> None:
        """
        The broker lost this producer's state or sequence numbers for the
        batch's partition, or refused its epoch: the batch was not written.
        As the Java client (KIP-360), bump the epoch (InitProducerId with the
        current id and epoch: the broker gives the next epoch or a new id),
        restart every partition's sequence numbers at 0 and retry the batch
        under them; only a batch refused under the current epoch bumps it.
        Other partitions' batches in flight keep their id, epoch and numbers
        until answered, retries included.
        """
        producerId, epoch = producerOf(batch.encoded or b"")
        if (producerId, epoch) == (self._producerId, self._producerEpoch):
            self._previousProducer = (producerId, epoch)
            self._producerId = -1
            self._sequences.clear()
        batch.encoded = None
        batch.baseSequence = -1
        self._retry(batch, error)

    def _complete(self, batch: _Batch, response: Optional[PartitionProduceResponse]) -> None:
        self._removeBatch(batch)
        if batch.timer is not None and batch.timer.active():
            batch.timer.cancel()
        batch.timer = None
        if self._stats is not None:
            self._stats.batchSent(len(batch.records), len(batch.encoded or b""), batch.builder.sizeInBytes())
        topic, partition = batch.tp
        for i, record in enumerate(batch.records):
            offset = -1
            timestamp = record.timestamp
            if response is not None and response.errorCode == 0:
                offset = response.baseOffset + i
                if response.logAppendTimeMs != -1:
                    timestamp = response.logAppendTimeMs
            record.deferred.callback(RecordMetadata(topic, partition, offset, timestamp))

    def _failBatch(self, batch: _Batch, failure: Failure) -> None:
        if self._stats is not None:
            self._stats.failed(failure.value, len(batch.records))
        if batch.timer is not None and batch.timer.active():
            batch.timer.cancel()
        batch.timer = None
        for record in batch.records:
            self._finish(record, failure)

    def _finish(self, record: _Record, failure: Failure) -> None:
        if not record.deferred.called:
            record.deferred.errback(failure)

    def _wakeFlushers(self) -> None:
        oldest = next(iter(self._outstanding), self._count)
        ready = [w for w in self._flushWaiters if w[0] <= oldest]
        if not ready:
            return
        self._flushWaiters = [w for w in self._flushWaiters if w[0] > oldest]
        self._flushing -= len(ready)
        for _, d in ready:
            d.callback(None)


def _fire(d: "Deferred[Any]", outcome: Any) -> None:
    if isinstance(outcome, Failure):
        d.errback(outcome)
    else:
        d.callback(outcome)


def _failed(error: Exception) -> "Deferred[Any]":
    d: "Deferred[Any]" = Deferred()
    d.errback(Failure(error))
    return d
