"""
The errors txscales raises.

Every error derives from L{TxScalesError}.  Each says whether the request
that failed may have reached the server (C{mayHaveReachedServer}): when it is
C{False} the request was certainly not processed and retrying it elsewhere is
safe.  C{retryable} says whether txscales itself considers a retry sensible.

This module imports nothing outside the standard library.
"""

from typing import Any


class TxScalesError(Exception):
    """
    Base class of every txscales error.

    @cvar mayHaveReachedServer: C{True} if the request may have been seen (and
        acted on) by the server.
    @cvar retryable: C{True} if the request can be retried without risk of
        running it twice.
    """

    mayHaveReachedServer: bool = True
    retryable: bool = False


# Wire-format errors: the bytes a peer sent (or a caller asked to send) are
# not valid Mux.  The connection they arrived on is closed; nothing else is.


class ProtocolError(TxScalesError):
    """
    The peer broke the wire protocol; the connection it used is closed.
    """


class BadMessageError(ProtocolError):
    """
    A frame could not be decoded as a message of its type.
    """


class UnknownMessageTypeError(BadMessageError):
    """
    A frame carried a message type that Mux does not define.
    """


class FrameTooLargeError(ProtocolError):
    """
    A frame's length prefix (or a reassembled message) exceeds the configured
    maximum; refused before anything of that size is buffered.
    """


class FragmentLimitError(FrameTooLargeError):
    """
    A peer held too much in unfinished fragmented messages on one
    connection: more bytes than the connection's fragment budget, or more
    fragmented tags open at once than allowed.
    """


class UnexpectedMessageError(ProtocolError):
    """
    A message arrived that is valid Mux (or Thrift) but not allowed at this
    point of the session: for plain Thrift, a reply whose seqid or method
    name does not answer the call waiting, or a reply while no call waits.
    """


class HandshakeError(ProtocolError):
    """
    The Mux session could not be negotiated.
    """

    mayHaveReachedServer = False


class DuplicateTagError(ProtocolError):
    """
    A client reused a tag that was still outstanding.
    """


class PingTimeoutError(ProtocolError):
    """
    The peer did not answer a Mux ping in time; the session is declared dead.
    """


class DiscardedTagsError(TxScalesError):
    """
    The server left too many discarded Mux calls unanswered: their tags stay
    reserved until it answers, so the session is closed before they run
    out, and its calls go to another session.
    """


class EncodeError(TxScalesError):
    """
    A message cannot be encoded: a field is out of range (for example a tag
    above 0x7fffff or a length above 32767).
    """

    mayHaveReachedServer = False


# Outcomes of a single call.


class ServerError(TxScalesError):
    """
    The server failed the request: a Mux C{Rerr} or a C{Rdispatch} with
    status error.

    @ivar message: the error text the server sent, or which answer failed
        the request.
    @ivar flags: the MuxFailure flags the server sent (0 when none).
    """

    def __init__(self, message: str, flags: int = 0) -> None:
        """
        @param message: what went wrong.
        @param flags: the MuxFailure flags.
        """
        TxScalesError.__init__(self, message)
        self.message = message
        self.flags = flags


class RequestNackedError(TxScalesError):
    """
    The server refused the request without processing it (a Mux nack); it is
    safe to retry elsewhere.

    @ivar flags: the MuxFailure flags the server sent (0 when none).
    """

    mayHaveReachedServer = False
    retryable = True

    def __init__(self, message: str = "the server refused the request (nack)", flags: int = 0) -> None:
        """
        @param message: the error's message.
        @param flags: the MuxFailure flags.
        """
        TxScalesError.__init__(self, message)
        self.flags = flags


class RequestTimeoutError(TxScalesError):
    """
    The call did not complete within its timeout; it was discarded.

    @ivar timeout: the timeout in seconds.
    @ivar written: whether any of the request reached the connection.
    """

    def __init__(self, timeout: float, written: bool = True) -> None:
        """
        @param timeout: the timeout in seconds.
        @param written: whether any of the request reached the connection;
            it is also the error's C{mayHaveReachedServer}.
        """
        TxScalesError.__init__(self, "call timed out after %g s" % (timeout,))
        self.timeout = timeout
        self.written = written
        self.mayHaveReachedServer = written


class ApplicationError(TxScalesError):
    """
    The server answered with a Thrift C{TApplicationException} (an unknown
    method, a failure in its handler that the IDL does not declare, ...).

    @ivar type: the C{TApplicationException} type code.
    @ivar message: the server's message.
    """

    def __init__(self, message: str, type: int = 0) -> None:
        """
        @param message: the server's message.
        @param type: the C{TApplicationException} type code.
        """
        TxScalesError.__init__(self, message)
        self.message = message
        self.type = type


class ConnectionLostError(TxScalesError):
    """
    The connection closed while the request was outstanding; the request may
    have reached the server.

    @ivar reason: the L{twisted.python.failure.Failure} or exception that closed the connection.
    """

    def __init__(self, reason: Any = None, mayHaveReachedServer: bool = True) -> None:
        """
        @param reason: the L{twisted.python.failure.Failure} or exception
            that closed the connection, or C{None}.
        @param mayHaveReachedServer: C{False} when the request was certainly
            not sent; the error is then C{retryable}.
        """
        TxScalesError.__init__(self, "connection lost: %s" % (_describe(reason),))
        self.reason = reason
        self.mayHaveReachedServer = mayHaveReachedServer
        self.retryable = not mayHaveReachedServer


