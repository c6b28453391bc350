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

Opted in with C{pipelined=True}, each server gets one connection instead,
carrying up to C{maxOutstanding} calls at once; the server must answer them
in the order they came, which most servers do.  A call that times out or is
cancelled fails at once but keeps its place until its reply arrives, which
is dropped.
"""

from typing import TYPE_CHECKING, Any, Optional, Union

from twisted.internet.interfaces import IStreamServerEndpoint

from txscales._listening import DEFAULT_MAX_CONNECTIONS
from txscales._reactor import defaultReactor
from txscales._timers import DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_READ_TIMEOUT, ServerTimeouts
from txscales._tls import serverEndpoint, serverOptions as serverTlsOptions
from txscales.stack import ClientBuilder
from txscales.thrift._client import ThriftClient, buildClient
from txscales.thrift._codec import (
    BINARY,
    COMPACT,
    Method,
    decodeReply,
    describeService,
    encodeCall,
    encodeMessageHeader,
    readMessageBegin,
)
from txscales.thrift._framing import BUFFERED, DEFAULT_MAX_MESSAGE_SIZE, FRAMED, FramedDecoder, encodeFrame
from txscales.thrift._idl import idlService, idlServices, loadIdl
from txscales.thrift._processor import ThriftProcessor, methodName, missingMethods, replyFailure, serviceName
from txscales.thrift._proxy import proxyClass
from txscales.thrift._server import DEFAULT_MAX_PENDING, ThriftServerService, countedProcess, serverFactory
from txscales.thrift._session import InOrderReplies
from txscales.thrift._traced import endServerSpan, endSpan, startServerSpan

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from twisted.internet.ssl import CertificateOptions

__all__ = [
    "Thrift",
    "ThriftBuilder",
    "ThriftClient",
    "ThriftServerService",
    "FRAMED",
    "BUFFERED",
    "BINARY",
    "COMPACT",
    "missingMethods",
    "serverTlsOptions",
    "loadIdl",
    "idlServices",
    "idlService",
]

# Also here, for txscales' other protocol packages (ThriftMux, Thrift over
# HTTP) and txscales.testing, not for users: the call codec
# (describeService, encodeCall, decodeReply, Method), proxyClass, ThriftProcessor,
# countedProcess and serverFactory; and for ThriftMux's downgraded sessions,
# the message header codec (encodeMessageHeader, readMessageBegin), the
# framed transport (FramedDecoder, encodeFrame) and InOrderReplies; for
# traced calls, serviceName, methodName, replyFailure, startServerSpan,
# endServerSpan and endSpan.


class ThriftBuilder(ClientBuilder):
    """
    Build a plain Thrift client step by step; each setter returns the
    builder.

        >>> client = (Thrift.newBuilder(TestService.Iface)
        ...           .dest("tcp://127.0.0.1:9090").transport("buffered")
        ...           .protocol("compact").timeout(0.5).build())
    """

    buildClient = staticmethod(buildClient)

    def transport(self, transport: str) -> "ThriftBuilder":
        """
        Use the C{"framed"} (default) or C{"buffered"} transport.
        """
        self._options["transport"] = transport
        return self

    def protocol(self, protocol: str) -> "ThriftBuilder":
        """
        Use the C{"binary"} (default) or C{"compact"} protocol.
        """
        self._options["protocol"] = protocol
        return self

    def pool(
        self, low: Optional[int] = None, high: Optional[int] = None, maxWaiters: Optional[int] = None
    ) -> "ThriftBuilder":
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

    def pipelined(self, maxOutstanding: Optional[int] = None) -> "ThriftBuilder":
        """
        Pipeline calls: send them all on one connection per server, at most
        C{maxOutstanding} (default 1000) waiting for their replies, instead
        of one call at a time per pooled connection.  Only for servers that
        answer the calls of a connection in the order they came (see the
        plain Thrift page of the docs); calls beyond C{maxOutstanding} wait,
        at most C{maxWaiters} of them (L{pool}).
        """
        self._options["pipelined"] = True
        if maxOutstanding is not None:
            self._options["maxOutstanding"] = maxOutstanding
        return self

    def maxMessageSize(self, size: int) -> "ThriftBuilder":
        """
        Set the largest reply (or frame) accepted from servers.
        """
        self._options["maxMessageSize"] = size
        return self


class Thrift:
    """
    The plain Thrift facade.
    """

    @staticmethod
    def newClient(
        iface: type,
        dest: str,
        transport: str = FRAMED,
        protocol: str = BINARY,
        timeout: Optional[float] = None,
        **options: Any
    ) -> Any:
        """
        Make a client of a generated Thrift service.

        @param iface: the generated C{Iface} class, or a service class
            L{txscales.thrift.loadIdl} loaded.
        @param dest: C{tcp://host:port[,host:port...]}, C{zk://...}, or
            C{tls://host:port[,host:port...]} (C{tcp://} with C{tls=True}).
        @param transport: C{"framed"} or C{"buffered"}.
        @param protocol: C{"binary"} or C{"compact"}.
        @param timeout: default per-call timeout in seconds (None for none);
            C{client.withOptions(timeout=...)} overrides it.
        @param options: the builder's other settings, by name: C{low},
            C{high}, C{maxWaiters} (the connection pool of each server),
            C{pipelined} (True: all calls on one connection per server,
            for servers that answer in order) and C{maxOutstanding} (how
            many calls it carries at once, default 1000), C{label},
            C{balancer} and C{balancerOptions}, C{retryBudget},
            C{retryPolicy}, C{maxRequeues}, C{failureAccrual} (a dict of
            options, or False), C{failFast} (C{start}, C{maximum}),
            C{stats}, C{registry}, C{reactor}, C{random},
            C{connectTimeout}, C{maxMessageSize}, C{endpointFactory}; TLS:
            C{tls} (True, or an C{IOpenSSLClientConnectionCreator}),
            C{tlsCa}, C{tlsClientCert}, C{tlsClientKey}, C{tlsHostname}
            (as for L{txscales.thriftmux.ThriftMux.newClient}).
        @return: a proxy whose methods return Deferreds.
        @raise ValueError: for an unknown transport or protocol.
        """
        return buildClient(iface, dest, transport=transport, protocol=protocol, timeout=timeout, **options)

    @staticmethod
    def newBuilder(iface: type) -> ThriftBuilder:
        """
        @return: a L{ThriftBuilder} for C{iface}.
        """
        return ThriftBuilder(iface)

    @staticmethod
    def newServer(
        iface: type,
        handler: object,
        listen: Union[str, IStreamServerEndpoint],
        transport: str = FRAMED,
        reactor: Any = None,
        drainTimeout: Optional[float] = 10.0,
        maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
        label: Optional[str] = None,
        stats: bool = True,
        registry: "Optional[CollectorRegistry]" = None,
        tls: "Optional[CertificateOptions]" = None,
        maxPendingPerConnection: int = DEFAULT_MAX_PENDING,
        handshakeTimeout: Optional[float] = DEFAULT_HANDSHAKE_TIMEOUT,
        readTimeout: Optional[float] = DEFAULT_READ_TIMEOUT,
        idleTimeout: Optional[float] = DEFAULT_IDLE_TIMEOUT,
        maxConnections: Optional[int] = DEFAULT_MAX_CONNECTIONS,
    ) -> ThriftServerService:
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
        @param tls: TLS settings (a C{twisted.internet.ssl.CertificateOptions},
            e.g. from L{serverTlsOptions}): every connection speaks TLS.
        @param maxPendingPerConnection: how many calls of one connection
            run at once; a connection is not read from while that many wait
            for their reply.
        @param handshakeTimeout: seconds a connection has to complete its
            first message, or None for no limit.
        @param readTimeout: seconds a message has to arrive in full once its
            first bytes came, however slowly the rest trickles in, or None.
        @param idleTimeout: seconds a connection with no call outstanding may
            stay silent, or None.
        @param maxConnections: the most connections held at once; past it,
            new connections are closed at once (None: no limit).
        @return: a L{ThriftServerService} (an C{IService}); start it, or
            add it to an application.
        @raise ValueError: for an unknown transport.
        """
        reactor = defaultReactor(reactor)
        serverStats = None
        if stats:
            from txscales.stats import Stats

            serverStats = Stats("server", label or iface.__module__, registry)
        description = "%s (thrift %s)" % (iface.__module__, transport)
        timeouts = ServerTimeouts(reactor, handshakeTimeout, readTimeout, idleTimeout, description)
        factory = serverFactory(
            iface, handler, reactor, transport, maxMessageSize, serverStats, maxPendingPerConnection, timeouts
        )
        return ThriftServerService(
            factory, serverEndpoint(reactor, listen, tls), reactor, drainTimeout, description, maxConnections
        )
