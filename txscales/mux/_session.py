"""
Mux session state machines, client and server: plain Python, no Twisted.

Each session is fed received bytes with C{receiveData(data)}, which returns
a list of events, and is asked for the bytes to write with C{dataToSend()}.
Timers, Deferreds and transports belong to the protocols that drive them
(L{txscales.mux.protocol}).
"""

from txscales.errors import (
    ConnectionLostError,
    DuplicateTagError,
    HandshakeError,
    RequestNackedError,
    ServerError,
    SessionDrainingError,
    UnexpectedMessageError,
)
from txscales.mux._framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, encodeFrames
from txscales.mux._messages import (
    CONTROL_TAG,
    MIN_TAG,
    MAX_TAG,
    STATUS_ERROR,
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
    Rdrain as _Rdrain,
    encodeMessage,
    muxFailureContext,
    muxFailureFlags,
)
from txscales.mux._tags import TagSet

MUX_VERSION = 1
DEFAULT_WINDOW = 0x7FFFFFFF
MARKER = Rerr(CONTROL_TAG, b"tinit check", legacy=True)
MARKER_BYTES = encodeMessage(MARKER)

_QUEUED, _WRITTEN, _DISCARDED = range(3)


def localHeaders(window=DEFAULT_WINDOW):
    """
    @return: the Tinit/Rinit headers txscales sends: its receive window and
        no TLS, as Finagle does by default.
    """
    return [(b"mux-framer", window.to_bytes(4, "big")), (b"tls", b"off")]


def _peerWindow(headers):
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


class Ready:
    """
    The session is negotiated and carries dispatches.

    @ivar headers: the peer's headers, or None for a session without a
        handshake.
    """

    def __init__(self, headers):
        self.headers = headers


class Replied:
    """
    The answer to dispatch C{tag} arrived.
    """

    def __init__(self, tag, contexts, body):
        self.tag = tag
        self.contexts = contexts
        self.body = body


class Failed:
    """
    Dispatch C{tag} failed with C{error} (a L{txscales.errors} instance).
    """

    def __init__(self, tag, error):
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

    def __init__(self, milliseconds):
        self.milliseconds = milliseconds


class ClientSession:
    """
    The client half of a Mux session.

    @ivar state: C{"new"}, C{"marker"} (probe sent), C{"init"} (Tinit sent),
        C{"open"} or C{"closed"}.
    @ivar draining: whether the server asked us to drain.
    @ivar peerWindow: the largest frame body the server accepts, or None.
    """

    def __init__(self, maxFrameSize=DEFAULT_MAX_FRAME_SIZE, window=DEFAULT_WINDOW, handshake=True):
        self._decoder = FrameDecoder(maxFrameSize)
        self._window = window
        self._handshake = handshake
        self._out = []
        self._tags = TagSet()
        self._pending = {}
        self._queued = []
        self.state = "new"
        self.draining = False
        self.peerWindow = None
        self.peerHeaders = None
        self.pingOutstanding = False

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
        self.state = "open"
        self.peerHeaders = headers
        if headers is not None:
            self.peerWindow = _peerWindow(headers)
        for message in self._queued:
            self._pending[message.tag] = _WRITTEN
            self._out.append(encodeFrames(message, self.peerWindow))
        self._queued = []
        return [Ready(headers)]

    @property
    def pendingCount(self):
        """
        How many dispatches wait for an answer (discarded ones included: their
        tags are held until the server answers for them).
        """
        return len(self._pending)

    def dispatch(self, body, contexts=(), dst=b"", dtab=()):
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
        message = Tdispatch(tag, contexts, dst, dtab, body)
        if self.state == "open":
            try:
                self._out.append(encodeFrames(message, self.peerWindow))
            except Exception:
                self._tags.release(tag)
                raise
            self._pending[tag] = _WRITTEN
        else:
            self._queued.append(message)
            self._pending[tag] = _QUEUED
        return tag

    def discard(self, tag, why=b"discarded"):
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
            self._out.append(encodeMessage(Tdiscarded(tag, why)))
            return True
        return False

    def ping(self):
        """
        Send a Tping unless one is outstanding or the session is not open.

        @return: whether a ping was sent.
        """
        if self.pingOutstanding or self.state != "open":
            return False
        self.pingOutstanding = True
        self._out.append(encodeMessage(Tping(CONTROL_TAG)))
        return True

    def dataToSend(self):
        """
        @return: the bytes to write now (possibly empty).
        """
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def connectionLost(self):
        """
        The connection is gone.

        @return: a list of (tag, written) for every dispatch still waiting,
            C{written} saying whether it reached the connection.
        """
        self.state = "closed"
        lost = [(tag, state == _WRITTEN) for tag, state in self._pending.items() if state != _DISCARDED]
        self._pending.clear()
        self._queued = []
        return lost

    def receiveData(self, data):
        """
        Handle received bytes.

        @return: a list of events.
        @raise txscales.errors.ProtocolError: when the server broke the
            protocol; the connection should be closed.
        """
        events = []
        for message in self._decoder.feed(data):
            if self.state == "open":
                self._receiveOpen(message, events)
            elif self.state == "marker":
                if isinstance(message, Rerr) and message.tag == CONTROL_TAG and message.why == MARKER.why:
                    self.state = "init"
                    self._out.append(
                        encodeMessage(Tinit(CONTROL_TAG, MUX_VERSION, localHeaders(self._window)))
                    )
                else:
                    # An older server: the session has no headers, and the
                    # answer to the probe is dropped.
                    events.extend(self._open(None))
            elif self.state == "init":
                if isinstance(message, Rinit) and message.version == MUX_VERSION:
                    events.extend(self._open(message.headers))
                elif isinstance(message, Rerr):
                    raise HandshakeError("the server refused the session: %s" % (message.why.decode("utf-8", "replace"),))
                else:
                    raise HandshakeError("expected Rinit, got %r" % (message,))
        return events

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
            if self.draining and not self._pending:
                events.append(Drained())
        elif kind is Tping:
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


