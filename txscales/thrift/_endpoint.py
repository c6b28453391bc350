"""
One server of a plain Thrift destination: a watermark pool of
connections, each carrying one call at a time.

A plain Thrift connection cannot multiplex, so each endpoint is a
L{txscales.pool.WatermarkPool} of connections.  A call whose connection may
still receive an answer it will not read (it timed out, was cancelled, or
the reply was malformed or mismatched) closes that connection, so no later
call can read that answer as its own.
"""

from typing import Any, Callable, Optional, Set

from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from zope.interface import implementer

from txscales._connection import DiscardedCall, tcpEndpoint
from txscales._deferreds import CallDeferred
from txscales.errors import ConnectError
from txscales.interfaces import BUSY, CLOSED, OPEN, IEndpoint
from txscales.pool import WatermarkPool
from txscales.thrift._codec import BINARY, Method
from txscales.thrift._framing import DEFAULT_MAX_MESSAGE_SIZE, FRAMED
from txscales.thrift._protocol import ThriftClientProtocol
from txscales.thrift._session import Reply, checkOptions


DEFAULT_LOW = 64
"""Idle connections kept per endpoint for reuse (the low watermark)."""

DEFAULT_HIGH = 64
"""Connections per endpoint at most; further calls wait (the high watermark)."""


class ThriftRequest:
    """
    One plain Thrift call on its way down the client stack.

    @ivar method: the L{txscales.thrift._codec.Method} called.
    @ivar args: its encoded args struct (the connection adds the message
        header, which carries the connection's seqid).
    @ivar timeout: seconds before the call is abandoned, or None.
    @ivar decode: None: the stack returns the connection's answer as it is.
    """

    __slots__ = ("method", "args", "timeout")
    decode = None

    def __init__(self, method: Method, args: bytes, timeout: Optional[float] = None) -> None:
        self.method = method
        self.args = args
        self.timeout = timeout

    def retried(self, retries: int) -> "ThriftRequest":
        """
        @return: the request to send again (plain Thrift has no retry
            counter on the wire: itself).
        """
        return self


@implementer(IEndpoint)
class ThriftEndpoint:
    """
    One server of a plain Thrift destination: a watermark pool of
    connections, each carrying one call at a time.  Calling it with a
    L{ThriftRequest} sends the call on a free connection.

    @ivar host: the server's host.
    @ivar port: the server's port.
    @ivar pool: the L{WatermarkPool} of L{ThriftClientProtocol}s.
    @ivar connects: how many connections were made.
    @ivar discards: how many connections were closed because a call on them
        was abandoned or failed.
    """

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        transport: str = FRAMED,
        protocol: str = BINARY,
        maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
        low: int = DEFAULT_LOW,
        high: int = DEFAULT_HIGH,
        maxWaiters: int = 2**31,
        connectTimeout: float = 5.0,
        endpointFactory: Optional[Callable[[Any, str, int, float], Any]] = None,
        onConnect: Optional[Callable[["ThriftEndpoint"], None]] = None,
    ) -> None:
        checkOptions(transport, protocol)
        self._reactor = reactor
        self._endpointFactory = endpointFactory or tcpEndpoint
        self._transport = transport
        self._protocol = protocol
        self._maxMessageSize = maxMessageSize
        self._connectTimeout = connectTimeout
        self._onConnect = onConnect
        self._connections: Set[ThriftClientProtocol] = set()
        self._closed = False
        self.host = host
        self.port = port
        self.pool = WatermarkPool(self._connect, low, high, maxWaiters)
        self.connects = 0
        self.discards = 0

    def __repr__(self) -> str:
        return "%s:%d" % (self.host, self.port)

    @property
    def status(self) -> str:
        """
        C{"open"} while calls can go out without waiting; C{"busy"} while
        every connection is in use and callers wait; C{"closed"} once
        closed.
        """
        if self._closed:
            return CLOSED
        return BUSY if self.pool.waiting else OPEN

    def _connect(self):
        endpoint = self._endpointFactory(self._reactor, self.host, self.port, self._connectTimeout)
        factory = Factory.forProtocol(lambda: ThriftClientProtocol(self._transport, self._protocol, self._maxMessageSize))
        factory.noisy = False
        attempt = endpoint.connect(factory)
        abandoned = []

        def cancel(result) -> None:
            # The call gave up (timed out) while connecting.  Whatever the
            # attempt fails with then (HostnameEndpoint may say
            # DNSLookupError), it is not the server's fault: fail-fast must
            # not mark it down.
            abandoned.append(True)
            attempt.cancel()

        result: Deferred[ThriftClientProtocol] = Deferred(cancel)

        def connected(connection) -> None:
            if result.called:
                connection.close()
            else:
                result.callback(self._connected(connection))

        def failed(failure) -> None:
            if result.called:
                return
            if abandoned or failure.check(CancelledError, ConnectingCancelledError):
                result.errback(CancelledError("connection attempt abandoned"))
            elif failure.check(ConnectError):
                result.errback(failure)
            else:
                result.errback(ConnectError("cannot connect to %s:%d: %s" % (self.host, self.port, failure.value)))

        attempt.addCallbacks(connected, failed)
        return result

    def _connected(self, connection):
        self.connects += 1
        self._connections.add(connection)
        connection.closed.addCallback(lambda _: self._connections.discard(connection))
        if self._onConnect is not None:
            self._onConnect(self)
        return connection

    def __call__(self, request: ThriftRequest) -> "Deferred[Optional[Reply]]":
        pool = self.pool
        connection = pool.takeIdle()
        while connection is not None and not connection.reusable:
            # It closed (or broke) while idle: drop it.
            pool.release(connection, False)
            connection = pool.takeIdle()
        if connection is None:
            return _PooledCall(self, request).start()
        # An idle connection: the call's own Deferred gives it back.
        return connection.call(request.method, request.args).addBoth(self._release, connection)

    def _release(self, result: Any, connection: ThriftClientProtocol) -> Any:
        if isinstance(result, Failure):
            self.discards += 1
            self.pool.release(connection, False)
        else:
            self.pool.release(connection, connection.reusable)
        return result

    def getProtocol(self) -> "Deferred[ThriftClientProtocol]":
        """
        Make sure a connection can be made (fail-fast probes with it).

        @return: a Deferred firing with a connection, given back to the pool
            at once, or failing with L{ConnectError}.
        """

        def got(connection):
            if not connection.reusable:
                # A pooled connection that closed while idle proves
                # nothing: drop it and try again.
                self.pool.release(connection, False)
                return self.pool.acquire().addCallback(got)
            self.pool.release(connection)
            return connection

        return self.pool.acquire().addCallback(got)

    def close(self) -> Deferred:
        """
        Close the idle connections now and the others once their call ends;
        calls waiting for a connection fail with
        L{txscales.errors.ClientClosedError}.

        @return: a Deferred firing when every connection is closed.
        """
        self._closed = True
        self.pool.close()
        return DeferredList([c.closed for c in list(self._connections)], consumeErrors=True)