class ConnectError(TxScalesError):
    """
    No connection could be made to the server; the request was not sent.
    """

    mayHaveReachedServer = False
    retryable = True


class HandshakeTimeoutError(ConnectError):
    """
    The server accepted the connection but did not complete the Mux
    handshake in time; the connection was closed and the request was not
    sent.
    """

    def __init__(self, timeout: float) -> None:
        """
        @param timeout: the handshake timeout, in seconds.
        """
        ConnectError.__init__(self, "the server did not complete the Mux handshake within %g s" % (timeout,))
        self.timeout = timeout


class SessionDrainingError(TxScalesError):
    """
    The session is draining (the server asked to close it); the request was
    not sent.
    """

    mayHaveReachedServer = False
    retryable = True


class TagsExhaustedError(TxScalesError):
    """
    Every Mux tag of the session is in use; the request was not sent.
    """

    mayHaveReachedServer = False
    retryable = True


class PoolExhaustedError(TxScalesError):
    """
    Every connection of a pool is busy and its wait queue is full; the
    request was not sent.
    """

    mayHaveReachedServer = False
    retryable = True


class ClientClosedError(TxScalesError):
    """
    The client (or its session) is closed; the request was not sent.
    """

    mayHaveReachedServer = False


class NoEndpointsError(TxScalesError):
    """
    The destination has no endpoints to send the request to.
    """

    mayHaveReachedServer = False


class BadDestinationError(TxScalesError, ValueError):
    """
    A destination URI could not be parsed.
    """

    mayHaveReachedServer = False


class BadOptionError(TxScalesError, ValueError):
    """
    A client option was given a value it cannot take; the client was not
    made.
    """

    mayHaveReachedServer = False


class TlsError(TxScalesError):
    """
    The TLS handshake failed (for example the server's certificate could not
    be verified); the request was not sent.
    """

    mayHaveReachedServer = False


class TlsCertificateUntrustedError(TlsError):
    """
    The server's certificate is not signed by a CA the client trusts; the
    request was not sent.
    """


class TlsCertificateExpiredError(TlsError):
    """
    The server's certificate has expired (or is not valid yet); the request
    was not sent.
    """


class TlsHostnameMismatchError(TlsError):
    """
    The server's certificate is not valid for the host name the client
    expected; the request was not sent.
    """


class TlsClientCertificateError(TlsError):
    """
    The server requires a client certificate (mutual TLS) and refused ours,
    or its absence; the request was not sent.
    """


class TlsNegotiationError(TlsError, HandshakeError):
    """
    The two sides of a Mux session want incompatible opportunistic TLS
    levels (one C{off}, the other C{required}), or a side that must upgrade
    has no TLS settings; the session was refused before any request was
    sent.
    """


class HttpStatusError(TxScalesError):
    """
    An HTTP server answered with an error status (4xx or 5xx), for a client
    asked to raise on those.

    @ivar response: the response (C{code}, C{headers}).
    @ivar code: its status code.
    @ivar body: its body, bytes.
    """

    def __init__(self, response: Any, body: bytes = b"") -> None:
        """
        @param response: the response, with its status C{code}.
        @param body: its body.
        """
        TxScalesError.__init__(self, "HTTP status %d" % (response.code,))
        self.response = response
        self.code = response.code
        self.body = body


class DiscoveryError(TxScalesError):
    """
    Service discovery failed: for example ZooKeeper could not be reached
    before the first member set was needed.  No request was sent.
    """

    mayHaveReachedServer = False


class BadMemberError(TxScalesError, ValueError):
    """
    A serverset member's data is not a valid ServiceInstance.
    """

    mayHaveReachedServer = False


class UnsupportedError(TxScalesError):
    """
    The call cannot be made with this protocol (for example a one-way Thrift
    method over ThriftMux).
    """

    mayHaveReachedServer = False


class MissingExtraError(TxScalesError, ImportError):
    """
    A feature needs an optional extra of txscales that is not installed
    (C{pip install txscales[NAME]}).

    @ivar extra: the extra's name.
    """

    mayHaveReachedServer = False

    def __init__(self, extra: str, message: str) -> None:
        super().__init__("%s (install txscales[%s])" % (message, extra))
        self.extra = extra


class IdlError(TxScalesError, ValueError):
    """
    A Thrift IDL file could not be loaded (missing, unreadable, or not valid
    Thrift), or does not define the service asked for.
    """

    mayHaveReachedServer = False


def _describe(reason: Any) -> str:
    """
    Describe a close reason (a Failure, an exception or None) in a few words.
    """
    if reason is None:
        return "closed"
    value = getattr(reason, "value", reason)
    return "%s: %s" % (type(value).__name__, value)


class UnknownPluginError(TxScalesError, LookupError):
    """
    No plugin has the name asked for (a balancer, a discovery scheme, ...).
    """

    mayHaveReachedServer = False


class DuplicatePluginError(TxScalesError, LookupError):
    """
    Several plugins have the name asked for.
    """

    mayHaveReachedServer = False

