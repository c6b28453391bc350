"""
ThriftMux: Thrift over Mux, client and server, byte-compatible with Finagle.

    >>> from txscales.thriftmux import ThriftMux
    >>> client = ThriftMux.newClient(TestService.Iface, "tcp://127.0.0.1:9090", timeout=0.03)
    >>> d = client.query("x")          # fires with "xx"
"""

from txscales.mux._framing import DEFAULT_MAX_FRAME_SIZE
from txscales.thriftmux._client import ThriftMuxClient, buildClient
from txscales.thriftmux._contexts import RequestContext, TraceId, currentRequest
from txscales.thriftmux._server import ThriftMuxServerService, serverFactory

__all__ = ["ThriftMux", "ThriftMuxBuilder", "ThriftMuxClient", "RequestContext", "TraceId", "currentRequest"]


class ThriftMuxBuilder:
    """
    Build a ThriftMux client step by step; each setter returns the builder.

        >>> client = (ThriftMux.newBuilder(TestService.Iface)
        ...           .dest("tcp://127.0.0.1:9090").timeout(0.5).clientId("me").build())
    """

    def __init__(self, iface):
        self._iface = iface
        self._dest = None
        self._options = {}

    def dest(self, dest):
        """
        Set the destination URI (C{tcp://host:port[,host:port...]}).
        """
        self._dest = dest
        return self

    def timeout(self, seconds):
        """
        Set the default per-call timeout (None for none).
        """
        self._options["timeout"] = seconds
        return self

    def clientId(self, clientId):
        """
        Set the client id sent in Finagle's ClientIdContext.
        """
        self._options["clientId"] = clientId
        return self

    def reactor(self, reactor):
        """
        Use C{reactor} (and its clock) instead of the global reactor.
        """
        self._options["reactor"] = reactor
        return self

    def random(self, random):
        """
        Use C{random} (a L{random.Random}) for trace ids.
        """
        self._options["random"] = random
        return self

    def connectTimeout(self, seconds):
        """
        Set how long a connection attempt may take.
        """
        self._options["connectTimeout"] = seconds
        return self

    def maxFrameSize(self, size):
        """
        Set the largest frame (and message) accepted from servers.
        """
        self._options["maxFrameSize"] = size
        return self

    def pingInterval(self, seconds, timeout=4.0):
        """
        Ping each session every C{seconds} (None to disable); a session whose
        ping is not answered within C{timeout} seconds is closed.
        """
        self._options["pingInterval"] = seconds
        self._options["pingTimeout"] = timeout
        return self

    def label(self, label):
        """
        Name the client in metrics (default: the service's module).
        """
        self._options["label"] = label
        return self

    def balancer(self, name, **options):
        """
        Use the balancer plugin C{name} (C{p2c}, the default; C{p2c-peak-ewma},
        C{aperture}, C{aperture-scales}, C{heap}, C{round-robin}, or a
        third-party plugin's), with its C{options}.
        """
        self._options["balancer"] = name
        self._options["balancerOptions"] = options
        return self

    def retryBudget(self, budget):
        """
        Bound requeues and policy retries by C{budget} (a
        L{txscales.stack.RetryBudget}; default: 20% of calls plus 10 per
        second over 10 seconds).
        """
        self._options["retryBudget"] = budget
        return self

    def retryPolicy(self, policy, maxRetries=25):
        """
        Also retry failures that may have reached the server when
        C{policy(failure, attempt)} says so, within the retry budget.
        """
        self._options["retryPolicy"] = policy
        self._options["maxRequeues"] = maxRetries
        return self

    def failureAccrual(self, enabled=True, **options):
        """
        Configure failure accrual (C{consecutiveFailures}, C{successRate},
        C{window}, C{minRequests}, C{markDeadFor}), or turn it off.
        """
        self._options["failureAccrual"] = options if enabled else False
        return self

    def failFast(self, start=1.0, maximum=32.0):
        """
        Set the reconnection backoff of endpoints that refuse connections.
        """
        self._options["failFast"] = {"start": start, "maximum": maximum}
        return self

    def stats(self, enabled=True, registry=None):
        """
        Count requests in prometheus metrics (on by default), in C{registry}
        (default: the global one).
        """
        self._options["stats"] = enabled
        self._options["registry"] = registry
        return self

    def build(self):
        """
        @return: the client proxy.
        @raise txscales.errors.BadDestinationError: without a valid dest.
        """
        if self._dest is None:
            from txscales.errors import BadDestinationError

            raise BadDestinationError("no destination set: call .dest(uri) first")
        return buildClient(self._iface, self._dest, **self._options)


class ThriftMux:
    """
    The ThriftMux facade.
    """

    @staticmethod
    def newClient(iface, dest, timeout=None, clientId=None, **options):
        """
        Make a client of a generated Thrift service.

        @param iface: the generated C{Iface} class.
        @param dest: C{tcp://host:port[,host:port...]}.
        @param timeout: default per-call timeout in seconds (None for none);
            C{client.withOptions(timeout=...)} overrides it.
        @param clientId: sent as Finagle's ClientIdContext.
        @param options: the builder's other settings, by name: C{label},
            C{balancer} and C{balancerOptions}, C{retryBudget},
            C{retryPolicy}, C{maxRequeues}, C{failureAccrual} (a dict of
            options, or False), C{failFast} (C{start}, C{maximum}),
            C{stats}, C{registry}, C{reactor}, C{random},
            C{connectTimeout}, C{maxFrameSize}, C{pingInterval},
            C{pingTimeout}.
        @return: a proxy whose methods return Deferreds.
        """
        return buildClient(iface, dest, timeout=timeout, clientId=clientId, **options)

    @staticmethod
    def newBuilder(iface):
        """
        @return: a L{ThriftMuxBuilder} for C{iface}.
        """
        return ThriftMuxBuilder(iface)

    @staticmethod
    def newServer(
        iface,
        handler,
        listen,
        reactor=None,
        drainTimeout=10.0,
        maxFrameSize=DEFAULT_MAX_FRAME_SIZE,
        label=None,
        stats=True,
        registry=None,
    ):
        """
        Make a service serving C{handler} on C{listen}.

        @param handler: an object with one method per service method; each
            returns a value, a Deferred or a coroutine.
        @param listen: a Twisted server endpoint string, e.g.
            C{"tcp:9090:interface=127.0.0.1"}.
        @param drainTimeout: how long stopping waits for sessions to drain.
        @param label: the server's name in metrics (default: C{iface}'s
            module).
        @param stats: whether to count requests in prometheus metrics.
        @param registry: the prometheus C{CollectorRegistry} (default: the
            global one).
        @return: a L{ThriftMuxServerService} (an C{IService}); start it, or
            add it to an application.
        """
        if reactor is None:
            from twisted.internet import reactor
        serverStats = None
        if stats:
            from txscales.stats import Stats

            serverStats = Stats("server", label or iface.__module__, registry)
        factory = serverFactory(iface, handler, reactor, maxFrameSize, serverStats)
        return ThriftMuxServerService(factory, listen, reactor, drainTimeout, "%s (thriftmux)" % (iface.__module__,))
