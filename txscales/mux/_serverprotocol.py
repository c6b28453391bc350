"""
The Twisted protocol of a Mux server connection and its factory
(re-exported by L{txscales.mux.protocol}).

They are thin: received bytes go to a sans-IO L{ServerSession} (or the
session of a fallback protocol), requests go to the service, and whatever
the session wants written is written.  Time comes from an injected clock.
"""

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, ITLSTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger

from twisted.python.failure import Failure

from txscales._connection import ReadThrottle, noDelay
from txscales._draining import DrainingFactory
from txscales._ratelimit import RateLimitedLog, detached
from txscales.errors import ProtocolError, RequestNackedError
from txscales.mux._framing import DEFAULT_MAX_FRAME_SIZE
from txscales.mux._serversession import DEFAULT_MAX_PENDING, Discarded, Dispatch, DrainAcknowledged, ServerSession
from txscales.mux._session import TLS_OFF, TLS_REQUIRED, StartTls

if TYPE_CHECKING:
    from txscales._timers import ConnectionTimers, ServerTimeouts

# Named after the public module, as the log lines' namespace always was.
_log = Logger(namespace="txscales.mux.protocol")

# (key, value) pairs: contexts, dtab entries.
_Pairs = Sequence[Tuple[bytes, bytes]]
# A Mux service: a request -> the reply body, or a Deferred of it.
_Service = Callable[[Dispatch], Any]
# A fallback: (the connection's first bytes, the largest frame) -> a session
# object that serves the connection instead of Mux, or None.
_Fallback = Callable[[bytes, int], Any]


class Request(Dispatch):
    """
    A request as a Mux service sees it.  The server hands its service the
    session's L{Dispatch} event itself, which has these attributes; build a
    C{Request} to call a service yourself (in tests, say).

    @ivar body: the payload.
    @ivar contexts: list of (key bytes, value bytes) broadcast contexts.
    @ivar dst: the destination path bytes.
    @ivar dtab: list of (prefix bytes, name-tree bytes).
    """

    __slots__ = ()

    def __init__(self, body: bytes, contexts: _Pairs = (), dst: Union[bytes, str] = b"", dtab: _Pairs = ()) -> None:
        Dispatch.__init__(self, None, None, contexts, dst, dtab, body)


