"""
One server of a plain Thrift destination, pipelined: one connection
carrying up to C{maxOutstanding} calls at once, whose replies the server
must send in call order.

Safe only with servers that answer the calls of a connection in the order
they came (most do: see the plain Thrift page of the docs).  A reply out of
order, or with a seqid no call waits for, is a protocol error that fails
every call of the connection (each may have reached the server) and closes
it; a reply is never given to another call.
"""

from collections import deque
from typing import Any, Callable, Deque, List, Optional, cast

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.protocol import Factory
from zope.interface import implementer

from txscales._connection import DiscardedCall, tcpEndpoint
from txscales._deferreds import CallDeferred
from txscales.errors import ClientClosedError, ConnectError, PoolExhaustedError
from txscales.interfaces import BUSY, CLOSED, OPEN, IEndpoint
from txscales.thrift._codec import BINARY
from txscales.thrift._endpoint import ThriftRequest
from txscales.thrift._framing import DEFAULT_MAX_MESSAGE_SIZE, FRAMED
from txscales.thrift._protocol import ThriftClientProtocol
from txscales.thrift._session import Reply, checkOptions

DEFAULT_MAX_OUTSTANDING = 1000
"""Calls one pipelined connection carries at once unless configured."""


class _Waiter:
    """
    A call waiting for room on the connection (or for the connection).
    """

    __slots__ = ("request", "sent", "result", "_queue")

    def __init__(self, request: ThriftRequest, queue: "Deque[_Waiter]") -> None:
        self.request = request
        self.sent: Optional[Deferred[Optional[Reply]]] = None
        self.result: Deferred[Optional[Reply]] = CallDeferred(self._cancel)
        self._queue = queue
        queue.append(self)

    def send(self, connection: ThriftClientProtocol) -> None:
        sent = self.sent = connection.call(self.request.method, self.request.args)
        sent.chainDeferred(self.result)

    def _cancel(self, result) -> None:
        if self.sent is not None:
            self.sent.cancel()
            return
        try:
            self._queue.remove(self)
        except ValueError:
            pass
        result.errback(DiscardedCall(False))


