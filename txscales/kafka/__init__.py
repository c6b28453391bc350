"""
Kafka: a producer (L{Kafka.newProducer}, L{Kafka.newBuilder}), the sans-IO
wire code it is built on (the protocol's primitives, messages and
RecordBatch v2, partitioners), and the errors a broker answers with.
"""

from random import Random
from typing import TYPE_CHECKING, Any, Optional, Union, cast

from txscales._plugins import partitionerFactory
from txscales._reactor import defaultReactor
from txscales.errors import BadDestinationError
from txscales.kafka._bootstrap import clusterFor
from txscales.kafka._builder import KafkaProducerBuilder
from txscales.kafka._connection import DEFAULT_MAX_FRAME_SIZE, TooManyPendingRequestsError
from txscales.kafka._options import checkOptions
from txscales.kafka._partitioners import Murmur2Partitioner, RandomSource

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
from txscales._registry import REGISTRY
from txscales.kafka._producer import BufferExhaustedError, DeliveryTimeoutError, KafkaProducer, RecordMetadata
from txscales.kafka._stats import ProducerStats

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class Kafka:
    """
    Make Kafka clients.
    """

    @staticmethod
    def newProducer(dest: str, acks: Union[int, str] = "all", lingerMs: float = 5, batchSize: int = 16384,
                    maxRequestSize: int = 1048576, bufferMemory: int = 32 * 1024 * 1024, maxBlock: float = 60.0,
                    compression: str = "none", requestTimeout: float = 30.0, deliveryTimeout: float = 120.0,
                    retryBackoff: float = 0.1, maxInFlight: int = 5, idempotence: Optional[bool] = None,
                    partitioner: Optional[str] = None, clientId: Optional[str] = "txscales",
                    connectTimeout: float = 10.0, discoveryTimeout: float = 10.0, metadataMaxAge: float = 300.0,
                    maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE, stats: bool = True,
                    registry: "Optional[CollectorRegistry]" = None, label: Optional[str] = None,
                    reactor: Any = None, random: Optional[Random] = None) -> KafkaProducer:
        """
        A producer writing to the cluster at C{dest}.

        @param dest: the bootstrap brokers: C{tcp://host:port[,host:port...]},
            or a discovery URI (C{zk://zkhost:port/path}, or an installed
            scheme's) whose members are brokers, followed as they change.
        @param acks: 0 (no answer), 1 (the leader wrote it) or C{"all"}
            (every in-sync replica did).
        @param lingerMs: milliseconds a batch waits for more records.
        @param batchSize: bytes a partition's batch may hold.
        @param maxRequestSize: the largest Produce request, in bytes; a
            larger record fails before any byte is sent.
        @param bufferMemory: bytes of records the producer holds at most.
        @param maxBlock: seconds a record waits for room in
            C{bufferMemory} before it fails with L{BufferExhaustedError}.
        @param compression: C{"none"}, C{"gzip"}, C{"snappy"}, C{"lz4"} or
            C{"zstd"}, checked now.
        @param requestTimeout: seconds a request waits for its response.
        @param deliveryTimeout: seconds a record may take, retries
            included, before it fails with L{DeliveryTimeoutError}.
        @param retryBackoff: seconds between retries.
        @param maxInFlight: Produce requests in flight per broker; an
            idempotent producer also sends up to this many batches of a
            partition at once, in order (without idempotence a partition
            has one batch in flight at a time, so its order is kept).
        @param idempotence: None (the default) for idempotence when the
            broker speaks InitProducerId v3+, True to require it, False
            for none.  It needs C{acks="all"}.
        @param partitioner: the name of the partitioner plugin that
            chooses the partition of a record sent without one:
            C{"murmur2"}, C{"sticky"}, C{"roundrobin"} or an installed
            plugin's; None (the default) for Kafka's, as C{"murmur2"}:
            keyed records by the murmur2 hash of their key, the others
            sticky.
        @param clientId: the client id of every request.
        @param connectTimeout: seconds to connect to a broker.
        @param discoveryTimeout: seconds a discovery C{dest} may take to
            name the first brokers.
        @param metadataMaxAge: seconds before the metadata is refreshed.
        @param maxFrameSize: the largest response accepted, in bytes.
        @param stats: whether to count records, batches, requests and
            errors in prometheus metrics (C{txscales_kafka_producer_*}).
        @param registry: the prometheus C{CollectorRegistry} (default: the
            global one).
        @param label: the producer's name in metrics (default: C{clientId},
            else C{"kafka"}).
        @param reactor: the reactor (default: Twisted's global one).
        @param random: a C{random.Random} for the partitioner.
        @raise txscales.errors.BadOptionError: for an option's bad value.
        @raise txscales.errors.BadDestinationError: for a bad C{dest}.
        @raise txscales.errors.UnknownPluginError: for a C{partitioner} or
            a C{dest} scheme no plugin is named.
        @raise UnsupportedCodecError: for a codec that cannot be used.
        """
        # Everything is checked before discovery starts.
        checkOptions(dict(acks=acks, lingerMs=lingerMs, batchSize=batchSize, maxRequestSize=maxRequestSize,
                          bufferMemory=bufferMemory, maxBlock=maxBlock, compression=compression,
                          requestTimeout=requestTimeout, deliveryTimeout=deliveryTimeout,
                          retryBackoff=retryBackoff, maxInFlight=maxInFlight, idempotence=idempotence,
                          partitioner=partitioner, clientId=clientId, connectTimeout=connectTimeout,
                          discoveryTimeout=discoveryTimeout, metadataMaxAge=metadataMaxAge,
                          maxFrameSize=maxFrameSize, stats=stats, registry=registry, label=label))
        if not isinstance(dest, str):
            raise BadDestinationError("a Kafka destination is a str, not %r" % (dest,))
        reactor = defaultReactor(reactor)
        random = random if random is not None else Random()
        chosen = Murmur2Partitioner(cast(RandomSource, random)) if partitioner is None else partitionerFactory(partitioner).build(random)
        cluster = clusterFor(dest, reactor, clientId, requestTimeout, connectTimeout, metadataMaxAge, maxFrameSize,
                             discoveryTimeout)
        producer = KafkaProducer(cluster, reactor, acks=acks, lingerMs=lingerMs, batchSize=batchSize,
                             maxRequestSize=maxRequestSize, bufferMemory=bufferMemory, maxBlock=maxBlock,
                             compression=compression, requestTimeout=requestTimeout,
                             deliveryTimeout=deliveryTimeout, retryBackoff=retryBackoff,
                             maxInFlight=maxInFlight, idempotence=idempotence, partitioner=chosen,
                             stats=ProducerStats(label or clientId or "kafka", reactor, registry) if stats else None)
        producer.label, producer.dest = label or clientId or "kafka", dest
        producer.partitionerName = partitioner if partitioner is not None else "murmur2"
        REGISTRY.addClient(producer)
        return producer

    @staticmethod
    def newBuilder() -> KafkaProducerBuilder:
        """
        @return: a L{KafkaProducerBuilder}, whose setters are
            L{newProducer}'s options.
        """
        return KafkaProducerBuilder()


__all__ = [
    "BufferExhaustedError",
    "DeliveryTimeoutError",
    "Kafka",
    "KafkaProducer",
    "KafkaProducerBuilder",
    "RecordMetadata",
    "TooManyPendingRequestsError",
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