class MuxServerProtocol(Protocol):
    """
    A Mux server connection.  Requests are dispatched concurrently to
    C{service}, a callable taking a L{Request} and returning the reply body
    (bytes) or a Deferred of it.  A failure with L{RequestNackedError} is
    sent as a nack; any other failure as an error reply with its text.

    At most C{maxPending} requests of a connection run at once: a Mux
    session nacks the ones past it; a downgraded session (which cannot nack)
    stops reading until some are answered.  Reading also stops while the
    connection's unsent answers pass the transport's high-water mark
    (L{txscales._connection.ReadThrottle}).

    With C{timeouts} (a L{txscales._timers.ServerTimeouts}), a connection
    that does not complete its first message in time, is slower than the
    read timeout to complete a message, or stays idle too long is closed.

    @ivar sessionFactories: callables tried on the first bytes of the
        connection (at least 8); the first to return a session object
        replaces Mux for this connection (used for Thrift downgrade).
    @ivar badRequests: how many requests the service refused as malformed
        (failing with a L{ProtocolError}).  They are answered with an error;
        the first is logged, and the count when the connection closes.
    """

    transport: ITLSTransport
    # Made by connectionMade, with the transport.
    _throttle: ReadThrottle

    def __init__(
        self,
        service: _Service,
        clock: IReactorTime,
        maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
        fallbacks: Sequence[_Fallback] = (),
        drainGrace: float = 1.0,
        opportunisticTls: bytes = TLS_OFF,
        tls: Any = None,
        maxPending: int = DEFAULT_MAX_PENDING,
        timeouts: "Optional[ServerTimeouts]" = None,
    ) -> None:
        """
        @param opportunisticTls: the TLS level answered in Rinit, C{b"off"},
            C{b"desired"} or C{b"required"} (Thrift fallbacks are then off).
        @param tls: the server's TLS settings (e.g.
            C{twisted.internet.ssl.CertificateOptions}) for starting TLS
            when it is negotiated.
        @param maxPending: how many requests of this connection run at once.
        @param timeouts: a L{txscales._timers.ServerTimeouts}, or None.
        """
        self._service = service
        self._opportunisticTls = opportunisticTls
        self._tls = tls
        self._maxPending = maxPending
        self._clock = clock
        self._timeouts = timeouts
        self._timers: "Optional[ConnectionTimers]" = None
        self._maxFrameSize = maxFrameSize
        self._fallbacks = fallbacks
        self._drainGrace = drainGrace
        self._graceTimer: Optional[IDelayedCall] = None
        self._graceExpired = False
        # A ServerSession, or what a fallback made, once the first bytes came.
        self._session: Any = None
        self._first = b""
        self._inflight: Dict[int, Deferred[Any]] = {}
        self._cancelling = False
        self._holding = False
        self.badRequests = 0
        self.closed: Deferred[None] = Deferred()

    @property
    def session(self) -> Any:
        """
        The session in use, once the first bytes chose it.
        """
        return self._session

    def describe(self) -> Dict[str, Any]:
        """
        @return: the session for the admin page: its C{pending} requests
            (received, not yet answered), Mux's or a Thrift fallback's.
        """
        session = self._session
        return {"pending": session.pendingCount if session is not None else 0}

    def connectionMade(self) -> None:
        noDelay(self.transport)
        self._throttle = ReadThrottle(self.transport)
        self.factory.protocols.add(self)
        if self._timeouts is not None:
            self._timers = self._timeouts.watch(self.transport, self._busy)

    def _busy(self) -> bool:
        return self._session is not None and self._session.pendingCount > 0

    def dataReceived(self, data: bytes) -> None:
        received = len(data)
        if self._session is None:
            data = self._first + data
            if len(data) < 8:
                self._first = data
                if self._timers is not None:
                    self._timers.received(received, len(data))
                return
            self._first = b""
            for fallback in self._fallbacks:
                self._session = fallback(data, self._maxFrameSize)
                if self._session is not None:
                    break
            else:
                self._session = ServerSession(self._maxFrameSize, maxPending=self._maxPending, tls=self._opportunisticTls)
        try:
            events = self._session.receiveData(data)
        except ProtocolError as e:
            self.factory.log.warn("closing Mux server session: {error}", error=detached(e))
            self._flush()
            self._throttle.close()
            return
        if self._timers is not None:
            self._timers.received(received, self._session.bufferedSize())
        if self.factory.draining and self._session.state == "open":
            # Opened while the server drains: drain once negotiated.
            self._startDrain()
        # What the session wrote for these bytes (Rping, Rdiscarded, nacks)
        # and the answers made while their events are handled are written
        # together, once they all are.
        self._holding = True
        service = self._service
        session = self._session
        # The requests answered at once (bytes), each followed by its
        # answer, for the Mux session to encode together.
        answered: List[Any] = []
        batched = type(session) is ServerSession
        try:
            for event in events:
                kind = type(event)
                if kind is Dispatch:
                    try:
                        result = service(event)
                    except Exception:
                        self._failed(Failure(), event.requestId, event.tag)
                        continue
                    if type(result) is not bytes:
                        self._answerLater(result, event)
                    elif batched:
                        answered.append(event)
                        answered.append(result)
                    else:
                        session.reply(event.requestId, event.tag, result)
                elif kind is Discarded:
                    d = self._inflight.pop(event.requestId, None)
                    if d is not None:
                        self._cancelling = True
                        try:
                            d.cancel()
                        finally:
                            self._cancelling = False
                elif kind is DrainAcknowledged:
                    self._closeIfDrained()
                elif kind is StartTls:
                    # Rinit goes out in cleartext; what follows is TLS.
                    self._flush()
                    self.transport.startTLS(self._tls)
        finally:
            self._holding = False
            if answered:
                session.replyMany(answered)
            self._flush()
            if session.pendingCount >= self._maxPending and type(session) is not ServerSession:
                # A Mux session nacks past the cap; a downgraded one cannot.
                self._throttle.hold("pending")
            self._closeIfDrained()

    def _answerLater(self, result: Any, event: Dispatch) -> None:
        # isinstance() against Deferred (an ABCMeta class) is slow.
        if type(result) is not Deferred and not isinstance(result, Deferred):
            self._replied(result, event.requestId, event.tag)
            return
        self._inflight[event.requestId] = result
        result.addCallbacks(
            self._replied,
            self._failed,
            callbackArgs=(event.requestId, event.tag),
            errbackArgs=(event.requestId, event.tag),
        )

    def _replied(self, body: bytes, requestId: int, tag: int) -> None:
        self._inflight.pop(requestId, None)
        if self._session.reply(requestId, tag, body) and not self._holding:
            self._flush()
        self._closeIfDrained()

    def _failed(self, failure: Failure, requestId: int, tag: int) -> None:
        self._inflight.pop(requestId, None)
        value = failure.value
        if isinstance(value, CancelledError) and self._cancelling:
            # Cancelled for the peer's Tdiscarded (which the session
            # answered) or for the lost connection: nothing to answer.
            sent = False
        elif isinstance(value, RequestNackedError):
            sent = self._session.replyNack(requestId, tag, value.flags)
        else:
            if isinstance(value, ProtocolError):
                # The peer's fault, not the service's: no traceback.
                self.badRequests += 1
                if self.badRequests == 1:
                    self.factory.log.warn("bad request on a Mux server session: {error}", error=detached(value))
            else:
                self.factory.log.failure("request failed", failure)
            sent = self._session.replyError(
                requestId, tag, "%s: %s" % (type(value).__name__, value), getattr(value, "flags", 0)
            )
        if sent and not self._holding:
            self._flush()
        self._closeIfDrained()

    def _flush(self) -> None:
        data = self._session.dataToSend()
        if data:
            self.transport.write(data)
        if self._throttle.paused and self._session.pendingCount < self._maxPending:
            self._throttle.release("pending")

    def drain(self) -> "Deferred[None]":
        """
        Drain the session: Tdrain, nack new requests, close once the
        outstanding ones are answered.

        @return: L{closed}.
        """
        if self._session is None:
            self._throttle.close()
        else:
            self._startDrain()
            self._flush()
            self._closeIfDrained()
        return self.closed

    def _startDrain(self) -> None:
        self._session.drain()
        if not self._session.negotiated and self._graceTimer is None:
            # Clients without the handshake may never answer Tdrain: after
            # a grace period, being idle is enough.
            self._graceTimer = self._clock.callLater(self._drainGrace, self._graceOver)

    def _graceOver(self) -> None:
        self._graceTimer = None
        self._graceExpired = True
        self._closeIfDrained()

    def _closeIfDrained(self) -> None:
        if self._session is not None and self._session.readyToClose(self._graceExpired):
            self._throttle.close()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._graceTimer is not None:
            self._graceTimer.cancel()
            self._graceTimer = None
        if self._timers is not None:
            self._timers.stop()
        self.factory.protocols.discard(self)
        if self.badRequests > 1:
            self.factory.log.warn("a Mux server session had {count} bad requests", count=self.badRequests)
        if self._session is not None:
            self._session.connectionLost()
        inflight, self._inflight = self._inflight, {}
        self._cancelling = True
        for d in inflight.values():
            d.cancel()
        self.closed.callback(None)


