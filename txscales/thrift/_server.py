"""
The plain Thrift server: a generated service's handler behind a framed or
buffered listener, binary and compact (chosen by each call's first byte).

Calls on a connection are read as they arrive and run concurrently; their
replies are written in call order.  One-way calls run and get no reply.
Stopping the service stops listening, lets every connection finish the calls
it received, and closes it.
"""

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Union

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IAddress, ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger

from twisted.python.failure import Failure

from txscales._connection import ReadThrottle, noDelay
from txscales._draining import DrainingFactory
from txscales._listening import ListeningService
from txscales._ratelimit import RateLimitedLog, detached
from txscales.errors import ProtocolError, RequestNackedError
from txscales.thrift._framing import DEFAULT_MAX_MESSAGE_SIZE, FRAMED
from txscales.thrift._processor import ThriftProcessor
from txscales.thrift._session import Call, ServerSession

if TYPE_CHECKING:
    from txscales._timers import ConnectionTimers, ServerTimeouts
    from txscales.stats import Stats

_log = Logger()

DEFAULT_MAX_PENDING = 1000
"""How many calls a connection runs (or holds unanswered) at once by
default."""

# What serves one call: its message bytes -> the reply bytes, or a Deferred
# of them (b"" for a one-way call).
_Process = Callable[[bytes], Any]


def countedProcess(process: Callable[[Any], Any], stats: "Stats", clock: Any) -> Callable[[Any], Any]:
    """
    Count a server's calls: the one stats wrapper of the plain Thrift and
    ThriftMux servers.

    @param process: a function of one call (a Thrift message, a Mux
        request) returning its reply bytes or a Deferred of them, or
        raising.
    @param stats: a L{txscales.stats.Stats} for the server.
    @param clock: an C{IReactorTime} (its C{seconds}).
    @return: C{process}, counting each call's outcome and latency in
        C{stats}.
    """
    started = stats.started
    succeeded = stats.succeeded
    seconds = clock.seconds

    def counted(call: Any) -> Any:
        started()
        start = seconds()
        try:
            result = process(call)
        except Exception as e:
            stats.failed(e, seconds() - start)
            raise
        # Replies are usually bytes: checked first, isinstance() is slower.
        if type(result) is bytes:
            succeeded(seconds() - start)
            return result
        if isinstance(result, Deferred):
            return stats.settled(result, seconds, start)
        succeeded(seconds() - start)
        return result

    return counted


class ThriftServerProtocol(Protocol):
    """
    One plain Thrift server connection.

    Reading stops while C{maxPending} calls wait for their reply (plain
    Thrift cannot refuse a call), and while the unsent replies pass the
    transport's high-water mark (L{txscales._connection.ReadThrottle}).

    @ivar closed: fires with None once the connection is gone.
    """

    transport: ITCPTransport
    # Made by connectionMade, with the transport.
    _throttle: ReadThrottle

    def __init__(
        self,
        process: _Process,
        transport: str = FRAMED,
        maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
        maxPending: int = DEFAULT_MAX_PENDING,
        timeouts: "Optional[ServerTimeouts]" = None,
    ) -> None:
        self._process = process
        self._maxPending = maxPending
        self._session = ServerSession(transport, maxMessageSize)
        self._timeouts = timeouts
        self._timers: "Optional[ConnectionTimers]" = None
        self._inflight: Dict[int, Deferred[Any]] = {}
        self._lost = False
        self.closed: Deferred[None] = Deferred()

    @property
    def session(self) -> ServerSession:
        """
        The connection's L{txscales.thrift._session.ServerSession}.
        """
        return self._session

    def describe(self) -> Dict[str, Any]:
        """
        @return: the connection for the admin page: its C{pending} calls
            (received, not yet answered).
        """
        return {"pending": self._session.pendingCount}

    def connectionMade(self) -> None:
        noDelay(self.transport)
        self._throttle = ReadThrottle(self.transport)
        self.factory.protocols.add(self)
        if self._timeouts is not None:
            self._timers = self._timeouts.watch(self.transport, self._busy)
        if self.factory.draining:
            # Accepted just before the server stopped listening.
            self.drain()

    def dataReceived(self, data: bytes) -> None:
        try:
            calls = self._session.receiveData(data)
        except ProtocolError as e:
            self.factory.log.warn("closing Thrift connection: {error}", error=detached(e))
            self._flush()
            self._throttle.close()
            return
        if self._timers is not None:
            self._timers.received(len(data), self._session.bufferedSize())
        for call in calls:
            self._dispatch(call)
        self._flush()
        if self._session.pendingCount >= self._maxPending:
            self._throttle.hold("pending")

    def _busy(self) -> bool:
        return self._session.pendingCount > 0 or bool(self._inflight)

    def _dispatch(self, call: Call) -> None:
        try:
            result = self._process(call.message)
        except ProtocolError as e:
            self.factory.log.warn("closing Thrift connection: {error}", error=detached(e))
            self._throttle.close()
            return
        except Exception:
            # A handler's nack, raised at once, ends here too.
            self._failed(Failure(), call.requestId)
            return
        if type(result) is bytes:
            self._session.reply(call.requestId, result)
            return
        self._inflight[call.requestId] = result
        args = (call.requestId,)
        result.addCallbacks(self._replied, self._failed, args, errbackArgs=args)

    def _replied(self, message: bytes, requestId: int) -> None:
        self._inflight.pop(requestId, None)
        if self._session.reply(requestId, message):
            self._flush()
        self._closeIfDrained()

    def _failed(self, failure: Failure, requestId: int) -> None:
        self._inflight.pop(requestId, None)
        if failure.check(CancelledError) and self._lost:
            # Cancelled because the connection is gone.
            return
        # Plain Thrift has no error or nack reply: the client learns that
        # its call failed from the connection closing.
        if failure.check(RequestNackedError):
            self.factory.log.warn("Thrift call refused (nack); closing the connection")
        else:
            self.factory.log.failure("Thrift call failed without a reply; closing the connection", failure)
        self._throttle.close()

    def _flush(self) -> None:
        data = self._session.dataToSend()
        if data:
            self.transport.write(data)
        if self._throttle.paused and self._session.pendingCount < self._maxPending:
            self._throttle.release("pending")
        self._closeIfDrained()

    def drain(self) -> "Deferred[None]":
        """
        Answer the calls received, then close.

        @return: L{closed}.
        """
        self._session.drain()
        self._closeIfDrained()
        return self.closed

    def _closeIfDrained(self) -> None:
        # One-way calls still running hold the connection open too.
        if self._session.readyToClose() and not self._inflight:
            self._throttle.close()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._timers is not None:
            self._timers.stop()
        self.factory.protocols.discard(self)
        self._session.connectionLost()
        self._lost = True
        inflight, self._inflight = self._inflight, {}
        for d in inflight.values():
            d.cancel()
        self.closed.callback(None)


