"""
The C{twistd txscales kafka-produce} command: send records to a topic with
the producer, show progress once a second, and end with a throughput and
latency summary::

    twistd -n txscales kafka-produce --dest tcp://127.0.0.1:9092 --topic t \\
        --count 100000 --size 100 --acks all

L{txscales.tap} wires it in as a subcommand.
"""

import random
from array import array
from collections import Counter
from typing import Any, Callable, Dict, Optional, Sequence, TextIO, Union

from twisted.application.service import Service
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.python import usage
from twisted.python.failure import Failure

from txscales.discovery import parseZooKeeperUri
from txscales.errors import BadDestinationError
from txscales.kafka import Kafka, KafkaProducer, RecordMetadata, UnsupportedCodecError
from txscales.kafka._cluster import parseBootstrap
from txscales.kafka._codecs import checkCodec

DESTINATIONS = "tcp://host:port[,host:port...] or zk://zkhost:port[,zkhost:port...]/path[#endpoint]"

ACKS: Dict[str, Union[int, str]] = {"0": 0, "1": 1, "all": "all", "-1": "all"}
"""The values of C{--acks}, and what the producer takes for each."""

# The least value of each number option.
_LEAST = {"count": 1, "size": 0, "keys": 0, "linger": 0, "batch-size": 1, "outstanding": 1, "delivery-timeout": 0.001}


class KafkaProduceOptions(usage.Options):
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
        [
            "metrics",
            None,
            None,
            "Also serve Prometheus metrics at /metrics on this port of 127.0.0.1 (e.g. 9990), or on this endpoint"
            " string, while the run lasts.",
        ],
    ]

    def __init__(self, localEndpoint: Callable[[str, str], str] = lambda option, value: value) -> None:
        """
        @param localEndpoint: reads C{--metrics} as L{txscales.tap} reads
            its listening options: C{(option, value) -> endpoint string}.
        """
        usage.Options.__init__(self)
        self._localEndpoint = localEndpoint

    def postOptions(self) -> None:
        if not self["topic"]:
            raise usage.UsageError("--topic is required")
        for name, least in _LEAST.items():
            if self[name] < least:
                raise usage.UsageError("--%s must be %s or more, not %s" % (name, least, self[name]))
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
        if self["metrics"] is not None:
            self["metrics"] = self._localEndpoint("--metrics", self["metrics"])


def percentile(sortedValues: Sequence[float], fraction: float) -> float:
    """
    @return: the value at C{fraction} (0..1) of C{sortedValues}, or 0.0.
    """
    if not len(sortedValues):
        return 0.0
    return float(sortedValues[min(len(sortedValues) - 1, int(round(fraction * (len(sortedValues) - 1))))])


class ProduceRun:
    """
    Send C{count} records of C{size} bytes to C{topic}, at most
    C{outstanding} awaiting their acknowledgement at once, and count the
    outcomes.

    Record I's value (L{value}) is C{b"I "} followed by filler bytes,
    C{size} bytes in all.

    @ivar acknowledged: records acknowledged.
    @ivar bytes: bytes of their keys and values.
    @ivar failures: records failed, by error class (a broker's error code
        without a class of its own is C{KafkaError_NAME}).
    @ivar latencies: seconds from send to acknowledgement, per record
        acknowledged.
    @ivar elapsed: seconds from the first send to the last outcome.
    @ivar interrupted: whether L{interrupt} ended the run early.
    """

    def __init__(self, producer: KafkaProducer, topic: str, count: int, size: int, clock: Any, out: TextIO,
                 keys: int = 0, outstanding: int = 10000, progressInterval: float = 1.0) -> None:
        """
        @param clock: the C{IReactorTime} timing the run.
        @param out: where progress lines go.
        @param keys: how many keys the records spread over (0: no key).
        @param progressInterval: seconds between progress lines.
        """
        self._producer = producer
        self._topic = topic
        self._count = count
        self._size = size
        self._keys = keys
        self._outstanding = outstanding
        self._clock = clock
        self._out = out
        self._interval = progressInterval
        self._filler = random.Random(size).randbytes(size)
        self._next = 0
        self._pending = 0
        self._filling = False
        self._start = 0.0
        self._last = (0.0, 0, 0)
        self._done: "Deferred[ProduceRun]" = Deferred()
        self._progress = LoopingCall(self._report)
        self._progress.clock = clock
        self.acknowledged = 0
        self.bytes = 0
        self.failures: "Counter[str]" = Counter()
        self.latencies = array("d")
        self.elapsed = 0.0
        self.interrupted = False

    @property
    def failed(self) -> int:
        """
        Records that failed.
        """
        return sum(self.failures.values())

    def run(self) -> "Deferred[ProduceRun]":
        """
        @return: a Deferred firing with this run once every record was
            acknowledged or failed.
        """
        self._start = self._clock.seconds()
        self._last = (self._start, 0, 0)
        self._progress.start(self._interval, now=False)
        self._fill()
        return self._done

    def _fill(self) -> None:
        # A send may settle at once (a record refused): loop, not recurse.
        if self._filling:
            return
        self._filling = True
        try:
            while self._next < self._count and self._pending < self._outstanding:
                i = self._next
                self._next += 1
                self._pending += 1
                value = self.value(i)
                key = b"%d" % (i % self._keys,) if self._keys else None
                self._producer.send(self._topic, value, key=key).addCallbacks(
                    self._acknowledged, self._failed, (self._clock.seconds(), len(value) + len(key or b"")))
        finally:
            self._filling = False
        if not self._pending and not self._done.called:
            self._finish()

    def value(self, index: int) -> bytes:
        """
        @return: the value of record C{index}.
        """
        prefix = b"%d " % (index,)
        return (prefix + self._filler[len(prefix):])[:self._size]

    def _acknowledged(self, metadata: RecordMetadata, sentAt: float, size: int) -> None:
        self.latencies.append(self._clock.seconds() - sentAt)
        self.acknowledged += 1
        self.bytes += size
        self._settled()

    def _failed(self, failure: Failure) -> None:
        self.failures[type(failure.value).__name__] += 1
        self._settled()

    def _settled(self) -> None:
        self._pending -= 1
        self._fill()

    def interrupt(self) -> None:
        """
        End the run now, with the records settled so far: send no more.
        """
        if not self._done.called:
            self.interrupted = True
            self._next = self._count
            self._finish()

    def _finish(self) -> None:
        self.elapsed = self._clock.seconds() - self._start
        self._progress.stop()
        self._done.callback(self)

    def _report(self) -> None:
        now = self._clock.seconds()
        then, acknowledged, sent = self._last
        self._last = (now, self.acknowledged, self.bytes)
        seconds = now - then
        self._out.write("progress: %d/%d records acknowledged, %d failed, %.0f records/s, %.2f MB/s\n" % (
            self.acknowledged, self._count, self.failed, (self.acknowledged - acknowledged) / seconds,
            (self.bytes - sent) / seconds / 1e6))
        self._out.flush()

    def summary(self) -> str:
        """
        @return: a few lines describing the run: counts, throughput,
            latency percentiles and failures by type.
        """
        latencies = sorted(self.latencies)
        ms: Callable[[float], float] = lambda fraction: percentile(latencies, fraction) * 1000.0
        rate = self.elapsed and self.acknowledged / self.elapsed
        return (
            "records=%d acknowledged=%d failed=%d%s elapsed=%.3fs\n"
            "throughput: %.0f records/s, %.2f MB/s\n"
            "latency ms: p50=%.2f p99=%.2f max=%.2f\n"
            "errors: %s\n"
            % (
                self._count, self.acknowledged, self.failed,
                " pending=%d (interrupted)" % (self._pending,) if self.interrupted else "", self.elapsed,
                rate, self.elapsed and self.bytes / self.elapsed / 1e6,
                ms(0.5), ms(0.99), ms(1.0),
                ", ".join("%s=%d" % item for item in sorted(self.failures.items())) or "none",
            )
        )


