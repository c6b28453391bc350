"""
ThriftMux: Thrift over Mux, client and server, byte-compatible with Finagle.

    >>> from txscales.thriftmux import ThriftMux
    >>> client = ThriftMux.newClient(TestService.Iface, "tcp://127.0.0.1:9090", timeout=0.03)
    >>> d = client.query("x")          # fires with "xx"
"""

from random import Random
from typing import TYPE_CHECKING, Any, Optional, Union

from twisted.internet.interfaces import IStreamServerEndpoint

from txscales._listening import DEFAULT_MAX_CONNECTIONS
from txscales._reactor import defaultReactor
from txscales._timers import DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_READ_TIMEOUT, ServerTimeouts
from txscales._tls import opportunisticLevel, serverEndpoint
from txscales.mux import DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_PENDING
from txscales.stack import ClientBuilder
from txscales.thrift import serverTlsOptions
from txscales.thriftmux._client import ThriftMuxClient, buildClient
from txscales.thriftmux._contexts import RequestContext, TraceId, currentRequest
from txscales.thriftmux._server import ThriftMuxServerService, serverFactory

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from twisted.internet.ssl import CertificateOptions

__all__ = ["ThriftMux", "ThriftMuxBuilder", "ThriftMuxClient", "RequestContext", "TraceId", "currentRequest", "serverTlsOptions"]

# Also here, not for users: serverFactory, for txscales.testing.


class ThriftMuxBuilder(ClientBuilder):
    """
    Build a ThriftMux client step by step; each setter returns the builder.

        >>> client = (ThriftMux.newBuilder(TestService.Iface)
        ...           .dest("tcp://127.0.0.1:9090").timeout(0.5).clientId("me").build())
    """

    buildClient = staticmethod(buildClient)

    def clientId(self, clientId: Union[str, bytes]) -> "ThriftMuxBuilder":
        """
        Set the client id sent in Finagle's ClientIdContext.
        """
        self._options["clientId"] = clientId
        return self

    def maxFrameSize(self, size: int) -> "ThriftMuxBuilder":
        """
        Set the largest frame (and message) accepted from servers.
        """
        self._options["maxFrameSize"] = size
        return self

    def handshakeTimeout(self, seconds: Optional[float]) -> "ThriftMuxBuilder":
        """
        Close a new session whose server has not completed the Mux handshake
        within C{seconds} (None: wait forever); its calls fail with
        L{txscales.errors.HandshakeTimeoutError} and may go elsewhere.
        """
        self._options["handshakeTimeout"] = seconds
        return self

    def opportunisticTls(self, level: str) -> "ThriftMuxBuilder":
        """
        Negotiate TLS in the Mux handshake (C{"desired"} or C{"required"})
        and switch each session to TLS in place when the server agrees, as
        Finagle's opportunistic TLS does; C{tls()} gives the TLS settings.
        """
        self._options["opportunisticTls"] = level
        return self

    def pingInterval(self, seconds: Optional[float], timeout: float = 4.0, threshold: float = 2.0) -> "ThriftMuxBuilder":
        """
        Ping each session every C{seconds} (None to disable), and at once
        when a call is discarded; a session whose ping waits more than
        C{threshold} times its recent round trips is busy, one whose ping is
        not answered within C{timeout} seconds is closed.
        """
        self._options["pingInterval"] = seconds
        self._options["pingTimeout"] = timeout
        self._options["pingThreshold"] = threshold
        return self

    def maxDiscarded(self, count: Optional[int]) -> "ThriftMuxBuilder":
        """
        Close a session once more than C{count} of its discarded calls wait
        for the server's answer (None: no bound).
        """
        self._options["maxDiscarded"] = count
        return self

    def reconnectBackoff(self, start: float = 1.0, maximum: float = 32.0, healthyAfter: float = 5.0) -> "ThriftMuxBuilder":
        """
        Wait an exponential jittered backoff from C{start} to C{maximum}
        seconds before connecting again after a session that ended within
        C{healthyAfter} seconds of its start.
        """
        self._options["reconnectBackoff"] = (start, maximum)
        self._options["healthyAfter"] = healthyAfter
        return self


