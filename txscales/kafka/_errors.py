"""
Kafka's errors: the error codes a broker answers with, as typed exceptions,
and the errors of the wire code itself.  Plain Python, no Twisted.

Every broker error is a L{KafkaError}.  The codes a producer must tell apart
have their own class; any other code gives a L{KafkaError} that carries the
code's name from L{ERROR_CODES}.  Each says whether retrying is sensible
(C{retryable}) and whether the records of the request may have been written
(C{mayHaveBeenWritten}).
"""

from typing import Dict, Optional, Tuple, Type

from txscales.errors import BadMessageError, EncodeError, TxScalesError


class KafkaProtocolError(BadMessageError):
    """
    Bytes from a Kafka broker do not decode as the message expected: a
    length runs past the end of its frame or over its bound, a varint is too
    long, a CRC does not match.  The connection is closed.
    """


class KafkaEncodeError(EncodeError):
    """
    A Kafka message cannot be encoded: a value is out of its field's range.
    """


class UnsupportedCodecError(TxScalesError):
    """
    A compression codec was asked for whose library is not installed (or
    that Kafka does not define).

    @ivar codec: the codec's name.
    """

    mayHaveReachedServer = False

    def __init__(self, codec: str, why: str) -> None:
        """
        @param codec: the codec's name.
        @param why: what is missing.
        """
        TxScalesError.__init__(self, "compression codec %r: %s" % (codec, why))
        self.codec = codec


class KafkaError(TxScalesError):
    """
    A broker answered with an error code.

    @cvar code: the Kafka error code.
    @cvar name: the code's name in Kafka's sources (C{NOT_LEADER_OR_FOLLOWER}).
    @cvar mayHaveBeenWritten: C{True} if the records of the request may have
        been appended to the log despite the error.
    @cvar refreshMetadata: C{True} if the error means the client's metadata
        is stale: a retry should follow a metadata refresh.
    @ivar message: the broker's error message, or the code's description.
    """

    code: int = -1
    name: str = "UNKNOWN_SERVER_ERROR"
    mayHaveBeenWritten: bool = True
    refreshMetadata: bool = False

    def __init__(self, message: Optional[str] = None) -> None:
        """
        @param message: the broker's message; the code's name when None.
        """
        self.message = message or self.name
        TxScalesError.__init__(self, "%s (%d): %s" % (self.name, self.code, self.message))


class InvalidMetadataError(KafkaError):
    """
    The client sent to the wrong broker, or the broker does not know the
    partition yet: refresh metadata, then retry.  Nothing was written.
    """

    retryable = True
    mayHaveBeenWritten = False
    refreshMetadata = True


class UnknownTopicOrPartitionError(InvalidMetadataError):
    """
    The broker does not host this topic-partition (yet).
    """

    code = 3
    name = "UNKNOWN_TOPIC_OR_PARTITION"


class LeaderNotAvailableError(InvalidMetadataError):
    """
    The partition has no leader: an election is under way.
    """

    code = 5
    name = "LEADER_NOT_AVAILABLE"


class NotLeaderOrFollowerError(InvalidMetadataError):
    """
    The broker is not the partition's leader.
    """

    code = 6
    name = "NOT_LEADER_OR_FOLLOWER"


class BrokerRequestTimedOutError(KafkaError):
    """
    The broker did not get enough acknowledgements within the request's
    timeout; the records may have been written.
    """

    code = 7
    name = "REQUEST_TIMED_OUT"
    retryable = True


class MessageTooLargeError(KafkaError):
    """
    The batch is larger than the broker or topic accepts.
    """

    code = 10
    name = "MESSAGE_TOO_LARGE"
    mayHaveBeenWritten = False


class RecordListTooLargeError(KafkaError):
    """
    The batch is larger than the broker's segment size.
    """

    code = 18
    name = "RECORD_LIST_TOO_LARGE"
    mayHaveBeenWritten = False


class CorruptMessageError(KafkaError):
    """
    The broker found the batch corrupt (a CRC mismatch, a bad size).
    """

    code = 2
    name = "CORRUPT_MESSAGE"
    retryable = True
    mayHaveBeenWritten = False


class NotEnoughReplicasError(KafkaError):
    """
    Fewer in-sync replicas than required: the broker refused to append.
    """

    code = 19
    name = "NOT_ENOUGH_REPLICAS"
    retryable = True
    mayHaveBeenWritten = False


class NotEnoughReplicasAfterAppendError(KafkaError):
    """
    The records were appended, but to fewer in-sync replicas than required.
    """

    code = 20
    name = "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
    retryable = True


class UnsupportedVersionError(KafkaError):
    """
    The broker does not support the version of the request.
    """

    code = 35
    name = "UNSUPPORTED_VERSION"
    mayHaveBeenWritten = False


class OutOfOrderSequenceError(KafkaError):
    """
    The broker received an idempotent batch out of order: an earlier batch
    of the partition was lost.
    """

    code = 45
    name = "OUT_OF_ORDER_SEQUENCE_NUMBER"
    mayHaveBeenWritten = False


class DuplicateSequenceError(KafkaError):
    """
    The broker already has this idempotent batch: an earlier attempt wrote
    it.
    """

    code = 46
    name = "DUPLICATE_SEQUENCE_NUMBER"


class InvalidProducerEpochError(KafkaError):
    """
    The producer's epoch is older than the broker's: another producer with
    the same id took over.
    """

    code = 47
    name = "INVALID_PRODUCER_EPOCH"
    mayHaveBeenWritten = False


