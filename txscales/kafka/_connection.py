"""
One connection to one Kafka broker: a thin Twisted protocol over the
sans-IO code of L{txscales.kafka._messages}.

The connection sends ApiVersions first and keeps what the broker answers,
so that callers can choose each API's version (L{KafkaConnection.version}).
L{KafkaConnection.request} sends a request and returns a Deferred that
fires with the response frame; responses are matched to requests by their
correlation id, one Deferred per id.  A request that times out or is
cancelled keeps its id reserved until its response arrives, and that
response is then dropped: a correlation id is never reused while a broker
may still answer it, so no request ever receives another's response.
"""

from typing import Any, Dict, Optional, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from txscales._connection import noDelay
from txscales._framing import LengthPrefixDecoder
from txscales.errors import (
    ClientClosedError,
    ConnectionLostError,
    ProtocolError,
    RequestTimeoutError,
    TxScalesError,
)
from txscales.kafka._errors import KafkaProtocolError, UnsupportedVersionError
from txscales.kafka._messages import (
    API_VERSIONS,
    SUPPORTED_VERSIONS,
    chooseVersion,
    correlationIdOf,
    decodeApiVersionsResponse,
    encodeApiVersionsRequest,
    encodeRequest,
)

DEFAULT_MAX_FRAME_SIZE = 100 * 1024 * 1024
DEFAULT_MAX_PENDING = 1024
_MAX_CORRELATION_ID = 0x7FFFFFFF


class TooManyPendingRequestsError(TxScalesError):
    """
    The connection already waits for as many responses as it may; the
    request was not sent.
    """

    mayHaveReachedServer = False
    retryable = True


class _Pending:
    """
    A request waiting for its response: its Deferred (None once it timed
    out or was cancelled: the response is then dropped) and its timer.
    """

    __slots__ = ("deferred", "timer")

    def __init__(self, deferred: Optional["Deferred[Any]"], timer: Optional[IDelayedCall]) -> None:
        self.deferred = deferred
        self.timer = timer