class KafkaProduceService(Service):
    """
    Run a L{ProduceRun} when started, print its summary and a C{RESULT:}
    line, close the producer, then stop the reactor.  Stopped before the
    run ended (SIGINT, SIGTERM), it prints the summary of the records
    settled so far and C{RESULT: INTERRUPTED}.

    @ivar status: the exit status once the run ended: 0 after
        C{RESULT: OK}, 1 after C{RESULT: FAILED} or C{INTERRUPTED}; None
        before.
    """

    status: Optional[int] = None
    _run: Optional[ProduceRun] = None
    _stopping = False

    def __init__(self, options: usage.Options, reactor: Any, out: TextIO,
                 setExitStatus: Optional[Callable[[int], None]] = None, registry: Any = None) -> None:
        """
        @param options: the parsed L{KafkaProduceOptions}.
        @param out: where to print (a text file).
        @param setExitStatus: called with L{status} before the reactor is
            stopped, or None.
        @param registry: the prometheus C{CollectorRegistry} of the
            producer's metrics (default: the global one).
        """
        self._options = options
        self._reactor = reactor
        self._out = out
        self._setExitStatus = setExitStatus
        self._registry = registry

    def startService(self) -> None:
        Service.startService(self)
        self._reactor.callWhenRunning(self._go)

    def stopService(self) -> None:
        Service.stopService(self)
        self._stopping = True
        if self._run is not None:
            self._run.interrupt()

    @inlineCallbacks
    def _go(self) -> Any:
        options = self._options
        self._out.write(
            "txscales kafka-produce: %d records of %d bytes to %r at %s, acks=%s, linger %g ms, compression %s\n"
            % (options["count"], options["size"], options["topic"], options["dest"], options["acks"],
               options["linger"], options["compression"]))
        self._out.flush()
        producer = None
        failed = True
        try:
            producer = Kafka.newProducer(
                options["dest"], acks=options["acks"], lingerMs=options["linger"], batchSize=options["batch-size"],
                compression=options["compression"], deliveryTimeout=options["delivery-timeout"],
                clientId="txscales-kafka-produce", registry=self._registry, reactor=self._reactor)
            self._run = ProduceRun(producer, options["topic"], options["count"], options["size"], self._reactor,
                                   self._out, options["keys"], options["outstanding"])
            run = yield self._run.run()
            self._out.write(run.summary())
            failed = run.failed > 0 or run.interrupted
            self._out.write("RESULT: %s\n" % ("INTERRUPTED" if run.interrupted else "FAILED" if failed else "OK",))
        except Exception as e:
            self._out.write("RESULT: FAILED (%s: %s)\n" % (type(e).__name__, e))
        self._out.flush()
        try:
            if producer is not None and not self._stopping:
                yield producer.close()
        finally:
            self.status = 1 if failed else 0
            if self._setExitStatus is not None:
                self._setExitStatus(self.status)
            if not self._stopping:
                self._reactor.stop()