class ThriftServerFactory(DrainingFactory):
    """
    Make L{ThriftServerProtocol}s running C{process} on each call, and drain
    them on stop.

    @ivar protocols: the open connections.
    @ivar draining: whether L{drainAll<txscales._draining.DrainingFactory.drainAll>} was called.
    @ivar log: the L{RateLimitedLog} of lines the connections' peers can
        trigger.
    @ivar timeouts: the L{txscales._timers.ServerTimeouts} of the
        connections, or None for none.
    """

    def __init__(
        self,
        process: _Process,
        clock: Any,
        transport: str = FRAMED,
        maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
        maxPending: int = DEFAULT_MAX_PENDING,
        timeouts: "Optional[ServerTimeouts]" = None,
    ) -> None:
        ServerSession(transport, maxMessageSize)  # check the transport name
        self._process = process
        self.maxPending = maxPending
        DrainingFactory.__init__(self, clock)
        self.log = RateLimitedLog(clock, _log)
        self._transport = transport
        self._maxMessageSize = maxMessageSize
        self.timeouts = timeouts

    def buildProtocol(self, addr: Optional[IAddress]) -> ThriftServerProtocol:
        p = ThriftServerProtocol(self._process, self._transport, self._maxMessageSize, self.maxPending, self.timeouts)
        p.factory = self
        return p


def serverFactory(
    iface: type,
    handler: object,
    reactor: Any,
    transport: str = FRAMED,
    maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
    stats: "Optional[Stats]" = None,
    maxPending: int = DEFAULT_MAX_PENDING,
    timeouts: "Optional[ServerTimeouts]" = None,
) -> ThriftServerFactory:
    """
    @param iface: the generated C{Iface} class, or a service class
        L{txscales.thrift.loadIdl} loaded.
    @param handler: an object with one method per service method.
    @param reactor: the reactor (its clock times drains and calls).
    @param transport: C{"framed"} or C{"buffered"}.
    @param maxMessageSize: the largest call (or frame) accepted.
    @param stats: a L{txscales.stats.Stats} for the server, or None.
    @param maxPending: how many calls of one connection run at once;
        reading stops at that many.
    @param timeouts: the L{txscales._timers.ServerTimeouts} of its
        connections, or None for none.
    @return: a L{ThriftServerFactory} serving C{handler} for the generated
        service C{iface}.
    """
    process: _Process = ThriftProcessor(iface, handler, reactor).process
    if stats is not None:
        process = countedProcess(process, stats, reactor)
    return ThriftServerFactory(process, reactor, transport, maxMessageSize, maxPending, timeouts)


class ThriftServerService(ListeningService):
    """
    A service that serves plain Thrift on a Twisted server endpoint string
    and, when stopped, stops listening, lets every connection answer the
    calls it received, and closes it (aborting those still open after the
    drain timeout).

    @ivar factory: the L{ThriftServerFactory}.
    @ivar port: the listening port once started.
    @ivar listening: a Deferred firing with the port once listening.
    """

    defaultDrainTimeout = 10.0
    description = "Thrift"
