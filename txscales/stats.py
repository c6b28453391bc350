"""
Metrics for clients and servers, exported with prometheus_client.

Every client and server has a label; its metrics carry it
(C{client="..."} or C{server="..."}).  Metrics live in a prometheus
C{CollectorRegistry} (the global one unless another is given), so that
C{prometheus_client.generate_latest(registry)} or the twistd C{--metrics}
page exports them.
"""

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from twisted.application.service import Service
from twisted.internet.defer import succeed
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

_log = Logger()

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_families = {}


def _metrics(registry, side):
    key = (id(registry), side)
    family = _families.get(key)
    if family is None:
        label = [side]
        prefix = "txscales_%s_" % (side,)
        family = {
            "requests": Counter(prefix + "requests", "Requests started.", label, registry=registry),
            "success": Counter(prefix + "success", "Requests that succeeded.", label, registry=registry),
            "failures": Counter(prefix + "failures", "Requests that failed, by error class.", label + ["error"], registry=registry),
            "pending": Gauge(prefix + "pending", "Requests outstanding.", label, registry=registry),
            "latency": Histogram(
                prefix + "request_latency_seconds", "Request latency.", label, buckets=_LATENCY_BUCKETS, registry=registry
            ),
        }
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
        _families[key] = family
    return family


class Stats:
    """
    The request metrics of one client or server.

    @param side: C{"client"} or C{"server"}.
    @param label: the client's or server's name.
    @param registry: the prometheus C{CollectorRegistry}.
    """

    def __init__(self, side, label, registry=None):
        self.label = label
        self._family = family = _metrics(registry if registry is not None else REGISTRY, side)
        self._requests = family["requests"].labels(label)
        self._success = family["success"].labels(label)
        self._failures = family["failures"]
        self._pending = family["pending"].labels(label)
        self._latency = family["latency"].labels(label)

    def started(self):
        """
        A request started.
        """
        self._requests.inc()
        self._pending.inc()

    def succeeded(self, latency):
        """
        A request succeeded after C{latency} seconds.
        """
        self._pending.dec()
        self._success.inc()
        self._latency.observe(latency)

    def failed(self, error, latency):
        """
        A request failed with C{error} after C{latency} seconds.
        """
        self._pending.dec()
        self._failures.labels(self.label, type(error).__name__).inc()
        self._latency.observe(latency)


class ClientStats(Stats):
    """
    A client's metrics: requests, retries and budget, balancer and connects.
    """

    def __init__(self, label, registry=None):
        Stats.__init__(self, "client", label, registry)
        family = self._family
        self._requeues = family["requeues"].labels(label)
        self._budgetExhausted = family["budgetExhausted"].labels(label)
        self._connects = family["connects"].labels(label)

    def requeued(self):
        """
        A request was sent again.
        """
        self._requeues.inc()

    def budgetExhausted(self):
        """
        The retry budget refused a requeue.
        """
        self._budgetExhausted.inc()

    def connected(self, endpoint=None):
        """
        A connection was made.
        """
        self._connects.inc()

    def watch(self, stack):
        """
        Export C{stack}'s balancer and budget as gauges read when scraped.
        """
        family, label = self._family, self.label

        def count(status):
            return lambda: sum(1 for node in stack.nodes if node.status == status)

        family["size"].labels(label).set_function(lambda: len(stack.nodes))
        family["available"].labels(label).set_function(count("open"))
        family["busy"].labels(label).set_function(count("busy"))
        family["closed"].labels(label).set_function(count("closed"))
        family["panicked"].labels(label).set_function(lambda: getattr(stack.balancer, "panicked", 0))
        family["budget"].labels(label).set_function(stack.budget.balance)


class StatsFilter:
    """
    Count requests through C{service} in C{stats}.
    """

    def __init__(self, service, stats, clock):
        self._service = service
        self._stats = stats
        self._clock = clock

    def __call__(self, request):
        self._stats.started()
        start = self._clock.seconds()
        return self._service(request).addCallbacks(
            self._succeeded, self._failed, callbackArgs=(start,), errbackArgs=(start,)
        )

    def _succeeded(self, result, start):
        self._stats.succeeded(self._clock.seconds() - start)
        return result

    def _failed(self, failure, start):
        self._stats.failed(failure.value, self._clock.seconds() - start)
        return failure


class MetricsPage(Resource):
    """
    A twisted.web resource rendering a registry's metrics as Prometheus
    text (the global registry unless another is given).
    """

    isLeaf = True

    def __init__(self, registry=None):
        Resource.__init__(self)
        self._registry = registry if registry is not None else REGISTRY

    def render_GET(self, request):
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self._registry)


class MetricsService(Service):
    """
    Serve a registry's metrics (the global one unless another is given) at
    C{/metrics} on the server endpoint string C{listen}.

    @ivar port: the listening port, once started.
    """

    def __init__(self, listen, reactor, registry=None):
        self._listen = listen
        self._reactor = reactor
        root = Resource()
        root.putChild(b"metrics", MetricsPage(registry))
        self._site = Site(root)
        self._site.noisy = False
        self.port = None

    def startService(self):
        Service.startService(self)
        d = serverFromString(self._reactor, self._listen).listen(self._site)
        d.addCallbacks(self._listening, lambda f: _log.failure("cannot serve metrics on {listen}", f, listen=self._listen))

    def _listening(self, port):
        self.port = port
        address = port.getHost()
        _log.info("txscales: metrics on http://{host}:{port}/metrics", host=address.host, port=address.port)

    def stopService(self):
        Service.stopService(self)
        return self.port.stopListening() if self.port is not None else succeed(None)

