"""
The C{twistd txscales kafka-produce} command: send records to a topic with
the producer, show progress once a second, and end with a throughput and
latency summary::

    twistd -n txscales kafka-produce --dest tcp://127.0.0.1:9092 --topic t \\
        --count 100000 --size 100 --acks all

L{txscales.tap} wires it in as a subcommand.
"""

import random
from typing import Any, Dict, TextIO, Tuple, Union

from twisted.internet.defer import Deferred
from twisted.python import usage

from txscales._loadrun import ADMIN_PARAMETER, DESTINATIONS, METRICS_PARAMETER, LoadOptions, LoadRun, LoadService
from txscales.discovery import parseZooKeeperUri
from txscales.errors import BadDestinationError
from txscales.kafka import Kafka, KafkaProducer, RecordMetadata, UnsupportedCodecError
from txscales.kafka._cluster import parseBootstrap
from txscales.kafka._codecs import checkCodec

ACKS: Dict[str, Union[int, str]] = {"0": 0, "1": 1, "all": "all", "-1": "all"}
"""The values of C{--acks}, and what the producer takes for each."""

class KafkaProduceOptions(LoadOptions):
    """
    Options of C{twistd txscales kafka-produce}.  They are all checked
    here, so that a wrong one is a usage error and not a failed run.
    """

    synopsis = "--dest URI --topic T [--count N] [--size B] [--acks 0|1|all]"
    optParameters = [
        ["dest", "d", "tcp://127.0.0.1:9092", "Bootstrap brokers: %s." % (DESTINATIONS,)],
        ["topic", "t", None, "The topic to write to; it must exist."],
        ["count", "n", 10000, "Records to send.", int],
        ["size", "s", 100, "Bytes of each record's value.", int],
        ["keys", "k", 0, "Keys to spread the records over (record I gets key I mod K); 0: no key.", int],
        ["acks", "a", "all", "Acknowledgements: 0 (none), 1 (the leader's) or all (every in-sync replica's)."],
        ["linger", None, 5.0, "Milliseconds a batch waits for more records.", float],
        ["batch-size", None, 16384, "Bytes of records per partition batch.", int],
        ["compression", None, "none", "Compression codec: none, gzip, snappy, lz4 or zstd."],
        ["outstanding", None, 10000, "Records awaiting their acknowledgement at once.", int],
        ["delivery-timeout", None, 30.0, "Seconds a record may take, retries included.", float],
        METRICS_PARAMETER,
        ADMIN_PARAMETER,
    ]
    least = {
        "count": 1, "size": 0, "keys": 0, "linger": 0, "batch-size": 1, "outstanding": 1, "delivery-timeout": 0.001,
    }

    def postOptions(self) -> None:
        if not self["topic"]:
            raise usage.UsageError("--topic is required")
        self.checkLeast()
        dest = self["dest"]
        try:
            if "://" not in dest or dest.startswith("tcp://"):
                parseBootstrap(dest)
            elif dest.startswith("zk://"):
                parseZooKeeperUri(dest)
        except BadDestinationError as e:
            raise usage.UsageError("--dest: %s (expected %s)" % (e, DESTINATIONS))
        if self["acks"] not in ACKS:
            raise usage.UsageError("--acks must be 0, 1 or all, not %r" % (self["acks"],))
        self["acks"] = ACKS[self["acks"]]
        try:
            checkCodec(self["compression"])
        except UnsupportedCodecError as e:
            raise usage.UsageError("--compression: %s" % (e,))
        self.readMetrics()


