"""
Metrics for clients and servers, exported with prometheus_client.

Every client and server has a label; its metrics carry it
(C{client="..."} or C{server="..."}).  Metrics live in a prometheus
C{CollectorRegistry} (the global one unless another is given), so that
C{prometheus_client.generate_latest(registry)} or the twistd C{--metrics}
page exports them.
"""

import time
import weakref
from bisect import bisect_left
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.samples import Sample
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import Site

from txscales._listening import ListeningService
from txscales._metrics import Histogram, Labelled

_T = TypeVar("_T")

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# The collectors of each registry, by side: {registry: {side: family}}.
# A registry refuses a second collector with the same metric names, so the
# clients (or servers) of one registry share their side's family; finding it
# here also makes a ClientStats in 3 us instead of the 70 us of building and
# registering one (measured).  It is read when a Stats is made, never per
# call: benchmarks/hotpath.py measures the same cost per call (thriftmux,
# about 12 us client side and 6 us server side) with this cache keyed by
# id(registry) or weakly.  Weakly, because an id is reused once its object
# is collected: a later registry would get a collected one's collectors, and
# none registered in itself.
_families: "weakref.WeakKeyDictionary[CollectorRegistry, Dict[str, Dict[str, Any]]]" = weakref.WeakKeyDictionary()

_Families = Tuple[
    CounterMetricFamily, CounterMetricFamily, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
]


class _Series:
    """
    The request counts of one label: plain numbers, updated on every
    request and read only when the registry is collected.
    """

    __slots__ = ("requests", "finished", "success", "failures", "latency", "created", "failuresCreated")

    def __init__(self) -> None:
        self.requests = 0
        self.finished = 0
        self.success = 0
        self.failures: Dict[str, int] = {}
        self.failuresCreated: Dict[str, float] = {}
        self.latency = Histogram(_LATENCY_BUCKETS)
        self.created = time.time()


class _RequestMetrics(Labelled[_Series]):
    """
    A prometheus collector for one side's request metrics (requests,
    success, failures, pending, latency), every label in one registry.

    Counting a request is a few additions to plain numbers: a
    prometheus_client metric takes a lock and checks its arguments on every
    update, which costs more than the rest of the call's bookkeeping.  The
    numbers become prometheus samples when the registry is collected, with
    the names, types and labels the prometheus_client metrics would have.
    """

    def __init__(self, side: str) -> None:
        Labelled.__init__(self, _Series)
        self._side = side
        self._prefix = "txscales_%s_" % (side,)

    def _families(self) -> _Families:
        prefix, side = self._prefix, self._side
        return (
            CounterMetricFamily(prefix + "requests", "Requests started.", labels=[side]),
            CounterMetricFamily(prefix + "success", "Requests that succeeded.", labels=[side]),
            CounterMetricFamily(prefix + "failures", "Requests that failed, by error class.", labels=[side, "error"]),
            GaugeMetricFamily(prefix + "pending", "Requests outstanding.", labels=[side]),
            HistogramMetricFamily(prefix + "request_latency_seconds", "Request latency.", labels=[side]),
        )

    def describe(self) -> _Families:
        return self._families()

    def collect(self) -> _Families:
        requests, success, failures, pending, latency = families = self._families()
        for label, s in list(self.series.items()):
            requests.add_metric([label], s.requests, created=s.created)
            success.add_metric([label], s.success, created=s.created)
            for error, count in list(s.failures.items()):
                failures.add_metric([label, error], count, created=s.failuresCreated[error])
            pending.add_metric([label], s.requests - s.finished)
            latency.add_metric([label], s.latency.cumulative(), s.latency.sum)
            latency.samples.append(Sample(latency.name + "_created", {self._side: label}, s.created, None, None))
        return families


def _metrics(registry: CollectorRegistry, side: str) -> Dict[str, Any]:
    families = _families.get(registry)
    if families is None:
        families = _families[registry] = {}
    family = families.get(side)
    if family is None:
        label = [side]
        prefix = "txscales_%s_" % (side,)
        requestMetrics = _RequestMetrics(side)
        registry.register(requestMetrics)
        family = {"requests": requestMetrics}
        if side == "client":
            family.update(
                requeues=Counter(prefix + "retries_requeues", "Requests sent again to another endpoint.", label, registry=registry),
                budgetExhausted=Counter(
                    prefix + "retries_budget_exhausted", "Requeues refused by the retry budget.", label, registry=registry
                ),
                budget=Gauge(prefix + "retries_budget", "Retries the budget allows now.", label, registry=registry),
                connects=Counter(prefix + "connects", "Connections made.", label, registry=registry),
                size=Gauge(prefix + "loadbalancer_size", "Endpoints in the balancer.", label, registry=registry),
                available=Gauge(prefix + "loadbalancer_available", "Endpoints open.", label, registry=registry),
                busy=Gauge(prefix + "loadbalancer_busy", "Endpoints busy.", label, registry=registry),
                closed=Gauge(prefix + "loadbalancer_closed", "Endpoints closed.", label, registry=registry),
                panicked=Gauge(prefix + "loadbalancer_panicked", "Picks that found no open endpoint.", label, registry=registry),
            )
        families[side] = family
    return family


