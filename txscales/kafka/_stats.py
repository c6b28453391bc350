"""
The Kafka producer's Prometheus metrics.

A producer counts per batch and per Produce request, never per record:
each count is a few additions to plain numbers, which become Prometheus
samples only when the registry is collected (as L{txscales.stats} does for
requests).  Producers with the same label share their series; the buffer
gauge adds up the room left in every open producer of the label, read when
the registry is collected.
"""

import weakref
from typing import Any, Callable, Dict, Optional, Tuple

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from twisted.internet.defer import Deferred

from txscales._metrics import Histogram, Labelled, registered
from txscales.kafka._errors import KafkaError

PREFIX = "txscales_kafka_producer_"

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Bounds, in seconds, of the request latency histogram."""

BATCH_SIZE_BUCKETS = (128, 512, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
"""Bounds, in bytes, of the batch size histogram."""

RATIO_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""Bounds of the compression ratio histogram (bytes sent per byte of
uncompressed batch: 1 without compression)."""

# The collector of each registry, found again when another producer is made.
_collectors: "weakref.WeakKeyDictionary[CollectorRegistry, _ProducerMetrics]" = weakref.WeakKeyDictionary()


class _Series:
    """
    The counts of one label.
    """

    def __init__(self) -> None:
        self.records = 0
        self.bytes = 0
        self.requests = 0
        self.answered = 0
        self.batchSize = Histogram(BATCH_SIZE_BUCKETS)
        self.ratio = Histogram(RATIO_BUCKETS)
        self.latency = Histogram(LATENCY_BUCKETS)
        self.retries: Dict[Tuple[str, str], int] = {}
        self.errors: Dict[Tuple[str, str], int] = {}
        self.producers: "weakref.WeakSet[Any]" = weakref.WeakSet()


_Families = Tuple[
    CounterMetricFamily, CounterMetricFamily, HistogramMetricFamily, HistogramMetricFamily, CounterMetricFamily,
    GaugeMetricFamily, HistogramMetricFamily, CounterMetricFamily, CounterMetricFamily, GaugeMetricFamily,
]


class _ProducerMetrics(Labelled[_Series]):
    """
    A Prometheus collector for the producers of one registry, every label.
    """

    def __init__(self) -> None:
        Labelled.__init__(self, _Series)

    def describe(self) -> _Families:
        return self._families()

    def _families(self) -> _Families:
        p, client, errors = PREFIX, ["client"], ["client", "code", "error"]
        return (
            CounterMetricFamily(p + "records", "Records acknowledged (written, with acks 0).", labels=client),
            CounterMetricFamily(p + "bytes", "Bytes of the record batches acknowledged, as sent.", labels=client),
            HistogramMetricFamily(p + "batch_size_bytes", "Size of the record batches acknowledged, as sent.",
                                  labels=client),
            HistogramMetricFamily(p + "compression_ratio",
                                  "Bytes sent per byte of uncompressed batch (1 without compression).",
                                  labels=client),
            CounterMetricFamily(p + "requests", "Produce requests sent.", labels=client),
            GaugeMetricFamily(p + "requests_pending", "Produce requests awaiting their answer.", labels=client),
            HistogramMetricFamily(p + "request_latency_seconds",
                                  "Seconds from writing a Produce request to its answer (or failure).",
                                  labels=client),
            CounterMetricFamily(p + "record_retries",
                                "Records to be sent again after an error, by Kafka error code and name.",
                                labels=errors),
            CounterMetricFamily(p + "record_errors", "Records that failed, by Kafka error code and name.",
                                labels=errors),
            GaugeMetricFamily(p + "buffer_available_bytes", "Bytes of bufferMemory left in the open producers.",
                              labels=client),
        )

    def collect(self) -> _Families:
        families = self._families()
        (records, sent, batchSize, ratio, requests, pending, latency, retries, errors, buffer) = families
        for label, s in list(self.series.items()):
            records.add_metric([label], s.records)
            sent.add_metric([label], s.bytes)
            batchSize.add_metric([label], s.batchSize.cumulative(), s.batchSize.sum)
            ratio.add_metric([label], s.ratio.cumulative(), s.ratio.sum)
            requests.add_metric([label], s.requests)
            pending.add_metric([label], s.requests - s.answered)
            latency.add_metric([label], s.latency.cumulative(), s.latency.sum)
            for (code, name), count in sorted(list(s.retries.items())):
                retries.add_metric([label, code, name], count)
            for (code, name), count in sorted(list(s.errors.items())):
                errors.add_metric([label, code, name], count)
            buffer.add_metric([label], sum(p.bufferAvailable() for p in list(s.producers)))
        return families


def errorLabels(error: object) -> Tuple[str, str]:
    """
    @return: the C{code} and C{error} labels of C{error}: a broker's error
        code and its name in Kafka's sources, or C{"none"} and the class
        name of an error of the producer itself (a lost connection, a
        delivery timeout).
    """
    if isinstance(error, KafkaError):
        return str(error.code), error.name
    return "none", type(error).__name__


class ProducerStats:
    """
    The metrics of a producer (or of the producers sharing a label).

    @ivar label: the C{client} label of its series.
    """

    def __init__(self, label: str, clock: Any, registry: Optional[CollectorRegistry] = None) -> None:
        """
        @param label: the producer's name in metrics.
        @param clock: the C{IReactorTime} timing requests.
        @param registry: the prometheus C{CollectorRegistry} (default: the
            global one).
        """
        collector = registered(_collectors, registry if registry is not None else REGISTRY, _ProducerMetrics)
        self.label = label
        self._series = collector.seriesFor(label)
        self._seconds: Callable[[], float] = clock.seconds

    def watch(self, producer: Any) -> None:
        """
        Add C{producer}'s free buffer to the buffer gauge.

        @param producer: has C{bufferAvailable()}; held weakly.
        """
        self._series.producers.add(producer)

    def requestSent(self, answer: "Optional[Deferred[Any]]") -> None:
        """
        A Produce request was written.

        @param answer: the Deferred of its answer, timed until it fires;
            None for a request that gets no answer (acks 0).
        """
        s = self._series
        s.requests += 1
        if answer is None:
            s.answered += 1
        else:
            answer.addBoth(self._answered, self._seconds())

    def _answered(self, result: Any, start: float) -> Any:
        s = self._series
        s.answered += 1
        s.latency.observe(self._seconds() - start)
        return result

    def batchSent(self, records: int, size: int, uncompressed: int) -> None:
        """
        A batch was acknowledged.

        @param records: how many records it held.
        @param size: its size as sent, in bytes.
        @param uncompressed: its size before compression, in bytes.
        """
        s = self._series
        s.records += records
        s.bytes += size
        s.batchSize.observe(size)
        s.ratio.observe(size / uncompressed if uncompressed else 1.0)

    def retried(self, error: object, records: int) -> None:
        """
        A batch of C{records} records is to be sent again after C{error}.
        """
        key = errorLabels(error)
        self._series.retries[key] = self._series.retries.get(key, 0) + records

    def failed(self, error: object, records: int) -> None:
        """
        A batch of C{records} records failed with C{error}.
        """
        key = errorLabels(error)
        self._series.errors[key] = self._series.errors.get(key, 0) + records