class ProduceRun(LoadRun):
    """
    Send C{count} records of C{size} bytes to C{topic}, at most
    C{outstanding} awaiting their acknowledgement at once, and count the
    outcomes.

    Record I's value (L{value}) is C{b"I "} followed by filler bytes,
    C{size} bytes in all.

    @ivar bytes: bytes of the acknowledged records' keys and values.
    @ivar failures: records failed, by error class (a broker's error code
        without a class of its own is C{KafkaError_NAME}).
    @ivar latencies: seconds from send to acknowledgement, per record
        acknowledged.
    @ivar elapsed: seconds from the first send to the last outcome.
    @ivar interrupted: whether C{interrupt()} ended the run early.
    """

    def __init__(self, producer: KafkaProducer, topic: str, count: int, size: int, clock: Any, out: TextIO,
                 keys: int = 0, outstanding: int = 10000, progressInterval: float = 1.0) -> None:
        """
        @param clock: the C{IReactorTime} timing the run.
        @param out: where progress lines go.
        @param keys: how many keys the records spread over (0: no key).
        @param progressInterval: seconds between progress lines.
        """
        LoadRun.__init__(self, count, outstanding, clock, out, progressInterval)
        self._producer = producer
        self._topic = topic
        self._size = size
        self._keys = keys
        self._filler = random.Random(size).randbytes(size)
        self.bytes = 0

    @property
    def acknowledged(self) -> int:
        """
        Records acknowledged.
        """
        return self.succeeded

    def _send(self, index: int) -> None:
        value = self.value(index)
        key = b"%d" % (index % self._keys,) if self._keys else None
        self._producer.send(self._topic, value, key=key).addCallbacks(
            self._acknowledged, self._failed, (self._clock.seconds(), len(value) + len(key or b"")))

    def value(self, index: int) -> bytes:
        """
        @return: the value of record C{index}.
        """
        prefix = b"%d " % (index,)
        return (prefix + self._filler[len(prefix):])[:self._size]

    def _acknowledged(self, metadata: RecordMetadata, sentAt: float, size: int) -> None:
        self.bytes += size
        self._succeeded(sentAt)

    def _progressCounts(self) -> Tuple[int, ...]:
        return (self.acknowledged, self.bytes)

    def _progressLine(self, seconds: float, before: Tuple[int, ...]) -> str:
        acknowledged, sent = before
        return "progress: %d/%d records acknowledged, %d failed, %.0f records/s, %.2f MB/s\n" % (
            self.acknowledged, self._count, self.failed, (self.acknowledged - acknowledged) / seconds,
            (self.bytes - sent) / seconds / 1e6)

    def summary(self) -> str:
        """
        @return: a few lines describing the run: counts, throughput,
            latency percentiles and failures by type.
        """
        rate = self.elapsed and self.acknowledged / self.elapsed
        p50, p99, top = self.latenciesMs((0.5, 0.99, 1.0))
        return (
            "records=%d acknowledged=%d failed=%d%s elapsed=%.3fs\n"
            "throughput: %.0f records/s, %.2f MB/s\n"
            "latency ms: p50=%.2f p99=%.2f max=%.2f\n"
            % (
                self._count, self.acknowledged, self.failed, self.interruptedNote(), self.elapsed,
                rate, self.elapsed and self.bytes / self.elapsed / 1e6,
                p50, p99, top,
            )
        ) + self.errorsLine()


class KafkaProduceService(LoadService[ProduceRun]):
    """
    Run a L{ProduceRun} when started, print its summary and a C{RESULT:}
    line, close the producer, then stop the reactor.  Stopped before the
    run ended (SIGINT, SIGTERM), it prints the summary of the records
    settled so far and C{RESULT: INTERRUPTED}.

    Its C{options} are the parsed L{KafkaProduceOptions}; its C{registry}
    is the prometheus C{CollectorRegistry} of the producer's metrics.
    """

    def _banner(self) -> str:
        options = self._options
        return (
            "txscales kafka-produce: %d records of %d bytes to %r at %s, acks=%s, linger %g ms, compression %s\n"
            % (options["count"], options["size"], options["topic"], options["dest"], options["acks"],
               options["linger"], options["compression"]))

    def _connect(self) -> KafkaProducer:
        options = self._options
        return Kafka.newProducer(
            options["dest"], acks=options["acks"], lingerMs=options["linger"], batchSize=options["batch-size"],
            compression=options["compression"], deliveryTimeout=options["delivery-timeout"],
            clientId="txscales-kafka-produce", registry=self._registry, reactor=self._reactor)

    def _measure(self, producer: KafkaProducer) -> "Deferred[ProduceRun]":
        options = self._options
        self._run = ProduceRun(producer, options["topic"], options["count"], options["size"], self._reactor,
                               self._out, options["keys"], options["outstanding"])
        return self._run.run()
