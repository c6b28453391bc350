"""
The timeouts of a server's connections, so that a slow or silent peer
cannot hold a connection (and the bytes it declared) forever:

  - B{handshake}: a connection must complete its first message (a Mux
    Tinit or request, a Thrift call) within this many seconds;
  - B{read}: once the first bytes of a message arrived, the rest must
    arrive within this many seconds, however slowly they trickle in;
  - B{idle}: a connection that received nothing for this many seconds,
    with no request outstanding, is closed.

Each connection's protocol asks L{ServerTimeouts.watch} for a
L{ConnectionTimers}, tells it what it received, and stops it when the
connection is lost.  Closing is logged, at most one line of each kind
every ten seconds (L{txscales._ratelimit.RateLimitedLog}).
"""

from typing import Any, Callable, Optional

from twisted.logger import Logger

from txscales._ratelimit import RateLimitedLog

_log = Logger()

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_IDLE_TIMEOUT = 300.0


class ServerTimeouts:
    """
    The handshake, read and idle timeouts of one server's connections (see
    the module docstring); None turns one off.

    @ivar handshake: seconds a connection has to complete its first
        message.
    @ivar read: seconds a message has to arrive in full once it started.
    @ivar idle: seconds a connection with no request outstanding may stay
        silent.
    @ivar closed: how many connections each timeout closed, by kind
        (C{"handshake"}, C{"read"}, C{"idle"}).
    """

    def __init__(
        self,
        clock: Any,
        handshake: Optional[float] = DEFAULT_HANDSHAKE_TIMEOUT,
        read: Optional[float] = DEFAULT_READ_TIMEOUT,
        idle: Optional[float] = DEFAULT_IDLE_TIMEOUT,
        description: str = "txscales",
    ) -> None:
        """
        @param clock: an C{IReactorTime}.
        @param description: what the server serves, for the log.
        """
        self.handshake = handshake
        self.read = read
        self.idle = idle
        self.description = description
        self.closed = {"handshake": 0, "read": 0, "idle": 0}
        self._clock = clock
        self._log = RateLimitedLog(clock, _log, burst=1, interval=10.0)

    def watch(self, transport: Any, busy: Callable[[], bool]) -> "ConnectionTimers":
        """
        Start timing a new connection.

        @param transport: its transport, aborted when a timeout expires.
        @param busy: says whether the connection has requests outstanding
            (an idle connection is closed only when it has none).
        @return: the connection's L{ConnectionTimers}.
        """
        return ConnectionTimers(self, self._clock, transport, busy)

    def _expired(self, kind: str, transport: Any, why: str) -> None:
        self.closed[kind] += 1
        peer = transport.getPeer()
        # One kind of line (one allowance) per kind of timeout.
        self._log.warn(
            "txscales: {what}: closed a connection (%s timeout) from {host}: {why}" % (kind,),
            what=self.description,
            host=getattr(peer, "host", peer),
            why=why,
        )
        transport.abortConnection()


class ConnectionTimers:
    """
    The timers of one server connection (made by L{ServerTimeouts.watch}).

    The idle timer is not moved on every read: it fires, sees when the
    connection last received something, and waits again if need be.
    """

    def __init__(self, timeouts: ServerTimeouts, clock: Any, transport: Any, busy: Callable[[], bool]) -> None:
        self._timeouts = timeouts
        self._clock = clock
        self._transport = transport
        self._busy = busy
        self._buffered = 0
        self._lastReceived = clock.seconds()
        self._handshakeCall = self._readCall = self._idleCall = None
        if timeouts.handshake is not None:
            self._handshakeCall = clock.callLater(timeouts.handshake, self._handshakeExpired, timeouts.handshake)
        if timeouts.idle is not None:
            self._idleCall = clock.callLater(timeouts.idle, self._idleExpired, timeouts.idle)

    def received(self, count: int, buffered: int) -> None:
        """
        The connection received C{count} bytes.

        @param buffered: how many received bytes now wait for the rest of
            their message: bytes leave the buffer only when a message is
            complete, so less than before plus C{count} means one was.
        """
        completed = self._buffered + count > buffered
        self._buffered = buffered
        if self._idleCall is not None:
            self._lastReceived = self._clock.seconds()
        if completed and self._handshakeCall is not None:
            self._handshakeCall.cancel()
            self._handshakeCall = None
        read = self._timeouts.read
        if read is None:
            return
        readCall = self._readCall
        if not buffered:
            if readCall is not None:
                readCall.cancel()
                self._readCall = None
        elif readCall is None:
            self._readCall = self._clock.callLater(read, self._readExpired, read)
        elif completed:
            # A new message started.
            readCall.reset(read)

    def stop(self) -> None:
        """
        The connection is gone: cancel its timers.
        """
        for call in (self._handshakeCall, self._readCall, self._idleCall):
            if call is not None and call.active():
                call.cancel()
        self._handshakeCall = self._readCall = self._idleCall = None

    def _handshakeExpired(self, timeout: float) -> None:
        self._handshakeCall = None
        self._expire("handshake", "no complete first message within %g s" % (timeout,))

    def _readExpired(self, timeout: float) -> None:
        self._readCall = None
        self._expire("read", "%d bytes of a message still incomplete after %g s" % (self._buffered, timeout))

    def _idleExpired(self, idle: float) -> None:
        left = self._lastReceived + idle - self._clock.seconds()
        if left > 0 or self._busy():
            self._idleCall = self._clock.callLater(left if left > 0 else idle, self._idleExpired, idle)
            return
        self._idleCall = None
        self._expire("idle", "nothing received for %g s" % (idle,))

    def _expire(self, kind: str, why: str) -> None:
        self.stop()
        self._timeouts._expired(kind, self._transport, why)
