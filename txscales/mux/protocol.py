"""
Twisted protocols for Mux, client and server.

They are thin: received bytes go to a sans-IO session
(L{txscales.mux._session}), the session's events become Deferred results,
and whatever the session wants written is written.  Time comes from an
injected clock.
"""

from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple, Union

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IReactorTime,
    ITLSTransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger

from twisted.python.failure import Failure
from zope.interface import implementer

from txscales._connection import DiscardedCall, ReadThrottle, WriteWatch, noDelay
from txscales._draining import DrainingFactory
from txscales._ratelimit import RateLimitedLog, detached
from txscales._tls import tlsError
from txscales.interfaces import BUSY, CLOSED, OPEN
from txscales.errors import (
    ConnectError,
    ConnectionLostError,
    DiscardedTagsError,
    HandshakeTimeoutError,
    PingTimeoutError,
    ProtocolError,
    RequestNackedError,
    TlsError,
    TxScalesError,
)
from txscales.mux._framing import DEFAULT_MAX_FRAME_SIZE
from txscales.mux._clientsession import (
    ClientSession,
    DrainRequested,
    Drained,
    Failed,
    Leased,
    PingReplied,
    Ready,
    Replied,
)
from txscales.mux._serversession import DEFAULT_MAX_PENDING, Discarded, Dispatch, DrainAcknowledged, ServerSession
from txscales.mux._session import TLS_OFF, TLS_REQUIRED, StartTls

if TYPE_CHECKING:
    from txscales._timers import ConnectionTimers, ServerTimeouts

_log = Logger()

_MIN_PING_BUSY = 0.05
"""The least time (seconds) a ping waits before its session is busy."""

# (key, value) pairs: contexts, dtab entries.
_Pairs = Sequence[Tuple[bytes, bytes]]
# A Mux service: a request -> the reply body, or a Deferred of it.
_Service = Callable[[Dispatch], Any]
# A fallback: (the connection's first bytes, the largest frame) -> a session
# object that serves the connection instead of Mux, or None.
_Fallback = Callable[[bytes, int], Any]


