"""
The server half of a Mux session: plain Python, no Twisted.
"""

from struct import Struct
from typing import Any, Dict, List, Optional, Tuple

from txscales.errors import DuplicateTagError, HandshakeError, ProtocolError, TlsNegotiationError
from txscales.mux._framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, encodeFrames
from txscales.mux._messages import (
    CONTROL_TAG,
    FLAG_REJECTED,
    FLAG_RETRYABLE,
    MAX_TAG,
    MIN_TAG,
    R_DISPATCH,
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
    Tping,
    Treq,
    T_DISPATCH,
    decodeMessage,
    encodeMessage,
    muxFailureContext,
)
from txscales.mux._shapes import Shapes
from txscales.mux._session import (
    DEFAULT_WINDOW,
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

DEFAULT_MAX_PENDING = 1000
"""How many requests a server session runs at once by default; later ones
are nacked until some are answered."""

# What Finagle's admission control sends: retry elsewhere, not processed.
_ADMISSION_FLAGS = FLAG_RETRYABLE | FLAG_REJECTED

# An Rdispatch frame header followed by status 0 and no contexts.
_okHeader = Struct(">IIxxx")
_R_DISPATCH_TYPE = (R_DISPATCH & 0xFF) << 24


class Dispatch:
    """
    A request arrived.  The server protocol hands it to its service as the
    L{txscales.mux.protocol.Request}.

    @ivar requestId: identifies this request for L{ServerSession.reply};
        unlike the tag, never reused within the session.
    @ivar tag: its tag.
    @ivar contexts: list of (key bytes, value bytes) broadcast contexts.
    @ivar dst: the destination path bytes.
    @ivar dtab: list of (prefix bytes, name-tree bytes).
    @ivar body: the payload.
    @ivar legacy: C{True} for a Treq (no contexts, dst or dtab).
    """

    __slots__ = ("requestId", "tag", "_contexts", "dst", "dtab", "body", "legacy", "_shape", "_header")
    # The header bytes the contexts are read from, while _shape is set.
    _header: Optional[bytes]

    def __init__(self, requestId, tag, contexts, dst, dtab, body, legacy: bool = False) -> None:
        self.requestId = requestId
        self.tag = tag
        self._contexts = contexts
        self.dst = dst
        self.dtab = dtab
        self.body = body
        self.legacy = legacy
        # Set (with the header bytes) when the contexts are still to read.
        self._shape = None

    @property
    def contexts(self):
        shape = self._shape
        if shape is not None:
            self._shape = None
            self._contexts = list(zip(shape._keys, shape._values(self._header)))
            self._header = None
        return self._contexts

    @contexts.setter
    def contexts(self, contexts):
        self._shape = None
        self._contexts = contexts


def _dispatchDecoder(shapes):
    """
    @param shapes: the L{Shapes} learnt from one client's requests.
    @return: a message decoder for a server's L{FrameDecoder}, which makes
        each Tdispatch straight into the L{Dispatch} event it becomes (its
        C{requestId} still None), reading its header by C{shapes}.
    """
    learnt = shapes.shapes
    decodeBody = Tdispatch.decodeBody

    def decode(typeCode, tag, body):
        if typeCode != T_DISPATCH:
            return decodeMessage(typeCode, tag, body)
        if type(body) is bytes:
            size = len(body)
            for shape in learnt:
                # Shapes.read(), inline.
                if size >= shape.size and shape._check(body) == shape._expected:
                    shapes._hits += 1
                    # Its contexts are read when first asked for: most
                    # services never look at them.
                    dispatch = Dispatch(None, tag, None, b"", [], body[shape.size :])
                    dispatch._shape = shape
                    dispatch._header = body[: shape.size]
                    return dispatch
        message = decodeBody(tag, body, shapes)
        return Dispatch(None, tag, message.contexts, message.dst, message.dtab, message.body)

    return decode


def _asTdispatch(event):
    """
    @return: the L{Tdispatch} a decoded L{Dispatch} event came as.
    """
    message = Tdispatch(event.tag, body=event.body)
    message.contexts, message.dst, message.dtab = event.contexts, event.dst, event.dtab
    return message


class Discarded:
    """
    The client discarded request C{requestId}; its answer is no longer
    wanted (and will not be sent).
    """

    def __init__(self, requestId, why) -> None:
        self.requestId = requestId
        self.why = why


class DrainAcknowledged:
    """
    The client answered our Tdrain.
    """


class ServerSession(Session):
    """
    The server half of a Mux session.

    @ivar state: C{"new"}, C{"init"} (marker echoed), C{"open"},
        C{"draining"} or C{"closed"}.
    @ivar negotiated: whether the client did the Tinit handshake.
    @ivar drainAcknowledged: whether the client answered Tdrain.
    @ivar orphanedDiscards: Tdiscarded messages for unknown tags.
    @ivar maxPending: how many requests may wait for their answer; the
        requests past it are nacked (retryable, not processed), as
        Finagle's admission control does.
    @ivar nacked: how many requests were nacked for C{maxPending}.
    """

    def __init__(
        self,
        maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
        window: int = DEFAULT_WINDOW,
        maxPending: int = DEFAULT_MAX_PENDING,
        tls: bytes = TLS_OFF,
    ) -> None:
        """
        @param maxPending: how many requests run at once; the later ones
            are nacked.
        @param tls: the opportunistic TLS level sent in Rinit: C{b"off"},
            C{b"desired"} or C{b"required"} (a client that does not
            negotiate is then refused).
        """
        Session.__init__(self)
        self._tls = tls
        # The shapes of this client's request headers, learnt as they come
        # (see txscales.mux._shapes): each session learns its own.  Saves
        # ~1.5 us per request (hotpath.py, thriftmux, server: 6.2-7.0 vs
        # 8.0 us when headers are read field by field).
        self._shapes = Shapes()
        self._decoder = FrameDecoder(maxFrameSize, _dispatchDecoder(self._shapes))
        self._window = window
        self._pending: Dict[int, Tuple[int, bool]] = {}
        self._nextId = 0
        self.state = "new"
        self.negotiated = False
        self.peerWindow = None
        self.drainAcknowledged = False
        self.orphanedDiscards = 0
        self.maxPending = maxPending
        self.nacked = 0

    @property
    def pendingCount(self):
        """
        How many requests wait for their answer.
        """
        return len(self._pending)

    def bufferedSize(self) -> int:
        """
        @return: how many received bytes wait for the rest of their frame or
            message.
        """
        return self._decoder.bufferedSize()

    def readyToClose(self, graceExpired: bool = False):
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

    def drain(self) -> None:
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
        entry = self._pending.get(tag)
        if (
            entry is not None
            and entry[0] == requestId
            and not entry[1]
            and not contexts
            and type(body) is bytes
            and (self.peerWindow is None or len(body) + 3 <= self.peerWindow)
        ):
            # The usual answer: an Rdispatch, ok, no contexts, one frame.
            del self._pending[tag]
            self._out.append(_okHeader.pack(len(body) + 7, _R_DISPATCH_TYPE | tag) + body)
            return True
        return self._answer(requestId, tag, STATUS_OK, body, contexts)

    def replyMany(self, answered):
        """
        Answer requests successfully, as L{reply} does each: what a server
        does once for the requests of a read that it answered at once.

        @param answered: a flat list: a L{Dispatch}, the body of its
            answer, the next L{Dispatch}, its body, and so on.
        """
        pending = self._pending
        out = self._out
        window = self.peerWindow
        for i in range(0, len(answered), 2):
            event = answered[i]
            body = answered[i + 1]
            tag = event.tag
            entry = pending.get(tag)
            if (
                entry is not None
                and entry[0] == event.requestId
                and not entry[1]
                and type(body) is bytes
                and (window is None or len(body) + 3 <= window)
            ):
                # reply(), inline.
                del pending[tag]
                out.append(_okHeader.pack(len(body) + 7, _R_DISPATCH_TYPE | tag) + body)
            else:
                self._answer(event.requestId, tag, STATUS_OK, body, ())

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

    def _answer(self, requestId, tag, status, body, contexts) -> bool:
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
            protocol; after writing L{dataToSend<Session.dataToSend>}, close the connection.
        """
        messages, error = self._decoder.feedUntilError(data)
        events: List[Any] = []
        if messages:
            try:
                self._receive(messages, events)
            except ProtocolError as e:
                error = e.with_traceback(None)
        if error is not None:
            self._refuse(events)
            raise error
        return events

    def _receive(self, messages, events):
        pending = self._pending
        maxPending = self.maxPending
        for message in messages:
            if type(message) is Dispatch:
                if self.state == "open":
                    # The usual request: a new tag on an open session.
                    tag = message.tag
                    if tag not in pending and MIN_TAG <= tag <= MAX_TAG and len(pending) < maxPending:
                        self._nextId += 1
                        pending[tag] = (self._nextId, False)
                        message.requestId = self._nextId
                        events.append(message)
                        continue
                message = _asTdispatch(message)
            if self.state == "new":
                if isMarker(message):
                    # Echo the probe byte for byte, whichever code it used.
                    self._out.append(encodeMessage(message))
                    self.state = "init"
                    continue
                self._refuseCleartext(message)
                self.state = "open"
            elif self.state == "init":
                if isinstance(message, Tinit):
                    self.state = "open"
                    self._negotiate(message, events)
                    continue
                self._refuseCleartext(message)
                self.state = "open"
            if self.state == "closed":
                break
            self._receiveOpen(message, events)

    def _refuse(self, events):
        """
        Nack the requests of C{events}, which will not be dispatched: the
        connection closes for a protocol error that came in the same bytes.
        """
        for event in events:
            if type(event) is Dispatch:
                self.replyNack(event.requestId, event.tag, _ADMISSION_FLAGS)

    def _refuseCleartext(self, message):
        if self._tls == TLS_REQUIRED:
            self._out.append(encodeMessage(Rerr(message.tag, b"this server requires TLS")))
            self.state = "closed"
            raise TlsNegotiationError("a client that does not negotiate TLS, which this server requires")

    def _negotiate(self, message, events):
        if message.version != MUX_VERSION:
            self._out.append(
                encodeMessage(Rerr(message.tag, b"Unsupported Mux version: %d" % (message.version,)))
            )
            raise HandshakeError("unsupported Mux version %d" % (message.version,))
        self._out.append(encodeMessage(Rinit(message.tag, MUX_VERSION, localHeaders(self._window, self._tls))))
        try:
            self.peerWindow = _peerWindow(message.headers)
            tls = negotiateTls(self._tls, peerTls(message.headers))
        except HandshakeError as e:
            # Finagle has sent Rinit already, then says why and closes.
            self._out.append(encodeMessage(Rerr(message.tag, str(e).encode("utf-8"))))
            self.state = "closed"
            raise
        self.negotiated = True
        if tls:
            events.append(StartTls())

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
            if len(self._pending) >= self.maxPending:
                self.nacked += 1
                self._out.append(
                    encodeMessage(
                        Rreq(tag, STATUS_NACK)
                        if legacy
                        else Rdispatch(tag, STATUS_NACK, muxFailureContext(_ADMISSION_FLAGS))
                    )
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
        elif kind is Rdrain and self.state == "draining":
            if not self.drainAcknowledged:
                self.drainAcknowledged = True
                events.append(DrainAcknowledged())
        else:
            self._out.append(
                encodeMessage(
                    Rerr(message.tag, b"Unexpected mux message type %d" % (message.wireType(),))
                )
            )