class _PooledCall:
    """
    One call through an endpoint: get a connection, send, give the
    connection back (or close it), in that order, whatever happens and
    whenever the caller cancels.
    """

    def __init__(self, endpoint, request) -> None:
        self._endpoint = endpoint
        self._request = request
        self._acquiring: Optional[Deferred[ThriftClientProtocol]] = None
        self._connection: Optional[ThriftClientProtocol] = None
        self._sent: Optional[Deferred[Optional[Reply]]] = None
        self.result: Deferred[Optional[Reply]] = CallDeferred(self._cancel)

    def start(self):
        self._acquire()
        return self.result

    def _acquire(self) -> None:
        acquiring = self._acquiring = self._endpoint.pool.acquire()
        acquiring.addCallbacks(self._acquired, self._acquireFailed)

    def _acquired(self, connection: ThriftClientProtocol) -> None:
        self._acquiring = None
        pool = self._endpoint.pool
        if self.result.called:
            pool.release(connection, connection.reusable)
            return
        if not connection.reusable:
            # It closed (or broke) while idle: drop it and take another.
            pool.release(connection, False)
            self._acquire()
            return
        self._connection = connection
        sent = self._sent = connection.call(self._request.method, self._request.args)
        sent.addCallbacks(self._replied, self._failed)

    def _acquireFailed(self, failure) -> None:
        self._acquiring = None
        if not self.result.called:
            if failure.check(CancelledError):
                failure = DiscardedCall(False)
            self.result.errback(failure)

    def _replied(self, reply: Optional[Reply]) -> None:
        connection, self._connection = self._connection, None
        assert connection is not None
        self._sent = None
        self._endpoint.pool.release(connection, connection.reusable)
        self.result.callback(reply)

    def _failed(self, failure) -> None:
        connection, self._connection = self._connection, None
        self._sent = None
        self._endpoint.discards += 1
        self._endpoint.pool.release(connection, False)
        if not self.result.called:
            self.result.errback(failure)

    def _cancel(self, result) -> None:
        if self._acquiring is not None:
            self._acquiring.cancel()
        elif self._sent is not None:
            self._sent.cancel()