class KafkaConnection(Protocol):
    """
    A connection to a Kafka broker.

    @ivar ready: a Deferred that fires with this connection once the broker
        answered ApiVersions, or fails if the connection ends first.
    @ivar brokerVersions: apiKey -> (lowest, highest) version the broker
        speaks, once ready.
    """

    def __init__(self, clock: Any, clientId: Optional[str] = "txscales",
                 maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE, maxPending: int = DEFAULT_MAX_PENDING,
                 requestTimeout: Optional[float] = 30.0) -> None:
        """
        @param clock: an C{IReactorTime}, for request timeouts.
        @param clientId: the client id every request carries.
        @param maxFrameSize: the largest response frame accepted; a larger
            length prefix closes the connection before any of its bytes
            are buffered.
        @param maxPending: how many requests may wait for their responses
            at once, those that timed out but were not answered yet
            included.
        @param requestTimeout: the default seconds a request waits for its
            response, or None for no limit.
        """
        self._clock = clock
        self.clientId = clientId
        self._decoder = LengthPrefixDecoder(maxFrameSize, 4, "Kafka response")
        self._maxPending = maxPending
        self.requestTimeout = requestTimeout
        self._pending: Dict[int, _Pending] = {}
        self._nextId = 0
        self._closed: Optional[TxScalesError] = None
        self._transport: Any = None
        self.brokerVersions: Dict[int, Tuple[int, int]] = {}
        self.ready: "Deferred[KafkaConnection]" = Deferred()

    # Protocol

    def connectionMade(self) -> None:
        self._transport = self.transport
        noDelay(self.transport)
        self._askVersions(SUPPORTED_VERSIONS[API_VERSIONS][1])

    def _askVersions(self, version: int) -> None:
        d = self.request(API_VERSIONS, version, encodeApiVersionsRequest(version))

        def answered(frame: bytes) -> None:
            response = decodeApiVersionsResponse(frame, version)
            if response.errorCode == UnsupportedVersionError.code:
                theirs = response.apiKeys.get(API_VERSIONS, (0, 0))
                lower = min(theirs[1], version - 1)
                if lower >= 0:
                    self._askVersions(lower)
                    return
            if response.errorCode != 0:
                raise KafkaProtocolError("the broker refused ApiVersions v%d: error %d"
                                         % (version, response.errorCode))
            self.brokerVersions = response.apiKeys
            self.ready.callback(self)

        def failed(failure: Failure) -> None:
            self.close(failure.value if isinstance(failure.value, TxScalesError) else None)
            if not self.ready.called:
                self.ready.errback(failure)

        d.addCallback(answered).addErrback(failed)

    def dataReceived(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except ProtocolError as e:
            self.close(e)
            return
        for frame in frames:
            if self._closed is not None:
                return
            self._frameReceived(frame)

    def _frameReceived(self, frame: bytes) -> None:
        try:
            correlationId = correlationIdOf(frame)
        except ProtocolError as e:
            self.close(e)
            return
        pending = self._pending.pop(correlationId, None)
        if pending is None:
            self.close(KafkaProtocolError("a response with correlation id %d answers no request"
                                          % (correlationId,)))
            return
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        if pending.deferred is not None:
            pending.deferred.callback(frame)

    def connectionLost(self, reason: Failure = Failure(ConnectionLostError())) -> None:
        self._transport = None
        self._fail(self._closed or ConnectionLostError(reason))

    # API

    def version(self, apiKey: int) -> int:
        """
        @return: the highest version of the API both txscales and the
            broker speak.
        @raise UnsupportedVersionError: when there is none.
        """
        return chooseVersion(apiKey, self.brokerVersions)

    def pendingCount(self) -> int:
        """
        @return: how many correlation ids wait for their responses (those
            of timed-out or cancelled requests included).
        """
        return len(self._pending)

    def request(self, apiKey: int, version: int, body: bytes,
                timeout: Optional[float] = -1.0) -> "Deferred[bytes]":
        """
        Send a request and wait for its response.

        @param body: the request's body, as the C{encode*Request} functions
            of L{txscales.kafka._messages} give it.
        @param timeout: seconds to wait for the response (default: the
            connection's C{requestTimeout}; None for no limit).  When it
            passes the Deferred fails with L{RequestTimeoutError}.
        @return: a Deferred firing with the response frame (its correlation
            id first, without its length prefix), or failing with
            L{ClientClosedError} or L{ConnectionLostError} (when the
            connection ends), L{TooManyPendingRequestsError}.  Cancelling it
            drops the response.
        """
        if self._closed is not None or self._transport is None:
            return _failed(ClientClosedError("the connection to the broker is closed"))
        if len(self._pending) >= self._maxPending:
            return _failed(TooManyPendingRequestsError(
                "%d requests already wait for their responses" % (len(self._pending),)))
        correlationId = self._newId()

        def cancel(d: "Deferred[bytes]") -> None:
            self._abandon(correlationId)

        d: "Deferred[bytes]" = Deferred(cancel)
        pending = _Pending(d, None)
        if timeout == -1.0:
            timeout = self.requestTimeout
        if timeout is not None:
            pending.timer = self._clock.callLater(timeout, self._timedOut, correlationId, timeout)
        self._pending[correlationId] = pending
        self._transport.write(encodeRequest(apiKey, version, correlationId, self.clientId, body))
        self._flush()
        return d

    def send(self, apiKey: int, version: int, body: bytes) -> None:
        """
        Send a request the broker does not answer (a Produce request with
        acks 0); it reserves no correlation id.

        @raise ClientClosedError: when the connection is closed.
        """
        if self._closed is not None or self._transport is None:
            raise ClientClosedError("the connection to the broker is closed")
        self._transport.write(encodeRequest(apiKey, version, self._newId(), self.clientId, body))
        self._flush()

    def close(self, reason: Optional[TxScalesError] = None) -> None:
        """
        Close the connection: every pending request fails with C{reason}
        (default: L{ClientClosedError}).
        """
        if self._closed is not None:
            return
        self._closed = reason or ClientClosedError("the connection to the broker was closed")
        self._fail(self._closed)
        if self._transport is not None:
            self._transport.loseConnection()

    # Internals

    def _flush(self) -> None:
        """
        Hand what was written to the socket now rather than at the reactor's
        next turn: the broker starts on a request while this process goes
        on with its work, such as firing the Deferreds of the records the
        last response acknowledged.  A TCP transport's C{doWrite} is what
        the reactor itself would call once the socket is writable; what the
        socket does not take stays buffered for the reactor, and a write
        error is left for the reactor's own C{doWrite} to find and report.
        Other transports (TLS) write at the reactor's turn, as before.
        """
        transport = self._transport
        doWrite = getattr(transport, "doWrite", None)
        if doWrite is not None and transport.connected and not transport.disconnecting:
            doWrite()

    def _newId(self) -> int:
        while True:
            correlationId = self._nextId
            self._nextId = (self._nextId + 1) & _MAX_CORRELATION_ID
            if correlationId not in self._pending:
                return correlationId

    def _abandon(self, correlationId: int) -> Optional["Deferred[Any]"]:
        pending = self._pending.get(correlationId)
        if pending is None:
            return None
        d, pending.deferred = pending.deferred, None
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.timer = None
        return d

    def _timedOut(self, correlationId: int, timeout: float) -> None:
        pending = self._pending.get(correlationId)
        if pending is not None:
            pending.timer = None
        d = self._abandon(correlationId)
        if d is not None:
            d.errback(RequestTimeoutError(timeout))

    def _fail(self, reason: TxScalesError) -> None:
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            if entry.timer is not None and entry.timer.active():
                entry.timer.cancel()
            if entry.deferred is not None:
                entry.deferred.errback(Failure(reason))
        if not self.ready.called:
            self.ready.errback(Failure(reason))


def _failed(error: Exception) -> "Deferred[Any]":
    d: "Deferred[Any]" = Deferred()
    d.errback(Failure(error))
    return d

