"""
The client half of a Mux session: plain Python, no Twisted.
"""

from typing import Any, Dict, List, Union

from txscales.errors import (
    ConnectionLostError,
    HandshakeError,
    ProtocolError,
    RequestNackedError,
    ServerError,
    SessionDrainingError,
    TlsNegotiationError,
    UnexpectedMessageError,
)
from txscales.mux._framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, encodeDispatch, encodeFrames
from txscales.mux._messages import (
    CONTROL_TAG,
    R_DISPATCH,
    STATUS_NACK,
    STATUS_OK,
    Rdiscarded,
    Rdispatch,
    Rdrain,
    Rerr,
    Rinit,
    Rping,
    Rreq,
    Tdiscarded,
    Tdispatch,
    Tdrain,
    Tinit,
    Tlease,
    Tping,
    Treq,
    decodeMessage,
    encodeMessage,
    muxFailureFlags,
)
from txscales.mux._session import (
    DEFAULT_WINDOW,
    MARKER_BYTES,
    MUX_VERSION,
    TLS_OFF,
    TLS_REQUIRED,
    Session,
    StartTls,
    isMarker,
    localHeaders,
    negotiateTls,
    peerTls,
    peerWindow as _peerWindow,
)
from txscales.mux._tags import TagSet

_QUEUED, _WRITTEN, _DISCARDED = range(3)


class Ready:
    """
    The session is negotiated and carries dispatches.

    @ivar headers: the peer's headers, or None for a session without a
        handshake.
    """

    def __init__(self, headers) -> None:
        self.headers = headers


class Replied:
    """
    The answer to dispatch C{tag} arrived.
    """

    def __init__(self, tag, contexts, body) -> None:
        self.tag = tag
        self.contexts = contexts
        self.body = body


class Failed:
    """
    Dispatch C{tag} failed with C{error} (a L{txscales.errors} instance).
    """

    def __init__(self, tag, error) -> None:
        self.tag = tag
        self.error = error


class PingReplied:
    """
    The peer answered our ping.
    """


class DrainRequested:
    """
    The server sent Tdrain; the session accepts no new dispatches.
    """


class Drained:
    """
    A draining session has no dispatches left; it may be closed.
    """


class Leased:
    """
    The server granted a lease of C{milliseconds}.
    """

    def __init__(self, milliseconds) -> None:
        self.milliseconds = milliseconds


_OK_WITHOUT_CONTEXTS = bytes((STATUS_OK, 0, 0))


def _decodeAnswer(typeCode, tag, body):
    """
    Decode a message for a client: the usual answer, a successful Rdispatch
    without contexts, straight to its L{Replied} event.
    """
    if typeCode == R_DISPATCH and body[:3] == _OK_WITHOUT_CONTEXTS:
        return Replied(tag, [], body[3:])
    return decodeMessage(typeCode, tag, body)


