"""
The Kafka requests a producer sends and the responses it reads, sans-IO:
request header v1/v2, response header v0/v1, ApiVersions, Metadata, Produce
and InitProducerId, each in the versions txscales speaks.  Plain Python, no
Twisted.

The schemas are those of Apache Kafka's
C{clients/src/main/resources/common/message/*.json}.  Encoders return a
whole frame, its int32 length prefix included; decoders take a frame
without its prefix (as L{txscales._framing.LengthPrefixDecoder} gives it)
and refuse any byte left over.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from txscales.kafka._errors import KafkaProtocolError, UnsupportedVersionError
from txscales.kafka._primitives import (
    Reader,
    array,
    arrayLength,
    boolean,
    bytesField,
    int16,
    int32,
    int64,
    nullableString,
    string,
    taggedFields,
    uvarint,
)

PRODUCE = 0
METADATA = 3
API_VERSIONS = 18
INIT_PRODUCER_ID = 22

# apiKey -> (lowest, highest) version txscales speaks.
SUPPORTED_VERSIONS: Dict[int, Tuple[int, int]] = {
    PRODUCE: (3, 11),
    METADATA: (1, 12),
    API_VERSIONS: (0, 3),
    INIT_PRODUCER_ID: (0, 4),
}

# apiKey -> the first flexible version (compact strings, tagged fields).
_FLEXIBLE_FROM: Dict[int, int] = {PRODUCE: 9, METADATA: 9, API_VERSIONS: 3, INIT_PRODUCER_ID: 2}

_API_NAMES = {PRODUCE: "Produce", METADATA: "Metadata", API_VERSIONS: "ApiVersions", INIT_PRODUCER_ID: "InitProducerId"}


def isFlexible(apiKey: int, version: int) -> bool:
    """
    @return: whether C{version} of the API is a flexible version.
    """
    return version >= _FLEXIBLE_FROM[apiKey]


def encodeRequest(apiKey: int, version: int, correlationId: int, clientId: Optional[str], body: bytes) -> bytes:
    """
    Frame a request body behind its header: v2 for flexible versions, v1
    otherwise.  The client id is a classic nullable string in both.

    @return: the frame, its int32 length prefix included.
    """
    header = int16(apiKey) + int16(version) + int32(correlationId) + nullableString(clientId)
    if isFlexible(apiKey, version):
        header += b"\x00"
    return int32(len(header) + len(body)) + header + body


def correlationIdOf(frame: bytes) -> int:
    """
    @param frame: a response frame, without its length prefix.
    @return: its correlation id, which says which request it answers.
    """
    return Reader(frame).int32()


def _bodyReader(frame: bytes, apiKey: int, version: int) -> Reader:
    """
    @return: a reader positioned after the response header (v1 for a
        flexible version, v0 otherwise; ApiVersions always answers with v0).
    """
    reader = Reader(frame)
    reader.int32()
    if apiKey != API_VERSIONS and isFlexible(apiKey, version):
        reader.taggedFields()
    return reader


# ApiVersions


@dataclass
class ApiVersionsResponse:
    """
    What a broker supports.

    @ivar errorCode: 0, or the error (35, UNSUPPORTED_VERSION, when the
        request's version is too new for it; then C{apiKeys} holds its
        ApiVersions range).
    @ivar apiKeys: apiKey -> (lowest, highest) version.
    @ivar throttleTimeMs: how long the broker throttled the request.
    """

    errorCode: int
    apiKeys: Dict[int, Tuple[int, int]]
    throttleTimeMs: int = 0


def encodeApiVersionsRequest(version: int, softwareName: str = "txscales", softwareVersion: str = "0") -> bytes:
    """
    @return: the body of an ApiVersions request.
    """
    if version < 3:
        return b""
    return string(softwareName, True) + string(softwareVersion, True) + b"\x00"


def decodeApiVersionsResponse(frame: bytes, version: int) -> ApiVersionsResponse:
    """
    @param version: the version of the request it answers.  A broker that
        does not speak it answers UNSUPPORTED_VERSION in v0, which is read
        as such.
    """
    reader = _bodyReader(frame, API_VERSIONS, version)
    errorCode = reader.int16()
    if errorCode == UnsupportedVersionError.code:
        version = 0
    flexible = version >= 3
    keys: Dict[int, Tuple[int, int]] = {}
    for _ in range(reader.arrayLength(flexible, 6)):
        apiKey, low, high = reader.int16(), reader.int16(), reader.int16()
        if flexible:
            reader.taggedFields()
        keys[apiKey] = (low, high)
    throttle = reader.int32() if version >= 1 else 0
    if flexible:
        reader.taggedFields()
    reader.expectEnd("ApiVersions response")
    return ApiVersionsResponse(errorCode, keys, throttle)


def chooseVersion(apiKey: int, brokerVersions: Mapping[int, Tuple[int, int]]) -> int:
    """
    @param brokerVersions: apiKey -> (lowest, highest), as the broker's
        ApiVersions response gives them.
    @return: the highest version of the API both txscales and the broker
        speak.
    @raise UnsupportedVersionError: when there is none.
    """
    low, high = SUPPORTED_VERSIONS[apiKey]
    theirs = brokerVersions.get(apiKey)
    if theirs is not None:
        best = min(high, theirs[1])
        if best >= max(low, theirs[0]):
            return best
    raise UnsupportedVersionError(
        "the broker speaks %s %s, txscales v%d..v%d"
        % (_API_NAMES[apiKey], "v%d..v%d" % theirs if theirs else "not at all", low, high)
    )


def chooseVersions(brokerVersions: Mapping[int, Tuple[int, int]]) -> Dict[int, int]:
    """
    @return: apiKey -> the version to use, for every API txscales speaks
        but ApiVersions.
    @raise UnsupportedVersionError: when the broker lacks one of them.
    """
    return {key: chooseVersion(key, brokerVersions) for key in SUPPORTED_VERSIONS if key != API_VERSIONS}


# Metadata


@dataclass
class BrokerMetadata:
    """
    One broker of the cluster.
    """

    nodeId: int
    host: str
    port: int
    rack: Optional[str] = None


@dataclass
class PartitionMetadata:
    """
    One partition of a topic.
    """

    errorCode: int
    partition: int
    leader: int
    leaderEpoch: int = -1
    replicas: List[int] = field(default_factory=list)
    isr: List[int] = field(default_factory=list)
    offlineReplicas: List[int] = field(default_factory=list)


@dataclass
class TopicMetadata:
    """
    One topic: its error, and its partitions.
    """

    errorCode: int
    name: Optional[str]
    partitions: List[PartitionMetadata]
    isInternal: bool = False
    topicId: bytes = bytes(16)


@dataclass
class MetadataResponse:
    """
    The cluster's brokers and the topics asked for.
    """

    brokers: List[BrokerMetadata]
    topics: List[TopicMetadata]
    clusterId: Optional[str] = None
    controllerId: int = -1
    throttleTimeMs: int = 0


def encodeMetadataRequest(version: int, topics: Optional[Sequence[str]], allowAutoTopicCreation: bool = True) -> bytes:
    """
    @param topics: the topics to describe; None for all of them.
    @return: the body of a Metadata request.
    """
    flexible = version >= 9
    if topics is None:
        parts = [arrayLength(None, flexible)]
    else:

        def topic(name: str) -> bytes:
            if flexible:
                return (bytes(16) if version >= 10 else b"") + string(name, True) + b"\x00"
            return string(name)

        parts = [array(topics, topic, flexible)]
    if version >= 4:
        parts.append(boolean(allowAutoTopicCreation))
    if 8 <= version <= 10:
        parts.append(boolean(False))
    if version >= 8:
        parts.append(boolean(False))
    if flexible:
        parts.append(b"\x00")
    return b"".join(parts)


def _partitionMetadata(reader: Reader, version: int) -> PartitionMetadata:
    flexible = version >= 9
    errorCode, index, leader = reader.int16(), reader.int32(), reader.int32()
    epoch = reader.int32() if version >= 7 else -1
    replicas = reader.int32Array(flexible)
    isr = reader.int32Array(flexible)
    offline = reader.int32Array(flexible) if version >= 5 else []
    if flexible:
        reader.taggedFields()
    return PartitionMetadata(errorCode, index, leader, epoch, replicas, isr, offline)


def _topicMetadata(reader: Reader, version: int) -> TopicMetadata:
    flexible = version >= 9
    errorCode = reader.int16()
    name = reader.nullableString(flexible) if version >= 12 else reader.string(flexible)
    topicId = reader.uuid().bytes if version >= 10 else bytes(16)
    internal = reader.boolean() if version >= 1 else False
    partitions = reader.array(lambda r: _partitionMetadata(r, version), flexible, 18)
    if version >= 8:
        reader.int32()
    if flexible:
        reader.taggedFields()
    return TopicMetadata(errorCode, name, partitions, internal, topicId)


def _brokerMetadata(reader: Reader, version: int) -> BrokerMetadata:
    flexible = version >= 9
    node, host, port = reader.int32(), reader.string(flexible), reader.int32()
    rack = reader.nullableString(flexible) if version >= 1 else None
    if flexible:
        reader.taggedFields()
    return BrokerMetadata(node, host, port, rack)


def decodeMetadataResponse(frame: bytes, version: int) -> MetadataResponse:
    """
    @param version: the version of the request it answers.
    """
    flexible = version >= 9
    reader = _bodyReader(frame, METADATA, version)
    throttle = reader.int32() if version >= 3 else 0
    brokers = reader.array(lambda r: _brokerMetadata(r, version), flexible, 10)
    clusterId = reader.nullableString(flexible) if version >= 2 else None
    controllerId = reader.int32() if version >= 1 else -1
    topics = reader.array(lambda r: _topicMetadata(r, version), flexible, 8)
    if 8 <= version <= 10:
        reader.int32()
    if flexible:
        reader.taggedFields()
    reader.expectEnd("Metadata response")
    return MetadataResponse(brokers, topics, clusterId, controllerId, throttle)


# Produce


@dataclass
class PartitionProduceResponse:
    """
    The broker's answer for one partition's batch.

    @ivar recordErrors: (batch index, message) of the records that made the
        broker drop the batch.
    """

    partition: int
    errorCode: int
    baseOffset: int
    logAppendTimeMs: int = -1
    logStartOffset: int = -1
    recordErrors: List[Tuple[int, Optional[str]]] = field(default_factory=list)
    errorMessage: Optional[str] = None


@dataclass
class ProduceResponse:
    """
    The broker's answer to a Produce request.

    @ivar topics: topic -> the answers for its partitions.
    """

    topics: Dict[str, List[PartitionProduceResponse]]
    throttleTimeMs: int = 0


def encodeProduceRequest(
    version: int,
    acks: int,
    timeoutMs: int,
    topicData: Sequence[Tuple[str, Sequence[Tuple[int, bytes]]]],
    transactionalId: Optional[str] = None,
) -> bytes:
    """
    @param acks: 0, 1, or -1 for all in-sync replicas.
    @param timeoutMs: how long the broker waits for the acknowledgements.
    @param topicData: (topic, [(partition, encoded record batches)]).
    @return: the body of a Produce request.
    """
    flexible = version >= 9
    tail = b"\x00" if flexible else b""
    # One list of parts, joined once: each record batch is copied once.
    parts = [nullableString(transactionalId, flexible), int16(acks), int32(timeoutMs),
             arrayLength(len(topicData), flexible)]
    for name, partitions in topicData:
        parts += (string(name, flexible), arrayLength(len(partitions), flexible))
        for index, records in partitions:
            parts += (int32(index), uvarint(len(records) + 1) if flexible else int32(len(records)), records, tail)
        parts.append(tail)
    parts.append(tail)
    return b"".join(parts)


def _recordError(reader: Reader, flexible: bool) -> Tuple[int, Optional[str]]:
    item = (reader.int32(), reader.nullableString(flexible))
    if flexible:
        reader.taggedFields()
    return item


def _partitionProduceResponse(reader: Reader, version: int) -> PartitionProduceResponse:
    flexible = version >= 9
    index, errorCode, baseOffset = reader.int32(), reader.int16(), reader.int64()
    appendTime = reader.int64() if version >= 2 else -1
    startOffset = reader.int64() if version >= 5 else -1
    recordErrors: List[Tuple[int, Optional[str]]] = []
    message = None
    if version >= 8:
        recordErrors = reader.array(lambda r: _recordError(r, flexible), flexible, 5)
        message = reader.nullableString(flexible)
    if flexible:
        reader.taggedFields()
    return PartitionProduceResponse(index, errorCode, baseOffset, appendTime, startOffset, recordErrors, message)


def _topicProduceResponse(reader: Reader, version: int) -> Tuple[str, List[PartitionProduceResponse]]:
    flexible = version >= 9
    name = reader.string(flexible)
    partitions = reader.array(lambda r: _partitionProduceResponse(r, version), flexible, 14)
    if flexible:
        reader.taggedFields()
    return name, partitions


def decodeProduceResponse(frame: bytes, version: int) -> ProduceResponse:
    """
    @param version: the version of the request it answers.
    """
    flexible = version >= 9
    reader = _bodyReader(frame, PRODUCE, version)
    topics: Dict[str, List[PartitionProduceResponse]] = {}
    for name, partitions in reader.array(lambda r: _topicProduceResponse(r, version), flexible, 2):
        if name in topics:
            raise KafkaProtocolError("topic %r twice in a Produce response" % (name,))
        topics[name] = partitions
    throttle = reader.int32() if version >= 1 else 0
    if flexible:
        reader.taggedFields()
    reader.expectEnd("Produce response")
    return ProduceResponse(topics, throttle)


# InitProducerId


@dataclass
class InitProducerIdResponse:
    """
    The producer id and epoch a broker gave.
    """

    errorCode: int
    producerId: int
    producerEpoch: int
    throttleTimeMs: int = 0


def encodeInitProducerIdRequest(
    version: int,
    transactionalId: Optional[str] = None,
    transactionTimeoutMs: int = 0x7FFFFFFF,
    producerId: int = -1,
    producerEpoch: int = -1,
) -> bytes:
    """
    @param transactionTimeoutMs: for a transactional id only; the Java
        client's idempotent producer sends the largest int32, the default.
    @param producerId: from version 3, the id held so far (-1 for none), to
        bump its epoch.
    @return: the body of an InitProducerId request.
    """
    flexible = version >= 2
    body = nullableString(transactionalId, flexible) + int32(transactionTimeoutMs)
    if version >= 3:
        body += int64(producerId) + int16(producerEpoch)
    if flexible:
        body += taggedFields()
    return body


def decodeInitProducerIdResponse(frame: bytes, version: int) -> InitProducerIdResponse:
    """
    @param version: the version of the request it answers.
    """
    reader = _bodyReader(frame, INIT_PRODUCER_ID, version)
    throttle, errorCode, producerId, epoch = reader.int32(), reader.int16(), reader.int64(), reader.int16()
    if version >= 2:
        reader.taggedFields()
    reader.expectEnd("InitProducerId response")
    return InitProducerIdResponse(errorCode, producerId, epoch, throttle)
