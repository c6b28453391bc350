"""
The listening service every txscales server runs under: listen on a Twisted
server endpoint, log where, refuse connections past a limit, and when
stopped, stop listening and (for a L{txscales._draining.DrainingFactory})
drain every connection.
"""

from typing import Any, Callable, Dict, List, Optional, Union

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IAddress, IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txscales._reactor import defaultReactor
from txscales._ratelimit import RateLimitedLog
from txscales._registry import REGISTRY

_log = Logger()

DEFAULT_MAX_CONNECTIONS = 10000
"""The most connections a server holds at once unless configured otherwise."""

STARTING = "starting"
"""A server's drain state before it listens."""
SERVING = "serving"
"""A server's drain state while it listens."""
DRAINING = "draining"
"""A server's drain state once stopping: it no longer listens, and its
sessions are draining."""
STOPPED = "stopped"
"""A server's drain state once stopped (or when listening failed)."""


class ListeningService(StreamServerEndpointService):
    """
    Serve C{factory} on a Twisted server endpoint.

    Starting listens (in C{privilegedStartService}, as twistd calls it
    before dropping privileges) and logs C{txscales: serving DESCRIPTION on
    HOST:PORT}.  Stopping stops listening; with a drain timeout, it then
    drains every connection of the factory (a
    L{txscales._draining.DrainingFactory}) and logs C{txscales: all sessions
    closed}.

    @cvar servingFormat: the log line once listening (a
        L{twisted.logger} format with C{what}, C{host} and C{port}).
    @cvar defaultDrainTimeout: the drain timeout when none is given (None:
        stopping does not drain).
    @ivar factory: the server factory.
    @ivar description: what the service serves, for the log.
    @ivar port: the listening port once listening, else None.
    @ivar listening: a Deferred firing with the port once listening, or
        failing with the reason listening failed.
    @ivar limit: the L{ConnectionLimit} in force, or None.
    @ivar drainState: L{STARTING}, L{SERVING}, L{DRAINING} or L{STOPPED}.
    @cvar listed: whether the service is one of the process's servers on
        the admin page (C{/admin/server}, C{/health}); the admin and
        metrics sites are not.
    """

    servingFormat = "txscales: serving {what} on {host}:{port}"
    defaultDrainTimeout: Optional[float] = None
    description = "txscales"
    listed = True

    def __init__(
        self,
        factory: IProtocolFactory,
        listen: Union[str, IStreamServerEndpoint],
        reactor: Any = None,
        drainTimeout: Optional[float] = None,
        description: Optional[str] = None,
        maxConnections: Optional[int] = None,
    ) -> None:
        """
        @param factory: the server factory.
        @param listen: a Twisted server endpoint string (e.g.
            C{"tcp:9090:interface=127.0.0.1"}) or an endpoint.
        @param reactor: the reactor that parses C{listen} (default: the
            global one).
        @param drainTimeout: how long stopping lets the factory's
            connections drain, in seconds, before aborting those still open
            (default: L{defaultDrainTimeout}, whose None means that stopping
            does not drain).
        @param description: what the service serves, for the log (default:
            the class's L{description}).
        @param maxConnections: how many connections the factory may hold at
            once (None: no limit); it must track them in a C{protocols}
            set, as a L{txscales._draining.DrainingFactory} does.  See
            L{ConnectionLimit}.
        """
        reactor = defaultReactor(reactor)
        if isinstance(listen, str):
            endpoint = serverFromString(reactor, listen)
        else:
            endpoint = listen
        if description is not None:
            self.description = description
        self.limit: Optional[ConnectionLimit] = None
        if maxConnections is not None:
            self.limit = ConnectionLimit(factory, maxConnections, reactor, self.description)
        reporting = _ReportingEndpoint(endpoint, self._listened, self._listenFailed, self.limit)
        StreamServerEndpointService.__init__(self, reporting, factory)
        self.port: Optional[IListeningPort] = None
        self.listening: "Deferred[IListeningPort]" = Deferred()
        self._listen = listen
        self._drainTimeout = drainTimeout if drainTimeout is not None else self.defaultDrainTimeout
        self._listenCalled = False
        self._failedAtStart: Optional[List[Failure]] = None
        self.drainState = STARTING
        if self.listed:
            REGISTRY.addServer(self)

    def privilegedStartService(self) -> None:
        """
        Listen.

        @raise Exception: why listening failed, when it fails at once (as it
            does for a TCP port in use), so that twistd reports it and exits
            with a non-zero status.  (L{StreamServerEndpointService} raises
            only with its private C{_raiseSynchronously} flag, which
            C{twisted.application.strports.service} sets; the failure is
            taken here from the endpoint instead.)  A failure that comes
            later fails L{listening} only.
        """
        self._listenCalled = True
        failed = self._failedAtStart = []
        try:
            StreamServerEndpointService.privilegedStartService(self)
        finally:
            self._failedAtStart = None
        if failed:
            failed[0].raiseException()

    def _listened(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        self.drainState = SERVING
        address = port.getHost()
        # A TCP or SSL port's address has a host and a port; a UNIX socket's
        # has neither.
        _log.info(
            self.servingFormat,
            what=self.description,
            host=getattr(address, "host", address),
            port=getattr(address, "port", None),
        )
        self.listening.callback(port)
        return port

    def _listenFailed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):
            _log.error(
                "txscales: cannot serve {what} on {listen}: {error}",
                what=self.description,
                listen=self._listen,
                error=failure.value,
            )
        self.drainState = STOPPED
        if self._failedAtStart is not None:
            self._failedAtStart.append(failure)
        self.listening.errback(failure)
        # Reported: StreamServerEndpointService need not log it again.
        return None

    def stopService(self) -> "Deferred[None]":
        """
        Stop listening, then drain the connections if there is a drain
        timeout.

        @return: a Deferred firing once stopped (and drained).
        """
        if self._listenCalled:
            self.drainState = DRAINING
            d = StreamServerEndpointService.stopService(self)
        else:
            # Never started: nothing listens.
            Service.stopService(self)
            d = succeed(None)
        if self._drainTimeout is not None:
            factory, timeout = self.factory, self._drainTimeout
            _log.info("txscales: draining {n} session(s)", n=len(factory.protocols))
            d.addCallback(lambda _: factory.drainAll(timeout))
            d.addCallback(lambda _: _log.info("txscales: all sessions closed"))
        d.addBoth(self._stopped)
        return d

    def _stopped(self, result: object) -> object:
        self.drainState = STOPPED
        return result

    def describe(self) -> Dict[str, Any]:
        """
        @return: the server for the admin page: what it serves
            (C{protocol}), where it listens (C{address}, None until it
            does), its C{drainState}, how many connections it refused past
            its limit, and its C{sessions} (each with its C{peer} and
            C{pending} calls), or None when its factory does not track
            them.
        """
        address = self.port.getHost() if self.port is not None else None
        protocols = getattr(self.factory, "protocols", None)
        sessions = None
        if protocols is not None:
            sessions = [_describeSession(p) for p in list(protocols)]
        return {
            "protocol": self.description,
            "address": _formatAddress(address) if address is not None else None,
            "drainState": self.drainState,
            "refused": self.limit.refused if self.limit is not None else 0,
            "sessions": sessions,
        }


