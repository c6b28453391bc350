"""
What txscales' Prometheus collectors share.  A collector keeps plain
numbers, one series of them per label, updated by a few additions per
request (a prometheus_client metric takes a lock and checks its arguments
on every update); the numbers become samples only when the registry is
collected.  A registry refuses a second collector with the same metric
names, so each kind of collector is registered once per registry and its
clients share it.
"""

import weakref
from bisect import bisect_left
from typing import Callable, Dict, Generic, List, Sequence, Tuple, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.utils import floatToGoString

_S = TypeVar("_S")
_C = TypeVar("_C")


class Histogram:
    """
    Bucket counts and a sum, for one series of a histogram.

    @ivar bounds: the buckets' upper bounds, ascending.
    @ivar buckets: how many values fell in each bucket (one more than the
        bounds: the last counts values over every bound).
    @ivar sum: the sum of the values.
    """

    __slots__ = ("bounds", "buckets", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """
        Count C{value}.
        """
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> List[Tuple[str, float]]:
        """
        @return: the C{(bound, count of values up to it)} pairs of a
            Prometheus histogram, the last bound C{+Inf}.
        """
        out: List[Tuple[str, float]] = []
        total = 0
        for bound, count in zip([floatToGoString(b) for b in self.bounds] + ["+Inf"], list(self.buckets)):
            total += count
            out.append((bound, total))
        return out


class Labelled(Generic[_S]):
    """
    The series of a collector, one per label, made at the first use of a
    label.
    """

    def __init__(self, makeSeries: Callable[[], _S]) -> None:
        self.series: Dict[str, _S] = {}
        self._makeSeries = makeSeries

    def seriesFor(self, label: str) -> _S:
        """
        @return: the series of C{label}.
        """
        series = self.series.get(label)
        if series is None:
            series = self.series[label] = self._makeSeries()
        return series


def registered(collectors: "weakref.WeakKeyDictionary[CollectorRegistry, _C]", registry: CollectorRegistry,
               makeCollector: Callable[[], _C]) -> _C:
    """
    @param collectors: the collectors of one kind, by registry (held
        weakly: a registry's id is reused once it is collected).
    @return: C{registry}'s collector of that kind, made and registered in
        it at the first call.
    """
    collector = collectors.get(registry)
    if collector is None:
        collector = collectors[registry] = makeCollector()
        registry.register(collector)  # type: ignore[arg-type]
    return collector
