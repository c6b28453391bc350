"""
The producer's records that cannot go straight into a batch: those sent
while C{bufferMemory} is short, or before their topic's metadata is known,
and those sent after them.

They wait in two queues without a Deferred, a timer or a closure of their
own: one for memory, in the order sent, then one per topic for its
metadata; one timer and one metadata lookup serve each queue.  A topic
whose records wait takes its next records after them, so none overtakes
another.
"""

from collections import deque
from typing import Any, Deque, Dict, Optional

from twisted.python.failure import Failure

from txscales.errors import TxScalesError
from txscales.kafka._accumulator import WaitingRecord
from txscales.kafka._errors import KafkaError


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


class WaitingMixin:
    """
    The waiting queues of L{txscales.kafka._producer.KafkaProducer}, which
    provides the attributes and methods used here.
    """

    _clock: Any
    _cluster: Any
    _used: int
    _bufferMemory: int
    _maxBlock: float
    _deliveryTimeout: float
    _retryBackoff: float

    def _initWaiting(self) -> None:
        self._memoryQueue: Deque[WaitingRecord] = deque()
        self._topicQueues: Dict[str, Deque[WaitingRecord]] = {}
        self._memoryTimer: Any = None
        self._topicTimers: Dict[str, Any] = {}
        # Topics whose metadata is being looked up (None) or whose lookup
        # waits to be retried (its timer), and the last error of each.
        self._fetching: Dict[str, Any] = {}
        self._lastErrors: Dict[str, BaseException] = {}

    def _waitingRecords(self) -> Any:
        """
        @return: every waiting record.
        """
        yield from self._memoryQueue
        for queue in self._topicQueues.values():
            yield from queue

    def _sendLater(self, record: WaitingRecord) -> None:
        self._memoryQueue.append(record)
        self._pumpMemory()

    def _release(self, size: int) -> None:
        self._used -= size
        if self._memoryQueue:
            self._pumpMemory()

    def _pumpMemory(self) -> None:
        """
        Give memory to the waiting records in the order sent; fail those
        that waited C{maxBlock} for it.
        """
        queue = self._memoryQueue
        now = None
        while queue:
            record = queue[0]
            if self._used + record.size <= self._bufferMemory:
                self._used += record.size
                queue.popleft()
                if record.topic not in self._topicQueues:
                    # As send()'s fast path: straight into its batch when
                    # its topic's metadata is known.
                    if now is None:
                        now = self._clock.seconds()
                    metadata = self._cluster.cached(record.topic, now)
                    if metadata is not None:
                        self._routeAndAppend(record, metadata)
                        continue
                self._enqueueTopic(record)
                continue
            if now is None:
                now = self._clock.seconds()
            if now - record.sentAt >= self._maxBlock:
                queue.popleft()
                self._giveUp(record, BufferExhaustedError("no room for %d bytes in bufferMemory within %g s"
                                                          % (record.size, self._maxBlock)))
                continue
            if self._memoryTimer is None or not self._memoryTimer.active():
                self._memoryTimer = self._clock.callLater(record.sentAt + self._maxBlock - now, self._memoryTimedOut)
            return
        if self._memoryTimer is not None and self._memoryTimer.active():
            self._memoryTimer.cancel()
        self._memoryTimer = None

    def _memoryTimedOut(self) -> None:
        self._memoryTimer = None
        self._pumpMemory()

    def _enqueueTopic(self, record: WaitingRecord) -> None:
        queue = self._topicQueues.get(record.topic)
        if queue is None:
            queue = self._topicQueues[record.topic] = deque()
        queue.append(record)
        if len(queue) == 1:
            self._pumpTopic(record.topic)

    def _pumpTopic(self, topic: str, metadata: Any = None) -> None:
        """
        Append the topic's waiting records to their batches once its
        metadata is known; fail those whose delivery timeout passed.

        @param metadata: the topic's metadata, just looked up.
        """
        queue = self._topicQueues.get(topic)
        if queue is None:
            return
        now = self._clock.seconds()
        while queue:
            record = queue[0]
            current = self._cluster.cached(topic, now) or metadata
            if current is None:
                if now - record.sentAt >= self._deliveryTimeout:
                    queue.popleft()
                    self._release(record.size)
                    self._giveUp(record, DeliveryTimeoutError(self._deliveryTimeout, False,
                                                              self._lastErrors.get(topic)))
                    continue
                self._fetch(topic)
                timer = self._topicTimers.get(topic)
                if timer is None or not timer.active():
                    self._topicTimers[topic] = self._clock.callLater(
                        record.sentAt + self._deliveryTimeout - now, self._pumpTopic, topic)
                return
            queue.popleft()
            self._routeAndAppend(record, current)
        if self._topicQueues.get(topic) is queue:
            self._forget(topic)

    def _routeAndAppend(self, record: WaitingRecord, metadata: Any) -> None:
        """
        Append a record that waited to its batch, or fail it when its
        partition does not exist.
        """
        try:
            tp = self._route(record.topic, record.key, record.partition, metadata)
        except KafkaError as e:
            self._release(record.size)
            self._giveUp(record, e)
            return
        self._append(tp, record.deferred, record.timestamp, record.key, record.value, record.headers,
                     record.size, record.sentAt, record.waiters)

    def _forget(self, topic: str) -> None:
        """
        No record of the topic waits any more: drop its queue and timers.
        """
        self._topicQueues.pop(topic, None)
        self._lastErrors.pop(topic, None)
        for timer in (self._topicTimers.pop(topic, None), self._fetching.get(topic)):
            if timer is not None and timer.active():
                timer.cancel()
        if self._fetching.get(topic) is not None:
            del self._fetching[topic]

    def _fetch(self, topic: str) -> None:
        """
        Look the topic's metadata up, unless that is under way.
        """
        if topic in self._fetching:
            return
        self._fetching[topic] = None

        def found(metadata: Any) -> None:
            self._fetching.pop(topic, None)
            self._lastErrors.pop(topic, None)
            self._pumpTopic(topic, metadata)

        def failed(failure: Failure) -> None:
            self._fetching.pop(topic, None)
            if topic not in self._topicQueues:
                return
            error = failure.value
            # UNKNOWN_TOPIC_OR_PARTITION here means the cluster answered
            # that the topic does not exist.
            if isinstance(error, KafkaError) and (not error.retryable or error.code == 3):
                queue = self._topicQueues[topic]
                self._forget(topic)
                for record in queue:
                    self._release(record.size)
                    self._giveUp(record, error)
                return
            self._lastErrors[topic] = error or Exception("metadata lookup failed")
            self._fetching[topic] = self._clock.callLater(self._retryBackoff, retry)

        def retry() -> None:
            self._fetching.pop(topic, None)
            self._pumpTopic(topic)

        self._cluster.topic(topic).addCallbacks(found, failed)

    def _giveUp(self, record: WaitingRecord, error: BaseException) -> None:
        """
        Fail a waiting record (its memory already released).
        """
        if record.waiters:
            self._unwait(record.waiters)
        record.deferred.errback(Failure(error))

    # Provided by the producer.

    def _route(self, topic: str, key: Optional[bytes], partition: Optional[int], metadata: Any) -> Any:
        raise NotImplementedError()

    def _append(self, *args: Any) -> Any:
        raise NotImplementedError()

    def _unwait(self, waiters: Any) -> None:
        raise NotImplementedError()