class Dispatch:
    """
    A request arrived.

    @ivar requestId: identifies this request for L{ServerSession.reply};
        unlike the tag, never reused within the session.
    @ivar legacy: C{True} for a Treq (no contexts, dst or dtab).
    """

    def __init__(self, requestId, tag, contexts, dst, dtab, body, legacy=False):
        self.requestId = requestId
        self.tag = tag
        self.contexts = contexts
        self.dst = dst
        self.dtab = dtab
        self.body = body
        self.legacy = legacy


class Discarded:
    """
    The client discarded request C{requestId}; its answer is no longer
    wanted (and will not be sent).
    """

    def __init__(self, requestId, why):
        self.requestId = requestId
        self.why = why


class DrainAcknowledged:
    """
    The client answered our Tdrain.
    """


class ServerSession:
    """
    The server half of a Mux session.

    @ivar state: C{"new"}, C{"init"} (marker echoed), C{"open"},
        C{"draining"} or C{"closed"}.
    @ivar negotiated: whether the client did the Tinit handshake.
    @ivar drainAcknowledged: whether the client answered Tdrain.
    @ivar orphanedDiscards: Tdiscarded messages for unknown tags.
    """

    def __init__(self, maxFrameSize=DEFAULT_MAX_FRAME_SIZE, window=DEFAULT_WINDOW):
        self._decoder = FrameDecoder(maxFrameSize)
        self._window = window
        self._out = []
        self._pending = {}
        self._nextId = 0
        self.state = "new"
        self.negotiated = False
        self.peerWindow = None
        self.peerHeaders = None
        self.drainAcknowledged = False
        self.orphanedDiscards = 0

    @property
    def pendingCount(self):
        """
        How many requests wait for their answer.
        """
        return len(self._pending)

    def dataToSend(self):
        """
        @return: the bytes to write now (possibly empty).
        """
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def readyToClose(self, graceExpired=False):
        """
        @param graceExpired: whether a session without the handshake has
            waited long enough for an Rdrain that may never come (Scales'
            client never answers Tdrain).
        @return: whether a draining session may close now: nothing pending,
            and the client acknowledged the drain, as Finagle requires.
        """
        return (
            self.state == "draining"
            and not self._pending
            and (self.drainAcknowledged or (graceExpired and not self.negotiated))
        )

    def drain(self):
        """
        Ask the client to stop sending requests; later ones are nacked.
        """
        if self.state in ("draining", "closed"):
            return
        self.state = "draining"
        self._out.append(encodeMessage(Tdrain(CONTROL_TAG)))

    def connectionLost(self):
        """
        The connection is gone.

        @return: the request ids still pending.
        """
        self.state = "closed"
        ids = [entry[0] for entry in self._pending.values()]
        self._pending.clear()
        return ids

    def reply(self, requestId, tag, body, contexts=()):
        """
        Answer a request successfully.

        @return: whether an answer was written (not when the request was
            discarded or the session is closed).
        """
        return self._answer(requestId, tag, STATUS_OK, body, contexts)

    def replyError(self, requestId, tag, message, flags=0):
        """
        Fail a request with an error message and MuxFailure C{flags}.
        """
        return self._answer(
            requestId, tag, STATUS_ERROR, message.encode("utf-8"), muxFailureContext(flags)
        )

    def replyNack(self, requestId, tag, flags=0):
        """
        Refuse a request without processing it.
        """
        return self._answer(requestId, tag, STATUS_NACK, b"", muxFailureContext(flags))

    def _answer(self, requestId, tag, status, body, contexts):
        entry = self._pending.get(tag)
        if entry is None or entry[0] != requestId:
            return False
        del self._pending[tag]
        if entry[1]:
            self._out.append(encodeMessage(Rreq(tag, status, body)))
        else:
            self._out.append(encodeFrames(Rdispatch(tag, status, contexts, body), self.peerWindow))
        return True

    def receiveData(self, data):
        """
        Handle received bytes.

        @return: a list of events.
        @raise txscales.errors.ProtocolError: when the client broke the
            protocol; after writing L{dataToSend}, close the connection.
        """
        events = []
        for message in self._decoder.feed(data):
            if self.state == "new":
                if isinstance(message, Rerr) and message.tag == CONTROL_TAG and message.why == MARKER.why:
                    # Echo the probe byte for byte, whichever code it used.
                    self._out.append(encodeMessage(message))
                    self.state = "init"
                    continue
                self.state = "open"
            elif self.state == "init":
                self.state = "open"
                if isinstance(message, Tinit):
                    self._negotiate(message)
                    continue
            if self.state == "closed":
                break
            self._receiveOpen(message, events)
        return events

    def _negotiate(self, message):
        if message.version != MUX_VERSION:
            self._out.append(
                encodeMessage(Rerr(message.tag, b"Unsupported Mux version: %d" % (message.version,)))
            )
            raise HandshakeError("unsupported Mux version %d" % (message.version,))
        self._out.append(encodeMessage(Rinit(message.tag, MUX_VERSION, localHeaders(self._window))))
        try:
            self.peerWindow = _peerWindow(message.headers)
        except HandshakeError as e:
            self._out.append(encodeMessage(Rerr(message.tag, str(e))))
            raise
        self.peerHeaders = message.headers
        self.negotiated = True

    def _receiveOpen(self, message, events):
        kind = type(message)
        if kind is Tdispatch or kind is Treq:
            tag = message.tag
            legacy = kind is Treq
            if tag in self._pending:
                for pendingTag in sorted(set(self._pending) | {tag}):
                    self._out.append(
                        encodeMessage(Rerr(pendingTag, b"Received duplicate tag %d from client." % (tag,)))
                    )
                self._pending.clear()
                self.state = "closed"
                raise DuplicateTagError("duplicate tag %d" % (tag,))
            if not MIN_TAG <= tag <= MAX_TAG:
                self._out.append(encodeMessage(Rerr(tag, b"invalid dispatch tag %d" % (tag,))))
                return
            if self.state == "draining":
                self._out.append(
                    encodeMessage(Rreq(tag, STATUS_NACK) if legacy else Rdispatch(tag, STATUS_NACK))
                )
                return
            self._nextId += 1
            self._pending[tag] = (self._nextId, legacy)
            if legacy:
                events.append(Dispatch(self._nextId, tag, [], b"", [], message.body, True))
            else:
                events.append(
                    Dispatch(self._nextId, tag, message.contexts, message.dst, message.dtab, message.body)
                )
        elif kind is Tping:
            self._out.append(encodeMessage(Rping(message.tag)))
        elif kind is Tdiscarded:
            entry = self._pending.pop(message.which, None)
            if entry is None:
                self.orphanedDiscards += 1
                return
            self._out.append(encodeMessage(Rdiscarded(message.which)))
            events.append(Discarded(entry[0], message.why))
        elif kind is _Rdrain and self.state == "draining":
            if not self.drainAcknowledged:
                self.drainAcknowledged = True
                events.append(DrainAcknowledged())
        else:
            self._out.append(
                encodeMessage(
                    Rerr(message.tag, b"Unexpected mux message type %d" % (message.wireType(),))
                )
            )
