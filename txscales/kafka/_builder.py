"""
L{KafkaProducerBuilder}: a producer's options set one by one, as the
ThriftMux client's builder does.
"""

from random import Random
from typing import TYPE_CHECKING, Any, Dict, Optional, Union

from txscales.errors import BadDestinationError
from txscales.kafka._options import checkOption

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from txscales.kafka._producer import KafkaProducer


class KafkaProducerBuilder:
    """
    Build a Kafka producer step by step; each setter checks its value
    (raising L{txscales.errors.BadOptionError} for a bad one) and returns
    the builder, and L{build} makes the producer.

        >>> producer = (Kafka.newBuilder().dest("tcp://127.0.0.1:9092")
        ...             .acks(1).lingerMs(10).partitioner("roundrobin").build())

    Each setter is an option of L{txscales.kafka.Kafka.newProducer}, which
    documents it; an option not set keeps its default there.
    """

    def __init__(self) -> None:
        self._dest: Optional[str] = None
        self._options: Dict[str, Any] = {}

    def _set(self, name: str, value: Any) -> "KafkaProducerBuilder":
        checkOption(name, value)
        self._options[name] = value
        return self

    def dest(self, dest: str) -> "KafkaProducerBuilder":
        """
        Set the bootstrap brokers: C{tcp://host:port[,host:port...]}, or a
        discovery URI (C{zk://...}) whose members are brokers.
        """
        if not isinstance(dest, str):
            raise BadDestinationError("a Kafka destination is a str, not %r" % (dest,))
        self._dest = dest
        return self

    def acks(self, acks: Union[int, str]) -> "KafkaProducerBuilder":
        """
        Set the acknowledgement asked for: 0, 1 or C{"all"}.
        """
        return self._set("acks", acks)

    def lingerMs(self, milliseconds: float) -> "KafkaProducerBuilder":
        """
        Set how long a batch waits for more records, in milliseconds.
        """
        return self._set("lingerMs", milliseconds)

    def batchSize(self, size: int) -> "KafkaProducerBuilder":
        """
        Set the bytes of records a partition's batch may hold.
        """
        return self._set("batchSize", size)

    def maxRequestSize(self, size: int) -> "KafkaProducerBuilder":
        """
        Set the largest Produce request, in bytes.
        """
        return self._set("maxRequestSize", size)

    def bufferMemory(self, size: int) -> "KafkaProducerBuilder":
        """
        Set the bytes of records the producer holds at most.
        """
        return self._set("bufferMemory", size)

    def maxBlock(self, seconds: float) -> "KafkaProducerBuilder":
        """
        Set how long a record waits for room in C{bufferMemory}.
        """
        return self._set("maxBlock", seconds)

    def compression(self, codec: str) -> "KafkaProducerBuilder":
        """
        Set the codec: C{"none"}, C{"gzip"}, C{"snappy"}, C{"lz4"} or
        C{"zstd"} (checked now: L{txscales.kafka.UnsupportedCodecError}).
        """
        return self._set("compression", codec)

    def requestTimeout(self, seconds: float) -> "KafkaProducerBuilder":
        """
        Set how long a request waits for its response.
        """
        return self._set("requestTimeout", seconds)

    def deliveryTimeout(self, seconds: float) -> "KafkaProducerBuilder":
        """
        Set how long a record may take, retries included.
        """
        return self._set("deliveryTimeout", seconds)

    def retryBackoff(self, seconds: float) -> "KafkaProducerBuilder":
        """
        Set the wait between retries.
        """
        return self._set("retryBackoff", seconds)

    def maxInFlight(self, count: int) -> "KafkaProducerBuilder":
        """
        Set the Produce requests in flight per broker, and an idempotent
        producer's batches in flight per partition.
        """
        return self._set("maxInFlight", count)

    def idempotence(self, enabled: Optional[bool]) -> "KafkaProducerBuilder":
        """
        Require idempotence (True), turn it off (False), or use it when
        the broker can (None, the default).
        """
        return self._set("idempotence", enabled)

    def partitioner(self, name: Optional[str]) -> "KafkaProducerBuilder":
        """
        Use the partitioner plugin C{name} (C{"murmur2"}, C{"sticky"},
        C{"roundrobin"} or an installed plugin's), found when the producer
        is built; None for Kafka's default.
        """
        return self._set("partitioner", name)

    def clientId(self, clientId: Optional[str]) -> "KafkaProducerBuilder":
        """
        Set the client id of every request.
        """
        return self._set("clientId", clientId)

    def connectTimeout(self, seconds: float) -> "KafkaProducerBuilder":
        """
        Set how long connecting to a broker may take.
        """
        return self._set("connectTimeout", seconds)

    def discoveryTimeout(self, seconds: float) -> "KafkaProducerBuilder":
        """
        Set how long a discovery C{dest} may take to name the first brokers.
        """
        return self._set("discoveryTimeout", seconds)

    def metadataMaxAge(self, seconds: float) -> "KafkaProducerBuilder":
        """
        Set the age at which the metadata is refreshed.
        """
        return self._set("metadataMaxAge", seconds)

    def maxFrameSize(self, size: int) -> "KafkaProducerBuilder":
        """
        Set the largest response accepted, in bytes.
        """
        return self._set("maxFrameSize", size)

    def stats(self, enabled: bool = True, registry: "Optional[CollectorRegistry]" = None) -> "KafkaProducerBuilder":
        """
        Count in prometheus metrics (on by default), in C{registry} when
        given (see L{registry}).
        """
        self._set("stats", enabled)
        return self if registry is None else self._set("registry", registry)

    def registry(self, registry: "Optional[CollectorRegistry]") -> "KafkaProducerBuilder":
        """
        Count in this prometheus C{CollectorRegistry} (None: the global
        one).
        """
        return self._set("registry", registry)

    def label(self, label: str) -> "KafkaProducerBuilder":
        """
        Name the producer in metrics (default: its client id).
        """
        return self._set("label", label)

    def reactor(self, reactor: Any) -> "KafkaProducerBuilder":
        """
        Use C{reactor} (and its clock) instead of the global reactor.
        """
        return self._set("reactor", reactor)

    def random(self, random: Random) -> "KafkaProducerBuilder":
        """
        Use C{random} (a C{random.Random}) for the partitioner's random
        choices.
        """
        return self._set("random", random)

    def build(self) -> "KafkaProducer":
        """
        @return: the producer.
        @raise BadDestinationError: without a valid destination.
        @raise txscales.errors.UnknownPluginError: for a partitioner no
            plugin is named.
        """
        if self._dest is None:
            raise BadDestinationError("no destination set: call .dest(uri) first")
        from txscales.kafka import Kafka

        return Kafka.newProducer(self._dest, **self._options)