def _formatAddress(address: Any) -> str:
    """
    @return: C{host:port} of a TCP address (C{[host]:port} for IPv6), else
        the address's own text.
    """
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is None or port is None:
        return str(getattr(address, "name", address))
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def _describeSession(protocol: Any) -> Dict[str, Any]:
    """
    @return: a session's C{describe()}, with its C{peer} filled in.
    """
    describe = getattr(protocol, "describe", None)
    found = describe() if describe is not None else {}
    transport = getattr(protocol, "transport", None)
    peer = transport.getPeer() if transport is not None else None
    return dict(found, peer=_formatAddress(peer) if peer is not None else None)


@implementer(IStreamServerEndpoint)
class _ReportingEndpoint:
    """
    An endpoint that tells its service when it listens or cannot: the
    listening port is what L{StreamServerEndpointService} keeps to itself.
    """

    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        listened: Callable[[IListeningPort], IListeningPort],
        failed: Callable[[Failure], None],
        limit: "Optional[ConnectionLimit]" = None,
    ) -> None:
        self.endpoint = endpoint
        self._listened = listened
        self._failed = failed
        self._limit = limit

    # The interface promises a port; after a failure, which _failed reports
    # to the service, this Deferred fires with None instead.
    def listen(self, factory: IProtocolFactory) -> "Deferred[Optional[IListeningPort]]":  # type: ignore[override]
        serving: Any = factory if self._limit is None else self._limit
        return self.endpoint.listen(serving).addCallbacks(self._listened, self._failed)


@implementer(IProtocolFactory)
class ConnectionLimit:
    """
    Stand between a listening port and a server factory: past
    C{maxConnections} open connections, close each new one at once, and
    log so, rate-limited (one line per ten seconds at most, counting the
    connections it stands for).

    The connections counted are the factory's C{protocols}, the set a
    L{txscales._draining.DrainingFactory} keeps: the protocols the factory
    builds are the connection's own, with nothing in between.

    @ivar maxConnections: the limit.
    @ivar refused: how many connections were refused.
    """

    def __init__(self, factory: Any, maxConnections: int, clock: Any, description: str = "txscales") -> None:
        """
        @param factory: the server factory, with a C{protocols} set.
        @param maxConnections: the limit.
        @param clock: an C{IReactorTime}, for rate-limiting the log.
        @param description: what the server serves, for the log.
        """
        self._factory = factory
        self.maxConnections = maxConnections
        self.refused = 0
        self._description = description
        self._log = RateLimitedLog(clock, _log, burst=1, interval=10.0)

    def doStart(self) -> None:
        self._factory.doStart()

    def doStop(self) -> None:
        self._factory.doStop()

    def logPrefix(self) -> str:
        return self._factory.logPrefix()

    def buildProtocol(self, addr: IAddress) -> Any:
        """
        @return: the factory's protocol, or one that closes the connection
            at once when C{maxConnections} are open.
        """
        if len(self._factory.protocols) < self.maxConnections:
            return self._factory.buildProtocol(addr)
        self.refused += 1
        self._log.warn(
            "txscales: {what}: {max} connections open, the limit: refused a new connection from {host}",
            what=self._description,
            max=self.maxConnections,
            host=getattr(addr, "host", addr),
        )
        return _Refuse()


class _Refuse(Protocol):
    """
    A connection past the limit: closed as soon as made.
    """

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.abortConnection()
