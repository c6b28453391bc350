"""
The plain Thrift client connection: a thin protocol over the sans-IO
L{txscales.thrift._session.ClientSession}, one call at a time.
"""

from typing import Optional

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IHandshakeListener, ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from txscales._connection import DiscardedCall, noDelay
from txscales._tls import tlsError
from txscales.errors import ConnectionLostError, ProtocolError
from txscales.thrift._codec import BINARY, Method
from txscales.thrift._framing import DEFAULT_MAX_MESSAGE_SIZE, FRAMED
from txscales.thrift._session import ClientSession, Reply


@implementer(IHandshakeListener)
class ThriftClientProtocol(Protocol):
    """
    One plain Thrift client connection; L{call} sends one call at a time.

    @ivar closed: fires with None once the connection is gone.
    """

    transport: ITCPTransport

    def __init__(
        self, transport: str = FRAMED, protocol: str = BINARY, maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE
    ) -> None:
        self._session = ClientSession(transport, protocol, maxMessageSize)
        self._waiting: Optional[Deferred[Optional[Reply]]] = None
        self._lost = False
        self._handshakeDone = False
        self.closed: "Deferred[None]" = Deferred()

    @property
    def reusable(self) -> bool:
        """
        Whether the connection is open, in step and free for another call.
        """
        return not self._lost and self._session.state == "open" and self._waiting is None

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
            L{txscales.errors.TxScalesError}.  Cancelling it closes the
            connection and fails it with L{DiscardedCall}.
        """
        if not self.reusable:
            return fail(ConnectionLostError("the connection is not available", mayHaveReachedServer=False))
        data = self._session.call(method, args)
        if method.oneway:
            self.transport.write(data)
            return succeed(None)
        d = self._waiting = Deferred(self._discard)
        self.transport.write(data)
        return d

    def _discard(self, d) -> None:
        self._waiting = None
        self.close()
        d.errback(DiscardedCall(True))

    def dataReceived(self, data: bytes) -> None:
        try:
            replies = self._session.receiveData(data)
        except ProtocolError as e:
            self._fail(e)
            self.close()
            return
        for reply in replies:
            d, self._waiting = self._waiting, None
            # The session lets through only the reply to the call in flight.
            assert d is not None
            d.callback(reply)

    def _fail(self, error) -> None:
        d, self._waiting = self._waiting, None
        if d is not None:
            d.errback(error)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        self._session.connectionLost()
        self._fail(tlsError(reason, self.transport, self._handshakeDone) or ConnectionLostError(reason, mayHaveReachedServer=True))
        self.closed.callback(None)

    def close(self) -> "Deferred[None]":
        """
        Close the connection.

        @return: L{closed}.
        """
        if not self._lost and self.transport is not None:
            self.transport.loseConnection()
        return self.closed
