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
connection is lost.  Closing is logged, rate-limited by L{LogThrottle}.
"""

from typing import Any, Callable, Dict, Optional, Tuple

from twisted.logger import Logger

_log = Logger()

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_IDLE_TIMEOUT = 300.0


class LogThrottle:
    """
    Rate-limit a log line that peers can trigger at will: the first
    occurrence of a key is logged; then at most one line per C{interval}
    seconds, for the first occurrence after it, counting the occurrences
    held back since the line before.
    """

    def __init__(self, clock: Any, interval: float = 10.0) -> None:
        """
        @param clock: an C{IReactorTime}.
        @param interval: the least time between two lines of one key.
        """
        self._clock = clock
        self._interval = interval
        # key -> (when last logged, occurrences not logged since)
        self._state: Dict[str, Tuple[float, int]] = {}

    def __call__(self, key: str, emit: Callable[[int], None]) -> None:
        """
        Note one occurrence of C{key}; log it unless a line of C{key} was
        logged less than C{interval} seconds ago.

        @param emit: logs the line; called with how many occurrences the
            line stands for (1, or more when some were held back).
        """
        now = self._clock.seconds()
        last, held = self._state.get(key, (None, 0))
        if last is not None and now - last < self._interval:
            self._state[key] = (last, held + 1)
            return
        self._state[key] = (now, 0)
        emit(held + 1)


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
        self._throttle = LogThrottle(clock)

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
        host = getattr(peer, "host", peer)

        def emit(count: int) -> None:
            _log.warn(
                "txscales: {what}: closed {count} connection(s) ({kind} timeout), the last from {host}: {why}",
                what=self.description,
                count=count,
                kind=kind,
                host=host,
                why=why,
            )

        self._throttle(kind, emit)
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