class MuxServerFactory(DrainingFactory):
    """
    Make L{MuxServerProtocol}s for C{service} and drain them on stop.

    A drained session closes once its requests are answered and the client
    answered Tdrain; a session without the handshake (which may never
    answer) closes once idle after C{drainGrace} seconds.

    @ivar maxPending: how many requests of one connection run at once (see
        L{MuxServerProtocol}).
    @ivar protocols: the open connections.
    @ivar timeouts: the L{txscales._timers.ServerTimeouts} of the
        connections, or None for none.
    @ivar draining: whether L{drainAll<txscales._draining.DrainingFactory.drainAll>} was called.
    @ivar log: the L{RateLimitedLog} of lines the sessions' peers can
        trigger.
    """

    def __init__(
        self,
        service: _Service,
        clock: IReactorTime,
        maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
        fallbacks: Sequence[_Fallback] = (),
        drainGrace: float = 1.0,
        opportunisticTls: bytes = TLS_OFF,
        tls: Any = None,
        maxPending: int = DEFAULT_MAX_PENDING,
        timeouts: "Optional[ServerTimeouts]" = None,
        servicePerPeer: "Optional[Callable[[Optional[IAddress]], _Service]]" = None,
    ) -> None:
        """
        @param servicePerPeer: when given, makes each connection's service
            from its peer's address (for services that record it), instead
            of C{service} serving them all.
        @param opportunisticTls: see L{MuxServerProtocol}; with
            C{b"required"}, clients that do not negotiate (Thrift
            fallbacks included) are refused.
        @param tls: the server's TLS settings, needed unless
            C{opportunisticTls} is C{b"off"}.
        @param maxPending: how many requests of one connection run at once.
        @param timeouts: the L{txscales._timers.ServerTimeouts} of the
            connections, or None.
        @raise ValueError: for opportunistic TLS without C{tls}.
        """
        if opportunisticTls != TLS_OFF and tls is None:
            raise ValueError("opportunistic TLS needs the server's TLS settings")
        self._service = service
        self._servicePerPeer = servicePerPeer
        self.maxPending = maxPending
        DrainingFactory.__init__(self, clock)
        self.log = RateLimitedLog(clock, _log)
        self._maxFrameSize = maxFrameSize
        self._fallbacks = () if opportunisticTls == TLS_REQUIRED else tuple(fallbacks)
        self._drainGrace = drainGrace
        self._opportunisticTls = opportunisticTls
        self._tlsOptions = tls
        self.timeouts = timeouts

    def buildProtocol(self, addr: Optional[IAddress]) -> "MuxServerProtocol":
        p = MuxServerProtocol(
            self._service if self._servicePerPeer is None else self._servicePerPeer(addr),
            self._clock,
            self._maxFrameSize,
            self._fallbacks,
            self._drainGrace,
            opportunisticTls=self._opportunisticTls,
            tls=self._tlsOptions,
            maxPending=self.maxPending,
            timeouts=self.timeouts,
        )
        p.factory = self
        return p