@implementer(IEndpoint)
class PipelinedThriftEndpoint:
    """
    One server of a plain Thrift destination, pipelined: calls go out on one
    connection at once, up to C{maxOutstanding} waiting for their replies;
    further calls wait (at most C{maxWaiters}, beyond which they fail with
    L{PoolExhaustedError}) and go out as replies come.  A lost connection
    is made again for the calls waiting.

    @ivar host: the server's host.
    @ivar port: the server's port.
    @ivar connection: the current L{ThriftClientProtocol}, or None.
    @ivar connects: how many connections were made.
    """

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        transport: str = FRAMED,
        protocol: str = BINARY,
        maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
        maxOutstanding: int = DEFAULT_MAX_OUTSTANDING,
        maxWaiters: int = 2**31,
        connectTimeout: float = 5.0,
        endpointFactory: Optional[Callable[[Any, str, int, float], Any]] = None,
        onConnect: Optional[Callable[["PipelinedThriftEndpoint"], None]] = None,
    ) -> None:
        checkOptions(transport, protocol)
        if maxOutstanding < 1:
            raise ValueError("maxOutstanding must be at least 1, not %r" % (maxOutstanding,))
        self._reactor = reactor
        self._endpointFactory = endpointFactory or tcpEndpoint
        self._factory = Factory.forProtocol(lambda: ThriftClientProtocol(transport, protocol, maxMessageSize, maxOutstanding))
        self._factory.noisy = False
        self._maxWaiters = maxWaiters
        self._connectTimeout = connectTimeout
        self._onConnect = onConnect
        self._waiters: Deque[_Waiter] = deque()
        self._connecting: Optional[Deferred[ThriftClientProtocol]] = None
        self._probes: List[Deferred[ThriftClientProtocol]] = []
        self._closed = False
        self.host = host
        self.port = port
        self.connection: Optional[ThriftClientProtocol] = None
        self.connects = 0

    def __repr__(self) -> str:
        return "%s:%d" % (self.host, self.port)

    @property
    def status(self) -> str:
        """
        C{"open"} while calls can go out without waiting; C{"busy"} while
        calls wait (for room, or for the connection); C{"closed"} once
        closed.
        """
        if self._closed:
            return CLOSED
        return BUSY if self._waiters else OPEN

    @property
    def waiting(self) -> int:
        """
        How many calls wait to be sent.
        """
        return len(self._waiters)

    def __call__(self, request: ThriftRequest) -> "Deferred[Optional[Reply]]":
        connection = self.connection
        if connection is not None and not self._waiters and connection.hasRoom:
            return connection.call(request.method, request.args)
        if self._closed:
            return fail(ClientClosedError("the endpoint is closed"))
        if len(self._waiters) >= self._maxWaiters:
            return fail(PoolExhaustedError("%d calls wait for room on %r" % (len(self._waiters), self)))
        waiter = _Waiter(request, self._waiters)
        if connection is None or not connection.usable:
            self._connect()
        return waiter.result

    def _sendWaiting(self, connection: ThriftClientProtocol) -> None:
        waiters = self._waiters
        while waiters and connection is self.connection and connection.hasRoom:
            waiters.popleft().send(connection)

    def _connect(self) -> None:
        if self._connecting is not None or self._closed:
            return
        endpoint = self._endpointFactory(self._reactor, self.host, self.port, self._connectTimeout)
        connecting = cast("Deferred[ThriftClientProtocol]", endpoint.connect(self._factory))
        self._connecting = connecting
        connecting.addCallbacks(self._connected, self._connectFailed)

    def _connected(self, connection: ThriftClientProtocol) -> None:
        self._connecting = None
        if self._closed:
            connection.close()
            return
        self.connects += 1
        self.connection = connection
        connection.onRoom = self._sendWaiting
        connection.closed.addCallback(self._lost, connection)
        if self._onConnect is not None:
            self._onConnect(self)
        probes, self._probes = self._probes, []
        for probe in probes:
            probe.callback(connection)
        self._sendWaiting(connection)

    def _connectFailed(self, failure: Any) -> None:
        self._connecting = None
        error = failure.value if hasattr(failure, "value") else failure
        if not isinstance(error, (ConnectError, ClientClosedError)):
            if isinstance(error, CancelledError):
                error = ConnectError("connecting to %r was cancelled" % (self,))
            else:
                error = ConnectError("cannot connect to %r: %s" % (self, error))
        waiters, self._waiters = self._waiters, deque()
        probes, self._probes = self._probes, []
        for d in [w.result for w in waiters] + probes:
            d.errback(error)

    def _lost(self, _: None, connection: ThriftClientProtocol) -> None:
        if self.connection is connection:
            self.connection = None
            # Calls still waiting were never sent: a new connection takes
            # them.
            if self._waiters:
                self._connect()

    def getProtocol(self) -> "Deferred[ThriftClientProtocol]":
        """
        Make sure a connection can be made (fail-fast probes with it).

        @return: a Deferred firing with the connection, connecting if
            needed, or failing with L{ConnectError}.
        """
        connection = self.connection
        if connection is not None and connection.usable:
            return succeed(connection)
        if self._closed:
            return fail(ClientClosedError("the endpoint is closed"))
        probe: Deferred[ThriftClientProtocol] = Deferred(lambda d: self._probes.remove(d))
        self._probes.append(probe)
        self._connect()
        return probe

    def close(self) -> "Deferred[None]":
        """
        Close the connection once the calls it carries are answered; calls
        waiting to be sent fail with L{ClientClosedError}.

        @return: a Deferred firing when the connection is closed.
        """
        self._closed = True
        error = ClientClosedError("the endpoint is closed")
        waiters, self._waiters = self._waiters, deque()
        probes, self._probes = self._probes, []
        for d in [w.result for w in waiters] + probes:
            d.errback(error)
        if self._connecting is not None:
            self._connecting.cancel()
        connection, self.connection = self.connection, None
        if connection is None:
            return succeed(None)
        return connection.drain()
