"""
Mux session state machines, client and server: plain Python, no Twisted.

Each session is fed received bytes with C{receiveData(data)}, which returns
a list of events, and is asked for the bytes to write with C{dataToSend()}.
Timers, Deferreds and transports belong to the protocols that drive them
(L{txscales.mux.protocol}).  This module holds what both halves share; the
halves are L{txscales.mux._clientsession} and L{txscales.mux._serversession}.
"""

from typing import List

from txscales.errors import HandshakeError, TlsNegotiationError
from txscales.mux._messages import CONTROL_TAG, Rerr, encodeMessage

MUX_VERSION = 1
DEFAULT_WINDOW = 0x7FFFFFFF
MARKER = Rerr(CONTROL_TAG, b"tinit check", legacy=True)
MARKER_BYTES = encodeMessage(MARKER)

# Opportunistic TLS levels (the C{tls} header, MUX.md 1.4).
TLS_OFF = b"off"
TLS_DESIRED = b"desired"
TLS_REQUIRED = b"required"
TLS_LEVELS = (TLS_OFF, TLS_DESIRED, TLS_REQUIRED)


class StartTls:
    """
    Both sides want TLS: start it on this connection now, after writing
    L{dataToSend<Session.dataToSend>} (the server's Rinit goes out in
    cleartext).
    """


def localHeaders(window=DEFAULT_WINDOW, tls=TLS_OFF):
    """
    @param tls: this side's opportunistic TLS level; C{off} (no TLS, as
        Finagle does by default), C{desired} or C{required}.
    @return: the Tinit/Rinit headers txscales sends: its receive window and
        its TLS level.
    """
    return [(b"mux-framer", window.to_bytes(4, "big")), (b"tls", tls)]


def peerTls(headers):
    """
    @return: the peer's opportunistic TLS level from its headers (C{off}
        when absent or unknown, as Finagle reads it).
    """
    for key, value in headers:
        if key == b"tls":
            return value if value in TLS_LEVELS else TLS_OFF
    return TLS_OFF


def negotiateTls(local, remote):
    """
    Finagle's opportunistic TLS table: C{off} with C{off} or C{desired} is
    cleartext, C{desired} or C{required} on both sides is TLS, C{off}
    against C{required} is refused.

    @return: whether to switch the connection to TLS.
    @raise TlsNegotiationError: when one side is C{off} and the other
        C{required}.
    """
    if TLS_OFF in (local, remote):
        if TLS_REQUIRED in (local, remote):
            raise TlsNegotiationError(
                "incompatible opportunistic TLS levels: %s here, %s at the peer"
                % (local.decode("ascii"), remote.decode("ascii"))
            )
        return False
    return True


def peerWindow(headers):
    """
    Read the peer's C{mux-framer} window from its headers.

    @raise HandshakeError: when the peer sends a window that is not a
        positive 4-byte int.
    """
    window = None
    for key, value in headers:
        if key == b"mux-framer":
            if len(value) != 4 or not 0 < int.from_bytes(value, "big") <= DEFAULT_WINDOW:
                raise HandshakeError("bad mux-framer header %r" % (value,))
            window = int.from_bytes(value, "big")
    return window


def isMarker(message):
    """
    @return: whether C{message} is the handshake probe C{Rerr(1, "tinit
        check")}, in either spelling.
    """
    return isinstance(message, Rerr) and message.tag == CONTROL_TAG and message.why == MARKER.why


class Session:
    """
    What both session halves share: the queue of bytes to write.
    """

    def __init__(self) -> None:
        self._out: List[bytes] = []

    def dataToSend(self):
        """
        @return: the bytes to write now (possibly empty).
        """
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)
