"""
What the protocols' connections share.
"""

from typing import Any, Callable, Set

from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import HostnameEndpoint


def noDelay(transport: Any) -> None:
    """
    Turn off Nagle's algorithm: RPC protocols write small messages and wait
    for their answers, and Nagle with delayed ACKs would hold them ~40 ms.
    """
    setTcpNoDelay = getattr(transport, "setTcpNoDelay", None)
    if setTcpNoDelay is not None:
        try:
            setTcpNoDelay(True)
        except OSError:
            pass


class DiscardedCall(CancelledError):
    """
    A call's Deferred was cancelled and the call discarded.

    @ivar written: whether the request had reached the connection (and so
        may have reached the server).
    """

    def __init__(self, written: bool) -> None:
        CancelledError.__init__(self, "call discarded")
        self.written = written


def tcpEndpoint(reactor: Any, host: str, port: int, timeout: float) -> HostnameEndpoint:
    """
    The protocol clients' default endpoint factory.

    @param timeout: seconds to wait for the connection.
    @return: a C{HostnameEndpoint} for C{host}:C{port}.
    """
    return HostnameEndpoint(reactor, host, port, timeout=timeout)


class _TransportProducer:
    """
    Registered on a transport as a streaming producer, to hear when the
    bytes written but not yet sent pass the transport's C{bufferSize} (its
    high-water mark, 64 KiB by default: L{backedUp}C{(True)}) and when they
    are all sent (L{backedUp}C{(False)}).
    """

    def __init__(self, transport: Any) -> None:
        """
        @param transport: an C{ITransport} that is also an C{IConsumer}
            (TCP, TLS, and C{StringTransport} in tests).
        """
        self._transport = transport
        self._registered = True
        transport.registerProducer(self, True)

    def close(self) -> None:
        """
        Close the connection once what was written is sent.  The producer
        is unregistered first: a transport with a producer (TLS's) waits
        for it to be unregistered before it closes.
        """
        if self._registered:
            self._registered = False
            self._transport.unregisterProducer()
        self._transport.loseConnection()

    def backedUp(self, backedUp: bool) -> None:
        """
        The unsent bytes passed the high-water mark, or were all sent.
        """

    def pauseProducing(self) -> None:
        """
        The transport's unsent bytes passed its high-water mark.
        """
        self.backedUp(True)

    def resumeProducing(self) -> None:
        """
        The transport sent what it had.
        """
        if self._registered and getattr(self._transport, "disconnecting", False):
            # Closing: a transport waits for its producer before it closes.
            self._registered = False
            self._transport.unregisterProducer()
        self.backedUp(False)

    def stopProducing(self) -> None:
        """
        The connection is gone.
        """
        self._registered = False


class WriteWatch(_TransportProducer):
    """
    Tell C{onChange(backedUp)} when a connection's unsent bytes pass the
    transport's high-water mark, and when they are all sent.
    """

    def __init__(self, transport: Any, onChange: Callable[[bool], object]) -> None:
        """
        @param transport: an C{ITransport} that is also an C{IConsumer}.
        @param onChange: called with C{True} when the unsent bytes pass the
            high-water mark, C{False} once they are sent.
        """
        _TransportProducer.__init__(self, transport)
        self._onChange = onChange

    def backedUp(self, backedUp: bool) -> None:
        self._onChange(backedUp)


class ReadThrottle(_TransportProducer):
    """
    Stop reading from a connection while it cannot keep up, for one or more
    reasons at a time, and read again once none is left.

    The transport tells it when to hold: when the bytes written but not yet
    sent pass the transport's high-water mark, until they are all sent.  A
    peer that sends requests but does not read their answers is not read
    from any more, so the answers it can make us hold are bounded.  A
    protocol may hold for reasons of its own too (L{hold}, L{release}).

    Only a server should hold for its writes: a client must read its answers
    whatever its writes do, or a client and a server that both wait for the
    other to read would never read again.
    """

    WRITING = "writing"

    def __init__(self, transport: Any) -> None:
        """
        @param transport: a transport as for L{WriteWatch}; it must also be
            an C{IPushProducer}.
        """
        self._reasons: Set[str] = set()
        _TransportProducer.__init__(self, transport)

    @property
    def paused(self) -> bool:
        """
        Whether reading is held.
        """
        return bool(self._reasons)

    def hold(self, reason: str) -> None:
        """
        Stop reading for C{reason} (if not already held for it).
        """
        if not self._reasons:
            self._transport.pauseProducing()
        self._reasons.add(reason)

    def release(self, reason: str) -> None:
        """
        Drop C{reason}; read again when no reason is left.
        """
        if reason in self._reasons:
            self._reasons.discard(reason)
            if not self._reasons and not getattr(self._transport, "disconnecting", False):
                self._transport.resumeProducing()

    def backedUp(self, backedUp: bool) -> None:
        if backedUp:
            self.hold(self.WRITING)
        else:
            self.release(self.WRITING)

    def stopProducing(self) -> None:
        """
        The connection is gone.
        """
        _TransportProducer.stopProducing(self)
        self._reasons.clear()