class ClientSession(Session):
    """
    The client half of a Mux session.

    @ivar state: C{"new"}, C{"marker"} (probe sent), C{"init"} (Tinit sent),
        C{"tls"} (TLS negotiated, starting), C{"open"} or C{"closed"}.
    @ivar draining: whether the server asked us to drain.
    @ivar peerWindow: the largest frame body the server accepts, or None.
    @ivar quiet: while true, the server's pings and requests get no answer
        (the protocol sets it while its writes back up, so a server that
        floods us and reads nothing cannot make us hold answers).
    @ivar discarded: how many discarded dispatches hold their tags until
        the server answers for them.
    """

    def __init__(
        self,
        maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
        window: int = DEFAULT_WINDOW,
        handshake: bool = True,
        tls: bytes = TLS_OFF,
    ) -> None:
        """
        @param tls: the opportunistic TLS level sent in Tinit: C{b"off"},
            C{b"desired"} or C{b"required"}.
        """
        Session.__init__(self)
        self._tls = tls
        self._headers = None
        self._decoder = FrameDecoder(maxFrameSize, _decodeAnswer)
        self._window = window
        self._handshake = handshake
        self._tags = TagSet()
        self._pending: Dict[int, int] = {}
        self._queued: List[Tdispatch] = []
        # Context keys in their wire form (see encodeDispatch).
        self._encodedKeys: Dict[bytes, bytes] = {}
        self.state = "new"
        self.draining = False
        self.peerWindow = None
        self.pingOutstanding = False
        self.quiet = False
        self.discarded = 0

    def start(self):
        """
        Begin the session: send the handshake probe, or open at once when
        the handshake is off.

        @return: the events this causes.
        """
        if self._handshake:
            self.state = "marker"
            self._out.append(MARKER_BYTES)
            return []
        return self._open(None)

    def _open(self, headers):
        if headers is None and self._tls == TLS_REQUIRED:
            raise TlsNegotiationError("the server does not negotiate TLS, which this client requires")
        self.state = "open"
        if headers is not None:
            self.peerWindow = _peerWindow(headers)
        for message in self._queued:
            self._pending[message.tag] = _WRITTEN
            self._out.append(encodeFrames(message, self.peerWindow))
        self._queued = []
        return [Ready(headers)]

    def _negotiated(self, headers):
        if negotiateTls(self._tls, peerTls(headers)):
            _peerWindow(headers)  # a bad window fails before TLS starts
            self.state = "tls"
            self._headers = headers
            return [StartTls()]
        return self._open(headers)

    def tlsStarted(self):
        """
        The connection now speaks TLS: open the session and send the
        dispatches queued behind the handshake.

        @return: the events this causes.
        """
        if self.state != "tls":
            return []
        return self._open(self._headers)

    @property
    def pendingCount(self):
        """
        How many dispatches wait for an answer (discarded ones included: their
        tags are held until the server answers for them).
        """
        return len(self._pending)

    def dispatch(self, body, contexts=(), dst: Union[bytes, str] = b"", dtab=()):
        """
        Send a request.

        @return: its tag.
        @raise ConnectionLostError: when the session is closed (the request
            did not reach the server).
        @raise SessionDrainingError: when the server asked us to drain.
        @raise TagsExhaustedError: when every tag is in use.
        """
        if self.state == "closed":
            raise ConnectionLostError("the Mux session is closed", mayHaveReachedServer=False)
        if self.draining:
            raise SessionDrainingError("the Mux session is draining")
        tag = self._tags.allocate()
        if self.state == "open":
            try:
                self._out.append(encodeDispatch(tag, contexts, dst, dtab, body, self.peerWindow, self._encodedKeys))
            except Exception:
                self._tags.release(tag)
                raise
            self._pending[tag] = _WRITTEN
        else:
            self._queued.append(Tdispatch(tag, contexts, dst, dtab, body))
            self._pending[tag] = _QUEUED
        return tag

    def discard(self, tag, why: Union[bytes, str] = b"discarded") -> bool:
        """
        Give up on dispatch C{tag}.  A request still queued behind the
        handshake is dropped and its tag freed; a written one gets a
        Tdiscarded and keeps its tag until the server answers for it.

        @return: whether the request had been written.
        """
        state = self._pending.get(tag)
        if state == _QUEUED:
            del self._pending[tag]
            self._queued = [m for m in self._queued if m.tag != tag]
            self._tags.release(tag)
            return False
        if state == _WRITTEN:
            self._pending[tag] = _DISCARDED
            self.discarded += 1
            self._out.append(encodeMessage(Tdiscarded(tag, why)))
            return True
        return False

    def ping(self) -> bool:
        """
        Send a Tping unless one is outstanding or the session is not open.

        @return: whether a ping was sent.
        """
        if self.pingOutstanding or self.state != "open":
            return False
        self.pingOutstanding = True
        self._out.append(encodeMessage(Tping(CONTROL_TAG)))
        return True

    def connectionLost(self):
        """
        The connection is gone.

        @return: a list of (tag, written) for every dispatch still waiting,
            C{written} saying whether it reached the connection.
        """
        self.state = "closed"
        # What was received of unfinished messages goes now, not with the
        # session.
        self._decoder = FrameDecoder(self._decoder.maxFrameSize, _decodeAnswer)
        lost = [(tag, state == _WRITTEN) for tag, state in self._pending.items() if state != _DISCARDED]
        self._pending.clear()
        self._queued = []
        self.discarded = 0
        return lost

    def receiveData(self, data):
        """
        Handle received bytes.

        @return: a list of events.
        @raise txscales.errors.ProtocolError: when the server broke the
            protocol; the connection should be closed.
        """
        events, error = self.receiveDataUntilError(data)
        if error is not None:
            raise error
        return events

    def receiveDataUntilError(self, data):
        """
        Handle received bytes, keeping the events of the messages that came
        before a frame that broke the protocol.

        @return: C{(events, error)}: the events, and the
            L{txscales.errors.ProtocolError} that closes the session (the
            connection should be closed), or None.
        """
        events: List[Any] = []
        messages, error = self._decoder.feedUntilError(data)
        if messages:
            try:
                self._receive(messages, events)
            except ProtocolError as e:
                error = e.with_traceback(None)
        return events, error

    def _receive(self, messages, events):
        pending = self._pending
        for message in messages:
            if self.state == "open":
                kind = type(message)
                if kind is Replied or (kind is Rdispatch and message.status == STATUS_OK):
                    # The common answer, handled here without a call.
                    tag = message.tag
                    state = pending.pop(tag, None)
                    if state is None:
                        continue
                    self._tags.release(tag)
                    if state != _DISCARDED:
                        events.append(message if kind is Replied else Replied(tag, message.contexts, message.body))
                    else:
                        self.discarded -= 1
                    if self.draining and not pending:
                        events.append(Drained())
                else:
                    self._receiveOpen(message, events)
            elif self.state == "marker":
                if isMarker(message):
                    self.state = "init"
                    self._out.append(
                        encodeMessage(Tinit(CONTROL_TAG, MUX_VERSION, localHeaders(self._window, self._tls)))
                    )
                else:
                    # An older server: the session has no headers, and the
                    # answer to the probe is dropped.
                    events.extend(self._open(None))
            elif self.state == "init":
                if isinstance(message, Rinit) and message.version == MUX_VERSION:
                    events.extend(self._negotiated(message.headers))
                elif isinstance(message, Rerr):
                    raise HandshakeError("the server refused the session: %s" % (message.why.decode("utf-8", "replace"),))
                else:
                    raise HandshakeError("expected Rinit, got %r" % (message,))

    def _receiveOpen(self, message, events):
        kind = type(message)
        if kind is Rdispatch or kind is Rreq or kind is Rerr or kind is Rdiscarded:
            tag = message.tag
            state = self._pending.pop(tag, None)
            if state is None:
                return
            self._tags.release(tag)
            if state != _DISCARDED:
                events.append(self._outcome(message))
            else:
                self.discarded -= 1
            if self.draining and not self._pending:
                events.append(Drained())
        elif kind is Tping:
            if not self.quiet:
                self._out.append(encodeMessage(Rping(message.tag)))
        elif kind is Rping:
            self.pingOutstanding = False
            events.append(PingReplied())
        elif kind is Tdrain:
            self._out.append(encodeMessage(Rdrain(message.tag)))
            if not self.draining:
                self.draining = True
                events.append(DrainRequested())
                if not self._pending:
                    events.append(Drained())
        elif kind is Tlease:
            if message.unit == 0 and not self.draining:
                events.append(Leased(message.howMuch))
        elif kind is Tdispatch or kind is Treq:
            if not self.quiet:
                self._out.append(encodeMessage(Rerr(message.tag, b"a Mux client does not serve requests")))
        elif kind is Tinit:
            raise UnexpectedMessageError("Tinit on an open session")
        # Tdiscarded, Rinit and Rdrain from a server carry nothing for a
        # client; they are ignored.

    @staticmethod
    def _outcome(message):
        kind = type(message)
        if kind is Rdispatch or kind is Rreq:
            status = message.status
            contexts = getattr(message, "contexts", [])
            if status == STATUS_OK:
                return Replied(message.tag, contexts, message.body)
            flags = muxFailureFlags(contexts)
            if status == STATUS_NACK:
                return Failed(message.tag, RequestNackedError(flags=flags))
            return Failed(message.tag, ServerError(message.body.decode("utf-8", "replace"), flags))
        if kind is Rerr:
            return Failed(message.tag, ServerError(message.why.decode("utf-8", "replace")))
        return Failed(message.tag, ServerError("the server discarded the request"))
