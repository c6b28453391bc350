"""
Kafka: the sans-IO wire code a producer is built on (the protocol's
primitives, messages and RecordBatch v2, partitioners), and the errors a
broker answers with.
"""

from txscales.kafka._errors import (
    BrokerRequestTimedOutError,
    CorruptMessageError,
    DuplicateSequenceError,
    InvalidMetadataError,
    InvalidProducerEpochError,
    KafkaEncodeError,
    KafkaError,
    KafkaProtocolError,
    LeaderNotAvailableError,
    MessageTooLargeError,
    NotEnoughReplicasAfterAppendError,
    NotEnoughReplicasError,
    NotLeaderOrFollowerError,
    OutOfOrderSequenceError,
    RecordListTooLargeError,
    UnknownProducerIdError,
    UnknownTopicOrPartitionError,
    UnsupportedCodecError,
    UnsupportedVersionError,
)

__all__ = [
    "BrokerRequestTimedOutError",
    "CorruptMessageError",
    "DuplicateSequenceError",
    "InvalidMetadataError",
    "InvalidProducerEpochError",
    "KafkaEncodeError",
    "KafkaError",
    "KafkaProtocolError",
    "LeaderNotAvailableError",
    "MessageTooLargeError",
    "NotEnoughReplicasAfterAppendError",
    "NotEnoughReplicasError",
    "NotLeaderOrFollowerError",
    "OutOfOrderSequenceError",
    "RecordListTooLargeError",
    "UnknownProducerIdError",
    "UnknownTopicOrPartitionError",
    "UnsupportedCodecError",
    "UnsupportedVersionError",
]
