"""
The idempotent producer's id, epoch and sequence numbers: InitProducerId
before the first batch, and the epoch bump (KIP-360) after the broker lost
the producer's state.
"""

from typing import Any, Dict, Tuple

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from txscales.kafka._accumulator import Batch
from txscales.kafka._connection import KafkaConnection
from txscales.kafka._errors import (
    InvalidProducerEpochError,
    KafkaError,
    OutOfOrderSequenceError,
    UnknownProducerIdError,
    errorForCode,
)
from txscales.kafka._messages import INIT_PRODUCER_ID, decodeInitProducerIdResponse, encodeInitProducerIdRequest
from txscales.kafka._records import producerOf

# Answers to an idempotent batch after which the producer bumps its epoch.
RESET_CODES = frozenset([OutOfOrderSequenceError.code, InvalidProducerEpochError.code, UnknownProducerIdError.code])


class IdempotenceMixin:
    """
    The producer id and epoch of L{txscales.kafka._producer.KafkaProducer},
    which provides the attributes and methods used here.
    """

    _cluster: Any
    _idempotence: Any
    _producerId: int
    _producerEpoch: int
    _previousProducer: Tuple[int, int]
    _initializing: Any
    _sequences: Dict[Tuple[str, int], int]
    _batches: Dict[Tuple[str, int], Any]
    _retryBackoff: float

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

    def _resetProducer(self, batch: Batch, error: KafkaError) -> None:
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
        # Its partition's later batches already numbered (in flight, or to
        # be sent again) are numbered again after it.
        for later in self._batches.get(batch.tp, ()):
            if later.encoded is not None:
                later.stale = True
        self._retry(batch, error)

    # Provided by the producer.

    def _scheduleDrain(self, delay: float) -> None:
        raise NotImplementedError()

    def _removeBatch(self, batch: Batch) -> None:
        raise NotImplementedError()

    def _failBatch(self, batch: Batch, failure: Failure) -> None:
        raise NotImplementedError()

    def _retry(self, batch: Batch, error: BaseException) -> None:
        raise NotImplementedError()
