"""
Twisted protocols for Mux, client and server.

They are thin: received bytes go to a sans-IO session
(L{txscales.mux._session}), the session's events become Deferred results,
and whatever the session wants written is written.  Time comes from an
injected clock.
"""

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from twisted.python.failure import Failure

from txscales._connection import DiscardedCall, noDelay
from txscales._draining import DrainingFactory
from txscales.interfaces import BUSY, CLOSED, OPEN
from txscales.errors import (
    ConnectError,
    ConnectionLostError,
    HandshakeTimeoutError,
    PingTimeoutError,
    ProtocolError,
    RequestNackedError,
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
from txscales.mux._serversession import Discarded, Dispatch, DrainAcknowledged, ServerSession

_log = Logger()


class MuxClientProtocol(Protocol):
    """
    A Mux client connection: one Deferred per outstanding tag.

    @ivar ready: fires with the protocol when the session is negotiated;
        fails if the connection closes first, or with
        L{HandshakeTimeoutError} (closing it) when the server has not
        completed the handshake within C{handshakeTimeout} seconds (None:
        no limit).
    @ivar closed: fires with None when the connection is gone.
    @ivar drainRequested: whether the server asked this session to drain.
    """

    def __init__(
        self,
        clock,
        maxFrameSize=DEFAULT_MAX_FRAME_SIZE,
        handshake=True,
        pingInterval=5.0,
        pingTimeout=4.0,
        handshakeTimeout=10.0,
    ):
        self._clock = clock
        self._handshakeTimeout = handshakeTimeout
        self._handshakeCall = None
        self._session = ClientSession(maxFrameSize, handshake=handshake)
        self._calls = {}
        self._holding = False
        self._pingInterval = pingInterval
        self._pingTimeout = pingTimeout
        self._pingCall = None
        self._leaseExpires = None
        self._closeReason = None
        self.drainRequested = False
        self.ready = Deferred()
        self.closed = Deferred()
        self.statusObservers = []

    @property
    def status(self):
        """
        C{"open"} while the session takes new calls; C{"busy"} while it is
        negotiating, draining or its lease has expired; C{"closed"} when gone.
        """
        state = self._session.state
        if state == "open" and self._leaseExpires is None and not self.drainRequested:
            return OPEN
        if state == "closed":
            return CLOSED
        if state != "open" or self.drainRequested:
            return BUSY
        if self._leaseExpires is not None and self._clock.seconds() >= self._leaseExpires:
            return BUSY
        return OPEN

    @property
    def pending(self):
        """
        How many calls wait for an answer.
        """
        return len(self._calls)

    def connectionMade(self):
        noDelay(self.transport)
        self._handle(self._session.start())
        self._flush()
        if not self.ready.called and self._handshakeTimeout is not None:
            self._handshakeCall = self._clock.callLater(self._handshakeTimeout, self._handshakeExpired)

    def _handshakeExpired(self):
        self._handshakeCall = None
        self._abort(HandshakeTimeoutError(self._handshakeTimeout))

    def dispatch(self, body, contexts=(), dst=b"", dtab=()):
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
        d = Deferred(lambda d: self._discard(tag, d))
        self._calls[tag] = d
        if not self._holding:
            self._flush()
        return d

    def _discard(self, tag, d):
        self._calls.pop(tag, None)
        written = self._session.discard(tag, b"call cancelled by the client")
        self._flush()
        d.errback(DiscardedCall(written))

    def dataReceived(self, data):
        try:
            events = self._session.receiveData(data)
        except ProtocolError as e:
            self._flush()
            self._abort(e)
            return
        self._flush()
        # Calls made by the callbacks of these answers are written together,
        # once every callback ran.
        self._holding = True
        try:
            self._handle(events)
        finally:
            self._holding = False
            self._flush()

    def _handle(self, events):
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
                self.transport.loseConnection()
            elif kind is Leased:
                self._leaseExpires = self._clock.seconds() + event.milliseconds / 1000.0
                self._notify()

    def _notify(self):
        for observer in list(self.statusObservers):
            observer(self)

    def _schedulePing(self, delay):
        if self._pingCall is not None and self._pingCall.active():
            self._pingCall.cancel()
        self._pingCall = None
        if self._pingInterval is not None and self._session.state == "open":
            self._pingCall = self._clock.callLater(delay, self._ping)

    def _ping(self):
        self._pingCall = None
        if self._session.ping():
            self._flush()
            self._pingCall = self._clock.callLater(self._pingTimeout, self._pingExpired)

    def _pingExpired(self):
        self._pingCall = None
        self._abort(PingTimeoutError("no Rping within %g s" % (self._pingTimeout,)))

    def _abort(self, error):
        _log.warn("closing Mux session: {error}", error=error)
        self._closeReason = error
        self.transport.abortConnection()

    def _flush(self):
        data = self._session.dataToSend()
        if data:
            self.transport.write(data)

    def close(self):
        """
        Close the connection now; outstanding calls fail.

        @return: L{closed}.
        """
        if self._session.state != "closed":
            self.transport.loseConnection()
        return self.closed

    def connectionLost(self, reason):
        for call in (self._pingCall, self._handshakeCall):
            if call is not None and call.active():
                call.cancel()
        self._pingCall = self._handshakeCall = None
        cause = self._closeReason if self._closeReason is not None else reason
        lost = self._session.connectionLost()
        calls, self._calls = self._calls, {}
        for tag, written in lost:
            d = calls.pop(tag, None)
            if d is not None:
                d.errback(ConnectionLostError(cause, mayHaveReachedServer=written))
        if not self.ready.called:
            if isinstance(cause, HandshakeTimeoutError):
                self.ready.errback(cause)
            else:
                self.ready.errback(
                    ConnectError("connection closed before the Mux session was ready: %s" % (getattr(cause, "value", cause),))
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

    def __init__(self, body, contexts=(), dst=b"", dtab=()):
        Dispatch.__init__(self, None, None, contexts, dst, dtab, body)


class MuxServerProtocol(Protocol):
    """
    A Mux server connection.  Requests are dispatched concurrently to
    C{service}, a callable taking a L{Request} and returning the reply body
    (bytes) or a Deferred of it.  A failure with L{RequestNackedError} is
    sent as a nack; any other failure as an error reply with its text.

    With C{timeouts} (a L{txscales._timers.ServerTimeouts}), a connection
    that does not complete its first message in time, is slower than the
    read timeout to complete a message, or stays idle too long is closed.

    @ivar sessionFactories: callables tried on the first bytes of the
        connection (at least 8); the first to return a session object
        replaces Mux for this connection (used for Thrift downgrade).
    """

    def __init__(
        self, service, clock, maxFrameSize=DEFAULT_MAX_FRAME_SIZE, fallbacks=(), drainGrace=1.0, timeouts=None
    ):
        self._service = service
        self._clock = clock
        self._timeouts = timeouts
        self._timers = None
        self._maxFrameSize = maxFrameSize
        self._fallbacks = fallbacks
        self._drainGrace = drainGrace
        self._graceTimer = None
        self._graceExpired = False
        self._session = None
        self._first = b""
        self._inflight = {}
        self._holding = False
        self.closed = Deferred()

    @property
    def session(self):
        """
        The session in use, once the first bytes chose it.
        """
        return self._session

    def connectionMade(self):
        noDelay(self.transport)
        self.factory.protocols.add(self)
        if self._timeouts is not None:
            self._timers = self._timeouts.watch(self.transport, self._busy)

    def _busy(self):
        return self._session is not None and self._session.pendingCount > 0

    def dataReceived(self, data):
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
                self._session = ServerSession(self._maxFrameSize)
        try:
            events = self._session.receiveData(data)
        except ProtocolError as e:
            _log.warn("closing Mux server session: {error}", error=e)
            self._flush()
            self.transport.loseConnection()
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
        finally:
            self._holding = False
            self._flush()
            self._closeIfDrained()

    def _answerLater(self, result, event):
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

    def _replied(self, body, requestId, tag):
        self._inflight.pop(requestId, None)
        if self._session.reply(requestId, tag, body) and not self._holding:
            self._flush()
        self._closeIfDrained()

    def _failed(self, failure, requestId, tag):
        self._inflight.pop(requestId, None)
        if failure.check(CancelledError):
            sent = False
        elif failure.check(RequestNackedError):
            sent = self._session.replyNack(requestId, tag, failure.value.flags)
        else:
            _log.failure("request failed", failure)
            value = failure.value
            sent = self._session.replyError(
                requestId, tag, "%s: %s" % (type(value).__name__, value), getattr(value, "flags", 0)
            )
        if sent and not self._holding:
            self._flush()
        self._closeIfDrained()

    def _flush(self):
        data = self._session.dataToSend()
        if data:
            self.transport.write(data)

    def drain(self):
        """
        Drain the session: Tdrain, nack new requests, close once the
        outstanding ones are answered.

        @return: L{closed}.
        """
        if self._session is None:
            self.transport.loseConnection()
        else:
            self._startDrain()
            self._flush()
            self._closeIfDrained()
        return self.closed

    def _startDrain(self):
        self._session.drain()
        if not self._session.negotiated and self._graceTimer is None:
            # Clients without the handshake may never answer Tdrain: after
            # a grace period, being idle is enough.
            self._graceTimer = self._clock.callLater(self._drainGrace, self._graceOver)

    def _graceOver(self):
        self._graceTimer = None
        self._graceExpired = True
        self._closeIfDrained()

    def _closeIfDrained(self):
        if self._session is not None and self._session.readyToClose(self._graceExpired):
            self.transport.loseConnection()

    def connectionLost(self, reason):
        if self._graceTimer is not None:
            self._graceTimer.cancel()
            self._graceTimer = None
        if self._timers is not None:
            self._timers.stop()
        self.factory.protocols.discard(self)
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

    @ivar protocols: the open connections.
    @ivar timeouts: the L{txscales._timers.ServerTimeouts} of the
        connections, or None for none.
    @ivar draining: whether L{drainAll<txscales._draining.DrainingFactory.drainAll>} was called.
    """

    def __init__(
        self, service, clock, maxFrameSize=DEFAULT_MAX_FRAME_SIZE, fallbacks=(), drainGrace=1.0, timeouts=None
    ):
        self._service = service
        DrainingFactory.__init__(self, clock)
        self._maxFrameSize = maxFrameSize
        self._fallbacks = tuple(fallbacks)
        self._drainGrace = drainGrace
        self.timeouts = timeouts

    def buildProtocol(self, addr):
        p = MuxServerProtocol(
            self._service, self._clock, self._maxFrameSize, self._fallbacks, self._drainGrace, self.timeouts
        )
        p.factory = self
        return p
