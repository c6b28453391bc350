"""
ThriftMux: Thrift over Mux, client and server, byte-compatible with Finagle.

    >>> from txscales.thriftmux import ThriftMux
    >>> client = ThriftMux.newClient(TestService.Iface, "tcp://127.0.0.1:9090", timeout=0.03)
    >>> d = client.query("x")          # fires with "xx"
"""

from txscales._listening import DEFAULT_MAX_CONNECTIONS
from txscales._reactor import defaultReactor
from txscales._timers import DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_READ_TIMEOUT, ServerTimeouts
from txscales.mux import DEFAULT_MAX_FRAME_SIZE
from txscales.stack import ClientBuilder
from txscales.thriftmux._client import ThriftMuxClient, buildClient
from txscales.thriftmux._contexts import RequestContext, TraceId, currentRequest
from txscales.thriftmux._server import ThriftMuxServerService, serverFactory

__all__ = ["ThriftMux", "ThriftMuxBuilder", "ThriftMuxClient", "RequestContext", "TraceId", "currentRequest"]

# Also here, not for users: serverFactory, for txscales.testing.


class ThriftMuxBuilder(ClientBuilder):
    """
    Build a ThriftMux client step by step; each setter returns the builder.

        >>> client = (ThriftMux.newBuilder(TestService.Iface)
        ...           .dest("tcp://127.0.0.1:9090").timeout(0.5).clientId("me").build())
    """

    buildClient = staticmethod(buildClient)

    def clientId(self, clientId):
        """
        Set the client id sent in Finagle's ClientIdContext.
        """
        self._options["clientId"] = clientId
        return self

    def maxFrameSize(self, size):
        """
        Set the largest frame (and message) accepted from servers.
        """
        self._options["maxFrameSize"] = size
        return self

    def handshakeTimeout(self, seconds):
        """
        Close a new session whose server has not completed the Mux handshake
        within C{seconds} (None: wait forever); its calls fail with
        L{txscales.errors.HandshakeTimeoutError} and may go elsewhere.
        """
        self._options["handshakeTimeout"] = seconds
        return self

    def pingInterval(self, seconds, timeout=4.0):
        """
        Ping each session every C{seconds} (None to disable); a session whose
        ping is not answered within C{timeout} seconds is closed.
        """
        self._options["pingInterval"] = seconds
        self._options["pingTimeout"] = timeout
        return self


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
            C{connectTimeout}, C{handshakeTimeout} (default 10 s),
            C{maxFrameSize}, C{pingInterval}, C{pingTimeout}.
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
        handshakeTimeout=DEFAULT_HANDSHAKE_TIMEOUT,
        readTimeout=DEFAULT_READ_TIMEOUT,
        idleTimeout=DEFAULT_IDLE_TIMEOUT,
        maxConnections=DEFAULT_MAX_CONNECTIONS,
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
        @param handshakeTimeout: seconds a connection has to complete its
            first message, or None for no limit.
        @param readTimeout: seconds a message has to arrive in full once its
            first bytes came, however slowly the rest trickles in, or None.
        @param idleTimeout: seconds a connection with no call outstanding may
            stay silent, or None.
        @param maxConnections: the most connections held at once; past it,
            new connections are closed at once (None: no limit).
        @return: a L{ThriftMuxServerService} (an C{IService}); start it, or
            add it to an application.
        """
        reactor = defaultReactor(reactor)
        serverStats = None
        if stats:
            from txscales.stats import Stats

            serverStats = Stats("server", label or iface.__module__, registry)
        description = "%s (thriftmux)" % (iface.__module__,)
        timeouts = ServerTimeouts(reactor, handshakeTimeout, readTimeout, idleTimeout, description)
        factory = serverFactory(iface, handler, reactor, maxFrameSize, serverStats, timeouts)
        return ThriftMuxServerService(factory, listen, reactor, drainTimeout, description, maxConnections)
