"""
The plain Thrift client connection: a thin protocol over the sans-IO
L{txscales.thrift._session.ClientSession}, one call at a time or, when
pipelined, up to C{maxOutstanding} answered in call order.
"""

from collections import deque
from typing import Callable, Deque, List, Optional

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IHandshakeListener, ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from txscales._connection import DiscardedCall, noDelay
from txscales._deferreds import CallDeferred
from txscales._tls import tlsError
from txscales.errors import ConnectionLostError
from txscales.thrift._codec import BINARY, Method
from txscales.thrift._framing import DEFAULT_MAX_MESSAGE_SIZE, FRAMED
from txscales.thrift._session import ClientSession, Reply


@implementer(IHandshakeListener)
class ThriftClientProtocol(Protocol):
    """
    One plain Thrift client connection.  L{call} sends a call; at most
    C{maxOutstanding} wait for their replies, which the server must send in
    call order.

    Cancelling a call of a connection that carries one call at a time
    (C{maxOutstanding=1}) closes the connection.  On a pipelined one, the
    cancelled call keeps its place until its reply arrives, which is then
    dropped; when every place is held by such a call (a server that stopped
    answering), the connection is closed.

    @ivar closed: fires with None once the connection is gone.
    @ivar onRoom: None, or called with the connection after replies freed
        places for more calls.
    """

    transport: ITCPTransport

    def __init__(
        self,
        transport: str = FRAMED,
        protocol: str = BINARY,
        maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
        maxOutstanding: int = 1,
    ) -> None:
        self._session = ClientSession(transport, protocol, maxMessageSize, maxOutstanding)
        self._maxOutstanding = maxOutstanding
        # The Deferred of each call waiting, oldest first; None for one
        # that was cancelled (its reply is dropped).
        self._waiting: Deque[Optional[Deferred[Optional[Reply]]]] = deque()
        self._abandoned = 0
        self._lost = False
        self._draining = False
        self._handshakeDone = False
        # While replies are handled, the calls their callbacks make: written
        # at once, in one write, after the last.
        self._batch: Optional[List[bytes]] = None
        self.onRoom: Optional[Callable[["ThriftClientProtocol"], object]] = None
        self.closed: "Deferred[None]" = Deferred()

    @property
    def usable(self) -> bool:
        """
        Whether the connection is open and in step.
        """
        return not self._lost and self._session.state == "open"

    @property
    def reusable(self) -> bool:
        """
        Whether the connection is open, in step and free for another call.
        """
        return not self._lost and self._session.state == "open" and not self._waiting

    @property
    def hasRoom(self) -> bool:
        """
        Whether the connection is open, in step, and carries fewer than
        C{maxOutstanding} calls.
        """
        return (
            not self._lost
            and not self._draining
            and self._session.state == "open"
            and len(self._waiting) < self._maxOutstanding
        )

    @property
    def outstanding(self) -> int:
        """
        How many calls wait for their reply, cancelled ones included.
        """
        return len(self._waiting)

    def connectionMade(self) -> None:
        noDelay(self.transport)

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake (when there is one) is done.
        """
        self._handshakeDone = True

    def call(self, method: Method, args: bytes) -> "Deferred[Optional[Reply]]":
        """
        Send a call of C{method} with its encoded C{args} struct.

        @return: a Deferred firing with a L{txscales.thrift._session.Reply}
            (None for a one-way method, once written), or failing with a
            L{txscales.errors.TxScalesError}.  Cancelling it fails it with
            L{DiscardedCall}.
        """
        if not self.hasRoom:
            return fail(ConnectionLostError("the connection is not available", mayHaveReachedServer=False))
        data = self._session.call(method, args)
        batch = self._batch
        if method.oneway:
            if batch is None:
                self.transport.write(data)
            else:
                batch.append(data)
            return succeed(None)
        d: Deferred[Optional[Reply]] = CallDeferred(self._discard)
        self._waiting.append(d)
        if batch is None:
            self.transport.write(data)
        else:
            batch.append(data)
        return d

    def _discard(self, d) -> None:
        waiting = self._waiting
        if self._maxOutstanding == 1:
            waiting.clear()
            self.close()
        elif d in waiting:
            waiting[waiting.index(d)] = None
            self._abandoned += 1
            if self._abandoned >= self._maxOutstanding or (self._draining and self._abandoned == len(waiting)):
                self.close()
        d.errback(DiscardedCall(True))

    def dataReceived(self, data: bytes) -> None:
        batch: List[bytes] = []
        self._batch = batch
        try:
            self._received(data)
        finally:
            self._batch = None
            if batch and self.usable:
                self.transport.write(b"".join(batch))

    def _received(self, data: bytes) -> None:
        replies, error = self._session.receive(data)
        waiting = self._waiting
        for reply in replies:
            if self._lost:
                # A callback closed the connection: connectionLost failed
                # the calls whose replies are left.
                return
            # The session lets through only replies to calls made, in order.
            d = waiting.popleft()
            if d is None:
                self._abandoned -= 1
            else:
                d.callback(reply)
        if error is not None:
            self._fail(error)
            self.close()
        elif self._draining:
            if self._abandoned == len(waiting):
                self.close()
        elif replies and self.onRoom is not None:
            self.onRoom(self)

    def _fail(self, error) -> None:
        waiting, self._waiting = self._waiting, deque()
        self._abandoned = 0
        for d in waiting:
            if d is not None:
                d.errback(error)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        self._session.connectionLost()
        if self._waiting:
            error = tlsError(reason, self.transport, self._handshakeDone)
            self._fail(error or ConnectionLostError(reason, mayHaveReachedServer=True))
        self.closed.callback(None)

    def drain(self) -> "Deferred[None]":
        """
        Take no more calls, and close once no call waits for its reply
        (cancelled calls do not count).

        @return: L{closed}.
        """
        self._draining = True
        if self._abandoned == len(self._waiting):
            self.close()
        return self.closed

    def close(self) -> "Deferred[None]":
        """
        Close the connection.

        @return: L{closed}.
        """
        if not self._lost and self.transport is not None:
            self.transport.loseConnection()
        return self.closed
