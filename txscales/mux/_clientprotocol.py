"""
The Twisted protocol of a Mux client connection (re-exported by
L{txscales.mux.protocol}).

It is thin: received bytes go to a sans-IO L{ClientSession}, the session's
events become Deferred results, and whatever the session wants written is
written.  Time comes from an injected clock.
"""

from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple, Union, cast

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import (
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

from txscales._connection import DiscardedCall, WriteWatch, noDelay
from txscales._deferreds import leanDeferred
from txscales._ratelimit import RateLimitedLog
from txscales._tls import tlsError
from txscales.interfaces import BUSY, CLOSED, OPEN
from txscales.errors import (
    ConnectError,
    ConnectionLostError,
    DiscardedTagsError,
    HandshakeTimeoutError,
    PingTimeoutError,
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
from txscales.mux._session import TLS_OFF, StartTls

# Named after the public module, as the log lines' namespace always was.
_log = Logger(namespace="txscales.mux.protocol")

_MIN_PING_BUSY = 0.05
"""The least time (seconds) a ping waits before its session is busy."""

# (key, value) pairs: contexts, dtab entries.
_Pairs = Sequence[Tuple[bytes, bytes]]


class _Call(Deferred[Replied]):
    """
    The Deferred of one dispatched call: it carries its tag, so that one
    canceller, a method of the protocol, serves every call (no closure
    made per call), and keeps its attributes, the tag included, inline
    (L{leanDeferred}: a slot would stop CPython 3.13 from keeping them
    inline).
    """

    tag: int


leanDeferred(_Call, "tag")


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
        self._canceller = self._cancelCall
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
        d = _Call(self._canceller)
        d.tag = tag
        self._calls[tag] = d
        if not self._holding:
            self._flush()
        return d

    def _cancelCall(self, d: "Deferred[Replied]") -> None:
        self._discard(cast(_Call, d).tag, d)

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