@implementer(IHandshakeListener)
class MuxClientProtocol(Protocol):
    """
    A Mux client connection: one Deferred per outstanding tag.

    Its failure detector pings the server every C{pingInterval} seconds,
    and at once when a call is discarded (say, timed out) while no ping
    is outstanding: a ping waiting more than C{pingThreshold} times the
    longest of the last five round trips (and at least 50 ms) makes the
    session busy, one unanswered for C{pingTimeout} seconds closes it.
    More than C{maxDiscarded} discarded calls left unanswered by the
    server close it too (L{DiscardedTagsError}).

    With an opportunistic TLS level of C{desired} or C{required}, the
    connection switches to TLS in place when the server's Rinit agrees
    (MUX.md 1.4); dispatches wait until the TLS handshake is done.

    @ivar ready: fires with the protocol when the session is negotiated;
        fails if the connection closes first, or with
        L{HandshakeTimeoutError} (closing it) when the server has not
        completed the handshake within C{handshakeTimeout} seconds (None:
        no limit).
    @ivar closed: fires with None when the connection is gone.
    @ivar drainRequested: whether the server asked this session to drain.
    @param log: the L{RateLimitedLog} of lines the server can trigger (by
        default one of this connection's own).
    """

    transport: ITLSTransport

    def __init__(
        self,
        clock: IReactorTime,
        maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
        handshake: bool = True,
        pingInterval: Optional[float] = 5.0,
        pingTimeout: float = 4.0,
        handshakeTimeout: Optional[float] = 10.0,
        pingThreshold: float = 2.0,
        maxDiscarded: Optional[int] = 1000,
        opportunisticTls: bytes = TLS_OFF,
        tls: Optional[IOpenSSLClientConnectionCreator] = None,
        log: Optional[RateLimitedLog] = None,
    ) -> None:
        """
        @param opportunisticTls: the TLS level offered in Tinit, C{b"off"},
            C{b"desired"} or C{b"required"}.
        @param tls: the C{IOpenSSLClientConnectionCreator} to start TLS
            with when it is negotiated.
        @raise ValueError: for opportunistic TLS without C{tls}.
        """
        if opportunisticTls != TLS_OFF and tls is None:
            raise ValueError("opportunistic TLS needs the client's TLS settings")
        self._clock = clock
        self._tls = tls
        self._log = log if log is not None else RateLimitedLog(clock, _log)
        self._handshakeTimeout = handshakeTimeout
        self._handshakeCall: Optional[IDelayedCall] = None
        self._session = ClientSession(maxFrameSize, handshake=handshake, tls=opportunisticTls)
        self._calls: Dict[int, Deferred[Replied]] = {}
        self._holding = False
        self._pingInterval = pingInterval
        self._pingTimeout = pingTimeout
        self._pingCall: Optional[IDelayedCall] = None
        self._pingThreshold = pingThreshold
        self._pingSentAt: Optional[float] = None
        self._lastPing: Optional[float] = None
        self._rtts: Deque[float] = deque(maxlen=5)
        self._maxDiscarded = maxDiscarded
        self._leaseExpires: Optional[float] = None
        self._closeReason: Optional[Exception] = None
        self.drainRequested = False
        self.ready: Deferred[MuxClientProtocol] = Deferred()
        self.closed: Deferred[None] = Deferred()
        self.statusObservers: List[Callable[[MuxClientProtocol], object]] = []

    @property
    def status(self) -> str:
        """
        C{"open"} while the session takes new calls; C{"busy"} while it is
        negotiating, draining, its lease has expired or its ping is late;
        C{"closed"} when gone.
        """
        state = self._session.state
        if state == "open" and self._leaseExpires is None and self._pingSentAt is None and not self.drainRequested:
            return OPEN
        if state == "closed":
            return CLOSED
        if state != "open" or self.drainRequested:
            return BUSY
        if self._leaseExpires is not None and self._clock.seconds() >= self._leaseExpires:
            return BUSY
        sentAt = self._pingSentAt
        if sentAt is not None and self._pingLate(sentAt):
            return BUSY
        return OPEN

    @property
    def acceptsCalls(self) -> bool:
        """
        Whether the session takes new calls: a busy one whose ping or lease
        is late still does, when the balancer picks it all the same.
        """
        return self._session.state == "open" and not self.drainRequested

    def _pingLate(self, sentAt: float) -> bool:
        """
        @param sentAt: when the outstanding ping was sent.
        @return: whether the outstanding ping waited beyond the threshold.
        """
        bound = self._pingThreshold * max(self._rtts) if self._rtts else 0.0
        return self._clock.seconds() - sentAt > max(bound, _MIN_PING_BUSY)

    @property
    def pending(self) -> int:
        """
        How many calls wait for an answer.
        """
        return len(self._calls)

    def connectionMade(self) -> None:
        noDelay(self.transport)
        # A server that floods us with pings and reads nothing gets no
        # answers while our writes back up.  (A client never stops reading:
        # its answers free its calls.)
        self._writes = WriteWatch(self.transport, self._writesBackedUp)
        self._handle(self._session.start())
        self._flush()
        if not self.ready.called and self._handshakeTimeout is not None:
            self._handshakeCall = self._clock.callLater(
                self._handshakeTimeout, self._handshakeExpired, self._handshakeTimeout
            )

    def _handshakeExpired(self, timeout: float) -> None:
        self._handshakeCall = None
        self._abort(HandshakeTimeoutError(timeout))

    def _writesBackedUp(self, backedUp: bool) -> None:
        self._session.quiet = backedUp

    def dispatch(
        self, body: bytes, contexts: _Pairs = (), dst: Union[bytes, str] = b"", dtab: _Pairs = ()
    ) -> "Deferred[Replied]":
        """
        Send one request.

        @return: a Deferred firing with a L{Replied} (C{.body},
            C{.contexts}), or failing with a L{TxScalesError}.  Cancelling it
            discards the call (Tdiscarded) and fails it with L{DiscardedCall}.
        """
        try:
            tag = self._session.dispatch(body, contexts, dst, dtab)
        except TxScalesError as e:
            return fail(e)
        d: Deferred[Replied] = Deferred(lambda d: self._discard(tag, d))
        self._calls[tag] = d
        if not self._holding:
            self._flush()
        return d

    def _discard(self, tag: int, d: "Deferred[Replied]") -> None:
        self._calls.pop(tag, None)
        session = self._session
        written = session.discard(tag, b"call cancelled by the client")
        self._flush()
        d.errback(DiscardedCall(written))
        if not written or session.state != "open":
            return
        if self._maxDiscarded is not None and session.discarded > self._maxDiscarded:
            self._abort(DiscardedTagsError("%d discarded calls left unanswered" % (session.discarded,)))
        elif self._pingSentAt is None and self._pingInterval is not None:
            # A call given up on: is the server still there?  At most ten
            # such pings per interval.
            last = self._lastPing
            if last is None or self._clock.seconds() - last >= self._pingInterval / 10.0:
                self._schedulePing(0)

    def dataReceived(self, data: bytes) -> None:
        # The answers that came before a frame breaking the protocol are
        # delivered; the calls still waiting then fail as the connection
        # closes.
        events, error = self._session.receiveDataUntilError(data)
        if events and type(events[0]) is StartTls:
            # Nothing is queued: the session holds its dispatches until
            # handshakeCompleted.  Only a session offering TLS negotiates
            # it, and one offering it has its settings (see __init__).
            assert self._tls is not None
            self.transport.startTLS(self._tls)
        self._flush()
        # Calls made by the callbacks of these answers are written together,
        # once every callback ran.
        self._holding = True
        try:
            self._handle(events)
        finally:
            self._holding = False
            self._flush()
            if error is not None:
                self._abort(error)

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake is done: a session that negotiated TLS opens.
        """
        events = self._session.tlsStarted()
        if events:
            self._handle(events)
            self._flush()

    def _handle(self, events: List[Any]) -> None:
        # The session has already freed the tags of these answers.  Take
        # every answered Deferred out of the tag map before running any
        # callback: a callback may dispatch a new call that reuses one of
        # those tags, and must not receive the answer meant for it.
        calls = self._calls
        answered = [calls.pop(e.tag, None) if type(e) in (Replied, Failed) else None for e in events]
        for event, d in zip(events, answered):
            kind = type(event)
            if kind is Replied:
                if d is not None:
                    d.callback(event)
            elif kind is Failed:
                if d is not None:
                    d.errback(event.error)
            elif kind is PingReplied:
                if self._pingSentAt is not None:
                    self._rtts.append(self._clock.seconds() - self._pingSentAt)
                    self._pingSentAt = None
                if self._pingInterval is not None:
                    self._schedulePing(self._pingInterval)
            elif kind is Ready:
                if self._handshakeCall is not None:
                    self._handshakeCall.cancel()
                    self._handshakeCall = None
                self._schedulePing(0)
                self.ready.callback(self)
            elif kind is DrainRequested:
                self.drainRequested = True
                self._notify()
            elif kind is Drained:
                self._writes.close()
            elif kind is Leased:
                self._leaseExpires = self._clock.seconds() + event.milliseconds / 1000.0
                self._notify()

    def _notify(self) -> None:
        for observer in list(self.statusObservers):
            observer(self)

    def _schedulePing(self, delay: float) -> None:
        if self._pingCall is not None and self._pingCall.active():
            self._pingCall.cancel()
        self._pingCall = None
        if self._pingInterval is not None and self._session.state == "open":
            self._pingCall = self._clock.callLater(delay, self._ping)

    def _ping(self) -> None:
        self._pingCall = None
        if self._session.ping():
            self._pingSentAt = self._lastPing = self._clock.seconds()
            # Armed before writing: a transport may deliver the answer at once.
            self._pingCall = self._clock.callLater(self._pingTimeout, self._pingExpired)
            self._flush()

    def _pingExpired(self) -> None:
        self._pingCall = None
        self._abort(PingTimeoutError("no Rping within %g s" % (self._pingTimeout,)))

    def _abort(self, error: Exception) -> None:
        self._log.warn("closing Mux session: {error}", error=error)
        self._closeReason = error
        self.transport.abortConnection()

    def _flush(self) -> None:
        data = self._session.dataToSend()
        if data:
            self.transport.write(data)

    def close(self) -> "Deferred[None]":
        """
        Close the connection now; outstanding calls fail.

        @return: L{closed}.
        """
        if self._session.state != "closed":
            self._writes.close()
        return self.closed

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        for call in (self._pingCall, self._handshakeCall):
            if call is not None and call.active():
                call.cancel()
        self._pingCall = self._handshakeCall = None
        cause = self._closeReason if self._closeReason is not None else reason
        # Once ready, the session spoke over an established TLS connection.
        failedTls = cause if isinstance(cause, TlsError) else tlsError(reason, self.transport, self.ready.called)
        lost = self._session.connectionLost()
        calls, self._calls = self._calls, {}
        for tag, written in lost:
            d = calls.pop(tag, None)
            if d is not None:
                d.errback(failedTls or ConnectionLostError(cause, mayHaveReachedServer=written))
        if not self.ready.called:
            if isinstance(cause, HandshakeTimeoutError):
                self.ready.errback(cause)
            else:
                self.ready.errback(
                    failedTls
                    or ConnectError("connection closed before the Mux session was ready: %s" % (getattr(cause, "value", cause),))
                )
        self._notify()
        self.closed.callback(None)


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
        self._holding = False
        self.badRequests = 0
        self.closed: Deferred[None] = Deferred()

    @property
    def session(self) -> Any:
        """
        The session in use, once the first bytes chose it.
        """
        return self._session

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
        self._flush()
        # Answers made while these events are handled are written together,
        # once they all are.
        self._holding = True
        service = self._service
        session = self._session
        try:
            for event in events:
                kind = type(event)
                if kind is Dispatch:
                    try:
                        result = service(event)
                    except Exception:
                        self._failed(Failure(), event.requestId, event.tag)
                        continue
                    if type(result) is bytes:
                        # Written with the others below.
                        session.reply(event.requestId, event.tag, result)
                    else:
                        self._answerLater(result, event)
                elif kind is Discarded:
                    d = self._inflight.pop(event.requestId, None)
                    if d is not None:
                        d.cancel()
                elif kind is DrainAcknowledged:
                    self._closeIfDrained()
                elif kind is StartTls:
                    # Rinit went out in cleartext above; what follows is TLS.
                    self.transport.startTLS(self._tls)
        finally:
            self._holding = False
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
        if isinstance(value, CancelledError):
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
    ) -> None:
        """
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
            self._service,
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
