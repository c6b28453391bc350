"""
Plain Thrift (no Mux): client and server, framed or buffered transport,
binary or compact protocol.

    >>> from txscales.thrift import Thrift
    >>> client = Thrift.newClient(TestService.Iface, "tcp://127.0.0.1:9090",
    ...                           transport="framed", protocol="binary", timeout=0.5)
    >>> d = client.query("x")          # fires with "xx"

    >>> server = Thrift.newServer(TestService.Iface, handler, "tcp:9090:interface=127.0.0.1")
    >>> server.startService()

A plain Thrift connection carries one call at a time, so each server of the
destination gets a pool of connections (C{low} kept idle for reuse, at most
C{high} open, at most C{maxWaiters} callers waiting for one); a call that
times out or is cancelled closes its connection, so that its late answer
can never be read by another call.
"""

from txscales.thrift._client import ThriftClient, buildClient
from txscales.thrift._framing import BINARY, BUFFERED, COMPACT, DEFAULT_MAX_MESSAGE_SIZE, FRAMED
from txscales.thrift._server import ThriftServerService, serverFactory

__all__ = ["Thrift", "ThriftBuilder", "ThriftClient", "ThriftServerService", "FRAMED", "BUFFERED", "BINARY", "COMPACT"]


class ThriftBuilder:
    """
    Build a plain Thrift client step by step; each setter returns the
    builder.

        >>> client = (Thrift.newBuilder(TestService.Iface)
        ...           .dest("tcp://127.0.0.1:9090").transport("buffered")
        ...           .protocol("compact").timeout(0.5).build())
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

    def transport(self, transport):
        """
        Use the C{"framed"} (default) or C{"buffered"} transport.
        """
        self._options["transport"] = transport
        return self

    def protocol(self, protocol):
        """
        Use the C{"binary"} (default) or C{"compact"} protocol.
        """
        self._options["protocol"] = protocol
        return self

    def timeout(self, seconds):
        """
        Set the default per-call timeout (None for none).
        """
        self._options["timeout"] = seconds
        return self

    def pool(self, low=None, high=None, maxWaiters=None):
        """
        Size each server's connection pool: keep up to C{low} idle
        connections, open at most C{high}, let at most C{maxWaiters} calls
        wait for one (further calls fail with
        L{txscales.errors.PoolExhaustedError}).
        """
        for name, value in (("low", low), ("high", high), ("maxWaiters", maxWaiters)):
            if value is not None:
                self._options[name] = value
        return self

    def reactor(self, reactor):
        """
        Use C{reactor} (and its clock) instead of the global reactor.
        """
        self._options["reactor"] = reactor
        return self

    def random(self, random):
        """
        Use C{random} (a L{random.Random}) for the balancer and backoffs.
        """
        self._options["random"] = random
        return self

    def connectTimeout(self, seconds):
        """
        Set how long a connection attempt may take.
        """
        self._options["connectTimeout"] = seconds
        return self

    def maxMessageSize(self, size):
        """
        Set the largest reply (or frame) accepted from servers.
        """
        self._options["maxMessageSize"] = size
        return self

    def label(self, label):
        """
        Name the client in metrics (default: the service's module).
        """
        self._options["label"] = label
        return self

    def balancer(self, name, **options):
        """
        Use the balancer plugin C{name} (C{p2c}, the default, or any other
        installed one), with its C{options}.
        """
        self._options["balancer"] = name
        self._options["balancerOptions"] = options
        return self

    def retryBudget(self, budget):
        """
        Bound requeues and policy retries by C{budget} (a
        L{txscales.stack.RetryBudget}).
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
        Set the reconnection backoff of servers that refuse connections.
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
        @raise ValueError: for an unknown transport or protocol.
        """
        if self._dest is None:
            from txscales.errors import BadDestinationError

            raise BadDestinationError("no destination set: call .dest(uri) first")
        return buildClient(self._iface, self._dest, **self._options)


class Thrift:
    """
    The plain Thrift facade.
    """

    @staticmethod
    def newClient(iface, dest, transport=FRAMED, protocol=BINARY, timeout=None, **options):
        """
        Make a client of a generated Thrift service.

        @param iface: the generated C{Iface} class.
        @param dest: C{tcp://host:port[,host:port...]}.
        @param transport: C{"framed"} or C{"buffered"}.
        @param protocol: C{"binary"} or C{"compact"}.
        @param timeout: default per-call timeout in seconds (None for none);
            C{client.withOptions(timeout=...)} overrides it.
        @param options: the builder's other settings, by name: C{low},
            C{high}, C{maxWaiters} (the connection pool of each server),
            C{label}, C{balancer} and C{balancerOptions}, C{retryBudget},
            C{retryPolicy}, C{maxRequeues}, C{failureAccrual} (a dict of
            options, or False), C{failFast} (C{start}, C{maximum}),
            C{stats}, C{registry}, C{reactor}, C{random},
            C{connectTimeout}, C{maxMessageSize}, C{endpointFactory}.
        @return: a proxy whose methods return Deferreds.
        @raise ValueError: for an unknown transport or protocol.
        """
        return buildClient(iface, dest, transport=transport, protocol=protocol, timeout=timeout, **options)

    @staticmethod
    def newBuilder(iface):
        """
        @return: a L{ThriftBuilder} for C{iface}.
        """
        return ThriftBuilder(iface)

    @staticmethod
    def newServer(
        iface,
        handler,
        listen,
        transport=FRAMED,
        reactor=None,
        drainTimeout=10.0,
        maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
        label=None,
        stats=True,
        registry=None,
    ):
        """
        Make a service serving C{handler} on C{listen}; each call's protocol
        (binary or compact) is recognised from its first byte and answered
        in kind.

        @param handler: an object with one method per service method; each
            returns a value, a Deferred or a coroutine.
        @param listen: a Twisted server endpoint string, e.g.
            C{"tcp:9090:interface=127.0.0.1"}.
        @param transport: C{"framed"} or C{"buffered"}.
        @param drainTimeout: how long stopping waits for connections to
            answer the calls they received.
        @param maxMessageSize: the largest call (or frame) accepted.
        @param label: the server's name in metrics (default: C{iface}'s
            module).
        @param stats: whether to count requests in prometheus metrics.
        @param registry: the prometheus C{CollectorRegistry} (default: the
            global one).
        @return: a L{ThriftServerService} (an C{IService}); start it, or
            add it to an application.
        @raise ValueError: for an unknown transport.
        """
        if reactor is None:
            from twisted.internet import reactor
        serverStats = None
        if stats:
            from txscales.stats import Stats

            serverStats = Stats("server", label or iface.__module__, registry)
        factory = serverFactory(iface, handler, reactor, transport, maxMessageSize, serverStats)
        return ThriftServerService(
            factory, listen, reactor, drainTimeout, "%s (thrift %s)" % (iface.__module__, transport)
        )