class Stats:
    """
    The request metrics of one client or server.

    @param side: C{"client"} or C{"server"}.
    @param label: the client's or server's name.
    @param registry: the prometheus C{CollectorRegistry}.

    @ivar series: the plain numbers these methods update, read when the
        registry is scraped (a hot path may update them in place, as
        L{succeeded} does).
    """

    def __init__(self, side: str, label: str, registry: Optional[CollectorRegistry] = None) -> None:
        self.label = label
        self._family = family = _metrics(registry if registry is not None else REGISTRY, side)
        self.series = self._series = family["requests"].seriesFor(label)

    def started(self) -> None:
        """
        A request started.
        """
        self._series.requests += 1

    def succeeded(self, latency: float) -> None:
        """
        A request succeeded after C{latency} seconds.
        """
        s = self._series
        s.finished += 1
        s.success += 1
        # Histogram.observe, inline: this runs once per call.
        h = s.latency
        h.buckets[bisect_left(h.bounds, latency)] += 1
        h.sum += latency

    def settled(self, d: "Deferred[_T]", seconds: Callable[[], float], start: float) -> "Deferred[_T]":
        """
        Count the outcome of a request whose answer is the Deferred C{d},
        started at C{start} by the clock C{seconds}.

        @return: C{d}.
        """
        args = (seconds, start)
        return d.addCallbacks(self._succeededSince, self._failedSince, args, errbackArgs=args)

    def _succeededSince(self, result: _T, seconds: Callable[[], float], start: float) -> _T:
        self.succeeded(seconds() - start)
        return result

    def _failedSince(self, failure: Failure, seconds: Callable[[], float], start: float) -> Failure:
        self.failed(failure.value, seconds() - start)
        return failure

    def failed(self, error: object, latency: float) -> None:
        """
        A request failed with C{error} after C{latency} seconds.
        """
        s = self._series
        s.finished += 1
        name = type(error).__name__
        if name not in s.failures:
            s.failuresCreated[name] = time.time()
            s.failures[name] = 0
        s.failures[name] += 1
        s.latency.observe(latency)


class ClientStats(Stats):
    """
    A client's metrics: requests, retries and budget, balancer and connects.
    """

    def __init__(self, label: str, registry: Optional[CollectorRegistry] = None) -> None:
        Stats.__init__(self, "client", label, registry)
        family = self._family
        self._requeues = family["requeues"].labels(label)
        self._budgetExhausted = family["budgetExhausted"].labels(label)
        self._connects = family["connects"].labels(label)

    def requeued(self) -> None:
        """
        A request was sent again.
        """
        self._requeues.inc()

    def budgetExhausted(self) -> None:
        """
        The retry budget refused a requeue.
        """
        self._budgetExhausted.inc()

    def connected(self, endpoint: object = None) -> None:
        """
        A connection was made.
        """
        self._connects.inc()

    def watch(self, stack: Any) -> None:
        """
        Export C{stack}'s balancer and budget as gauges read when scraped.
        """
        family, label = self._family, self.label

        def count(status: str) -> Callable[[], int]:
            return lambda: sum(1 for node in stack.nodes if node.status == status)

        family["size"].labels(label).set_function(lambda: len(stack.nodes))
        family["available"].labels(label).set_function(count("open"))
        family["busy"].labels(label).set_function(count("busy"))
        family["closed"].labels(label).set_function(count("closed"))
        family["panicked"].labels(label).set_function(lambda: getattr(stack.balancer, "panicked", 0))
        family["budget"].labels(label).set_function(stack.budget.balance)


class MetricsPage(Resource):
    """
    A twisted.web resource rendering a registry's metrics as Prometheus
    text (the global registry unless another is given).
    """

    isLeaf = True

    def __init__(self, registry: Optional[CollectorRegistry] = None) -> None:
        Resource.__init__(self)
        self._registry = registry if registry is not None else REGISTRY

    def render_GET(self, request: IRequest) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self._registry)


class MetricsService(ListeningService):
    """
    Serve a registry's metrics (the global one unless another is given) at
    C{/metrics} on the server endpoint string C{listen}.

    @ivar port: the listening port, once started.
    @ivar listening: a Deferred firing with the port once listening.
    """

    servingFormat = "txscales: metrics on http://{host}:{port}/metrics"
    description = "metrics"
    listed = False

    def __init__(self, listen: str, reactor: Any = None, registry: Optional[CollectorRegistry] = None) -> None:
        root = Resource()
        root.putChild(b"metrics", MetricsPage(registry))
        site = Site(root)
        site.noisy = False
        ListeningService.__init__(self, site, listen, reactor)
