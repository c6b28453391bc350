"""
Mux session state machines, client and server: plain Python, no Twisted.

Each session is fed received bytes with C{receiveData(data)}, which returns
a list of events, and is asked for the bytes to write with C{dataToSend()}.
Timers, Deferreds and transports belong to the protocols that drive them
(L{txscales.mux.protocol}).  This module holds what both halves share; the
halves are L{txscales.mux._clientsession} and L{txscales.mux._serversession}.
"""

from typing import List

from txscales.errors import HandshakeError
from txscales.mux._messages import CONTROL_TAG, Rerr, encodeMessage

MUX_VERSION = 1
DEFAULT_WINDOW = 0x7FFFFFFF
MARKER = Rerr(CONTROL_TAG, b"tinit check", legacy=True)
MARKER_BYTES = encodeMessage(MARKER)


def localHeaders(window=DEFAULT_WINDOW):
    """
    @return: the Tinit/Rinit headers txscales sends: its receive window and
        no TLS, as Finagle does by default.
    """
    return [(b"mux-framer", window.to_bytes(4, "big")), (b"tls", b"off")]


def peerWindow(headers):
    """
    Read the peer's C{mux-framer} window from its headers.

    @raise HandshakeError: when the peer requires TLS, which txscales does
        not offer, or sends a window that is not a positive 4-byte int.
    """
    window = None
    for key, value in headers:
        if key == b"mux-framer":
            if len(value) != 4 or not 0 < int.from_bytes(value, "big") <= DEFAULT_WINDOW:
                raise HandshakeError("bad mux-framer header %r" % (value,))
            window = int.from_bytes(value, "big")
        elif key == b"tls" and value == b"required":
            raise HandshakeError("the peer requires TLS, which this session does not offer")
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