class UnknownProducerIdError(KafkaError):
    """
    The broker no longer knows the producer id (its state expired).
    """

    code = 59
    name = "UNKNOWN_PRODUCER_ID"
    mayHaveBeenWritten = False


# The codes with their own class.
_CLASSES: Dict[int, Type[KafkaError]] = {
    cls.code: cls
    for cls in (
        CorruptMessageError,
        UnknownTopicOrPartitionError,
        LeaderNotAvailableError,
        NotLeaderOrFollowerError,
        BrokerRequestTimedOutError,
        MessageTooLargeError,
        RecordListTooLargeError,
        NotEnoughReplicasError,
        NotEnoughReplicasAfterAppendError,
        UnsupportedVersionError,
        OutOfOrderSequenceError,
        DuplicateSequenceError,
        InvalidProducerEpochError,
        UnknownProducerIdError,
    )
}

# Other codes a producer can meet: (name, retryable, mayHaveBeenWritten,
# refreshMetadata), from Kafka's Errors.java and which of its exceptions are
# RetriableException or InvalidMetadataException.
_OTHERS: Dict[int, Tuple[str, bool, bool, bool]] = {
    -1: ("UNKNOWN_SERVER_ERROR", False, True, False),
    8: ("BROKER_NOT_AVAILABLE", False, False, True),
    9: ("REPLICA_NOT_AVAILABLE", True, False, True),
    13: ("NETWORK_EXCEPTION", True, True, True),
    14: ("COORDINATOR_LOAD_IN_PROGRESS", True, False, False),
    15: ("COORDINATOR_NOT_AVAILABLE", True, False, False),
    16: ("NOT_COORDINATOR", True, False, False),
    17: ("INVALID_TOPIC_EXCEPTION", False, False, False),
    21: ("INVALID_REQUIRED_ACKS", False, False, False),
    29: ("TOPIC_AUTHORIZATION_FAILED", False, False, False),
    31: ("CLUSTER_AUTHORIZATION_FAILED", False, False, False),
    32: ("INVALID_TIMESTAMP", False, False, False),
    42: ("INVALID_REQUEST", False, False, False),
    43: ("UNSUPPORTED_FOR_MESSAGE_FORMAT", False, False, False),
    44: ("POLICY_VIOLATION", False, False, False),
    48: ("INVALID_TXN_STATE", False, False, False),
    49: ("INVALID_PRODUCER_ID_MAPPING", False, False, False),
    50: ("INVALID_TRANSACTION_TIMEOUT", False, False, False),
    51: ("CONCURRENT_TRANSACTIONS", True, False, False),
    53: ("TRANSACTIONAL_ID_AUTHORIZATION_FAILED", False, False, False),
    56: ("KAFKA_STORAGE_ERROR", True, True, True),
    74: ("FENCED_LEADER_EPOCH", True, False, True),
    75: ("UNKNOWN_LEADER_EPOCH", True, False, True),
    76: ("UNSUPPORTED_COMPRESSION_TYPE", False, False, False),
    87: ("INVALID_RECORD", False, False, False),
    89: ("THROTTLING_QUOTA_EXCEEDED", True, False, False),
    90: ("PRODUCER_FENCED", False, False, False),
    100: ("UNKNOWN_TOPIC_ID", True, False, True),
    103: ("INCONSISTENT_TOPIC_ID", True, False, True),
    120: ("TRANSACTION_ABORTABLE", False, False, False),
}


class _ErrorCode:
    """
    What L{ERROR_CODES} says of one code.

    @ivar code: the code.
    @ivar name: its name in Kafka's sources.
    @ivar retryable: whether a retry is sensible.
    @ivar mayHaveBeenWritten: whether the records may have been written.
    @ivar refreshMetadata: whether the client's metadata is stale.
    @ivar errorClass: the exception class raised for it.
    """

    def __init__(self, errorClass: Type[KafkaError]) -> None:
        self.errorClass = errorClass
        self.code = errorClass.code
        self.name = errorClass.name
        self.retryable = errorClass.retryable
        self.mayHaveBeenWritten = errorClass.mayHaveBeenWritten
        self.refreshMetadata = errorClass.refreshMetadata


def _genericClass(code: int, name: str, retryable: bool, written: bool, refresh: bool) -> Type[KafkaError]:
    """
    @return: a L{KafkaError} subclass for a code without its own class.
    """
    return type(
        "KafkaError_" + name,
        (KafkaError,),
        {
            "code": code,
            "name": name,
            "retryable": retryable,
            "mayHaveBeenWritten": written,
            "refreshMetadata": refresh,
            "__doc__": "The broker answered %s." % (name,),
            "__module__": __name__,
        },
    )


# Every code txscales knows: code -> what it means.
ERROR_CODES: Dict[int, _ErrorCode] = {code: _ErrorCode(cls) for code, cls in _CLASSES.items()}
ERROR_CODES.update(
    (code, _ErrorCode(_genericClass(code, *spec))) for code, spec in _OTHERS.items()
)


def errorForCode(code: int, message: Optional[str] = None) -> KafkaError:
    """
    The exception for a non-zero error code of a broker's answer.

    @param code: the error code.
    @param message: the broker's error message, if it sent one.
    @return: an instance of the code's class; for a code txscales does not
        know, a L{KafkaError} with that code and the name C{UNKNOWN_CODE_<n>},
        which may have written and is not retried.
    """
    known = ERROR_CODES.get(code)
    if known is not None:
        return known.errorClass(message)
    return _genericClass(code, "UNKNOWN_CODE_%d" % (code,), False, True, False)(message)