class ThriftMux:
    """
    The ThriftMux facade.
    """

    @staticmethod
    def newClient(
        iface: type,
        dest: str,
        timeout: Optional[float] = None,
        clientId: Union[str, bytes, None] = None,
        **options: Any
    ) -> Any:
        """
        Make a client of a generated Thrift service.

        @param iface: the generated C{Iface} class, or a service class
            L{txscales.thrift.loadIdl} loaded.
        @param dest: C{tcp://host:port[,host:port...]}, C{zk://...}, or
            C{tls://host:port[,host:port...]} (C{tcp://} with C{tls=True}).
        @param timeout: default per-call timeout in seconds (None for none);
            C{client.withOptions(timeout=...)} overrides it.
        @param clientId: sent as Finagle's ClientIdContext.
        @param options: the builder's other settings, by name: C{label},
            C{balancer} and C{balancerOptions}, C{retryBudget},
            C{retryPolicy}, C{maxRequeues}, C{failureAccrual} (a dict of
            options, or False), C{failFast} (C{start}, C{maximum}),
            C{stats}, C{registry}, C{reactor}, C{random},
            C{connectTimeout}, C{handshakeTimeout} (default 10 s),
            C{maxFrameSize}, C{pingInterval},
            C{pingTimeout}, C{pingThreshold}, C{maxDiscarded},
            C{reconnectBackoff} (C{(start, maximum)}), C{healthyAfter}; TLS: C{tls} (True, or an
            C{IOpenSSLClientConnectionCreator} for every server),
            C{tlsCa} (path of the PEM CA to trust; default: the
            platform's), C{tlsClientCert} and C{tlsClientKey} (PEM paths,
            for mutual TLS), C{tlsHostname} (the name the certificates must
            be valid for; default: each server's host), and
            C{opportunisticTls} (C{"desired"} or C{"required"}: connect in
            cleartext and switch to TLS in place when the server agrees in
            the Mux handshake, as Finagle's opportunistic TLS does).
        @return: a proxy whose methods return Deferreds.
        """
        return buildClient(iface, dest, timeout=timeout, clientId=clientId, **options)

    @staticmethod
    def newBuilder(iface: type) -> ThriftMuxBuilder:
        """
        @return: a L{ThriftMuxBuilder} for C{iface}.
        """
        return ThriftMuxBuilder(iface)

    @staticmethod
    def newServer(
        iface: type,
        handler: object,
        listen: Union[str, IStreamServerEndpoint],
        reactor: Any = None,
        drainTimeout: Optional[float] = 10.0,
        maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
        label: Optional[str] = None,
        stats: bool = True,
        registry: "Optional[CollectorRegistry]" = None,
        tls: "Optional[CertificateOptions]" = None,
        opportunisticTls: Optional[str] = None,
        maxPendingPerConnection: int = DEFAULT_MAX_PENDING,
        handshakeTimeout: Optional[float] = DEFAULT_HANDSHAKE_TIMEOUT,
        readTimeout: Optional[float] = DEFAULT_READ_TIMEOUT,
        idleTimeout: Optional[float] = DEFAULT_IDLE_TIMEOUT,
        maxConnections: Optional[int] = DEFAULT_MAX_CONNECTIONS,
        random: Optional[Random] = None,
    ) -> ThriftMuxServerService:
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
        @param tls: TLS settings (a C{twisted.internet.ssl.CertificateOptions},
            e.g. from L{txscales.thrift.serverTlsOptions}): every
            connection speaks TLS from its first byte, unless
            C{opportunisticTls} is set.
        @param opportunisticTls: C{"desired"} or C{"required"}: listen in
            cleartext and switch a session to TLS (with C{tls}) in place
            when its client negotiates it in Tinit, as Finagle's
            opportunistic TLS does; with C{"required"}, clients that do not
            are refused.
        @param maxPendingPerConnection: how many requests of one
            connection run at once; a Mux client's requests past it are
            nacked (retryable elsewhere), a downgraded Thrift client is not
            read from until some are answered.
        @param handshakeTimeout: seconds a connection has to complete its
            first message, or None for no limit.
        @param readTimeout: seconds a message has to arrive in full once its
            first bytes came, however slowly the rest trickles in, or None.
        @param idleTimeout: seconds a connection with no call outstanding may
            stay silent, or None.
        @param maxConnections: the most connections held at once; past it,
            new connections are closed at once (None: no limit).
        @param random: the C{random.Random} that decides whether requests
            that come without a sampling decision are traced, when tracing
            is on (L{txscales.tracing}).
        @return: a L{ThriftMuxServerService} (an C{IService}); start it, or
            add it to an application.
        @raise ValueError: for opportunistic TLS without C{tls}.
        """
        reactor = defaultReactor(reactor)
        level = opportunisticLevel(opportunisticTls)
        if level == b"off":
            listen = serverEndpoint(reactor, listen, tls)
        serverStats = None
        if stats:
            from txscales.stats import Stats

            serverStats = Stats("server", label or iface.__module__, registry)
        description = "%s (thriftmux)" % (iface.__module__,)
        timeouts = ServerTimeouts(reactor, handshakeTimeout, readTimeout, idleTimeout, description)
        factory = serverFactory(
            iface,
            handler,
            reactor,
            maxFrameSize,
            serverStats,
            maxPendingPerConnection,
            opportunisticTls=level,
            tls=tls,
            timeouts=timeouts,
            random=random,
        )
        return ThriftMuxServerService(factory, listen, reactor, drainTimeout, description, maxConnections)
