"""
The producer's accumulator state: one L{Batch} per RecordBatch being
filled or in flight, and the flush waiters that wait for batches to
settle.  Plain Python, no Twisted import: a record's Deferred is only held
here, fired by the producer.
"""

from typing import Any, List, Optional, Tuple

from txscales.kafka._records import HEADER_SIZE, RecordBatchBuilder, restamp

TopicPartition = Tuple[str, int]


class FlushWaiter:
    """
    A L{KafkaProducer.flush} call: its Deferred fires once C{remaining}
    batches (and records not yet in a batch) have settled.
    """

    __slots__ = ("deferred", "remaining")

    def __init__(self, deferred: Any) -> None:
        self.deferred = deferred
        self.remaining = 0


class Batch:
    """
    The records of one partition that travel in one RecordBatch: they are
    encoded into its builder as they are sent, and their Deferreds and
    timestamps (as deltas from C{baseTimestamp}, small integers) are kept
    side by side, in order.

    @ivar size: its size in bytes so far, header included, before
        compression.
    @ivar memory: the bufferMemory its records hold, released once it
        settles.
    @ivar waiters: the L{FlushWaiter}s that count it.
    """

    __slots__ = ("tp", "builder", "size", "deferreds", "baseTimestamp", "deltas", "memory", "createdAt", "deadline", "full", "inFlight",
                 "written", "encoded", "stale", "baseSequence", "retryAt", "lastError", "timer", "waiters")

    def __init__(self, tp: TopicPartition, builder: RecordBatchBuilder, baseTimestamp: int, createdAt: float,
                 deadline: float) -> None:
        self.tp = tp
        self.builder: Optional[RecordBatchBuilder] = builder
        self.size = HEADER_SIZE
        self.deferreds: List[Any] = []
        self.baseTimestamp = baseTimestamp
        self.deltas: List[int] = []
        self.memory = 0
        self.createdAt = createdAt
        self.deadline = deadline
        self.full = False
        self.inFlight = False
        self.written = False
        self.encoded: Optional[bytes] = None
        # Its producer id, epoch and sequence are to be given again (after
        # an epoch bump) when it is next sent.
        self.stale = False
        self.baseSequence = -1
        self.retryAt = 0.0
        self.lastError: Optional[BaseException] = None
        self.timer: Any = None
        self.waiters: List[FlushWaiter] = []

    def build(self, producerId: int, producerEpoch: int, baseSequence: int) -> bytes:
        """
        Encode it once and drop the builder: a retry sends the same bytes,
        its arguments then ignored, unless it is C{stale}, when only its
        producer id, epoch and base sequence change.

        @return: the RecordBatch.
        """
        if self.encoded is None:
            assert self.builder is not None
            self.baseSequence = baseSequence
            self.encoded = self.builder.build(producerId, producerEpoch, baseSequence)
            self.builder = None
        elif self.stale:
            self.baseSequence = baseSequence
            self.encoded = restamp(self.encoded, producerId, producerEpoch, baseSequence)
        self.stale = False
        return self.encoded


def recordSizeBound(key: Optional[bytes], value: Optional[bytes], headers: Any) -> int:
    """
    @return: the most bytes a record may take in a batch: its key, value
        and headers, and the longest varints of its fields.
    """
    # Length, attributes, timestamp delta, offset delta, key and value
    # lengths, header count.
    size = 5 + 1 + 10 + 5 + 5 + 5 + 5
    if key is not None:
        size += len(key)
    if value is not None:
        size += len(value)
    for headerKey, headerValue in headers:
        size += 10 + len(headerKey.encode("utf-8") if isinstance(headerKey, str) else headerKey)
        if headerValue is not None:
            size += len(headerValue)
    return size


class WaitingRecord:
    """
    A record sent while bufferMemory was short or its topic's metadata
    unknown (or behind such a record), with what L{KafkaProducer.send} was
    given.

    @ivar waiters: the L{FlushWaiter}s that count it, or None.
    """

    __slots__ = ("deferred", "topic", "value", "key", "partition", "headers", "timestamp", "size", "sentAt",
                 "waiters")

    def __init__(self, deferred: Any, topic: str, value: Optional[bytes], key: Optional[bytes],
                 partition: Optional[int], headers: Any, timestamp: int, size: int, sentAt: float) -> None:
        self.deferred = deferred
        self.topic = topic
        self.value = value
        self.key = key
        self.partition = partition
        self.headers = headers
        self.timestamp = timestamp
        self.size = size
        self.sentAt = sentAt
        self.waiters: Optional[List[FlushWaiter]] = None
