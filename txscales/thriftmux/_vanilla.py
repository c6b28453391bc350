"""
Downgraded sessions: framed Thrift and TTwitter clients of a ThriftMux
server (MUX.md 2.3).  Plain Python, no Twisted.

A ThriftMux listener sees a framed Thrift client's first frame as bytes that
do not decode as Mux (or as an C{Rerr} whose tag spells a binary Thrift
CALL/ONEWAY).  Such a connection gets a L{VanillaSession}: each frame is one
Thrift call; calls are dispatched concurrently and answered in order.  A
first call to C{__can__finagle__trace__v3__} switches to TTwitter, where
every call is preceded by a C{RequestHeader} struct and every reply by an
empty C{ResponseHeader}.
"""

from typing import List, Optional, Sequence, Tuple

from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.Thrift import TMessageType, TType
from thrift.transport.TTransport import TMemoryBuffer

from txscales.errors import BadMessageError
from txscales.mux import MESSAGE_TYPES, R_ERR, R_ERR_LEGACY, Dispatch
from txscales.thrift import BINARY, FramedDecoder, InOrderReplies, encodeFrame, encodeMessageHeader, readMessageBegin
from txscales._tracing import DEBUG, SAMPLED, SAMPLING_KNOWN
from txscales.thriftmux._contexts import CLIENT_ID_KEY, TRACE_KEY, TraceId

UPGRADE_METHOD = "__can__finagle__trace__v3__"

_UPGRADE_NAME = UPGRADE_METHOD.encode("ascii")
_THRIFT_CALLS = (0x010001, 0x010004)


def looksLikeThrift(data: bytes) -> bool:
    """
    Decide from a connection's first bytes (at least 8) whether the client
    speaks framed Thrift rather than Mux.
    """
    typeByte = data[4]
    typeCode = typeByte - 256 if typeByte > 127 else typeByte
    if typeCode not in MESSAGE_TYPES:
        return True
    tag = int.from_bytes(data[5:8], "big")
    return typeCode in (R_ERR, R_ERR_LEGACY) and tag in _THRIFT_CALLS


def vanillaFallback(data: bytes, maxFrameSize: int) -> Optional["VanillaSession"]:
    """
    A L{txscales.mux.protocol.MuxServerProtocol} fallback: a
    L{VanillaSession} for Thrift clients, None for Mux ones.
    """
    return VanillaSession(maxFrameSize) if looksLikeThrift(data) else None


def _readRequestHeader(data):
    """
    Read a TTwitter C{RequestHeader}.

    @return: (Mux contexts, dst bytes, dtab pairs, offset of the call).
    """
    buffer = TMemoryBuffer(data)
    proto = TBinaryProtocol(buffer)
    fields = {}
    contexts: List[Tuple[bytes, bytes]] = []
    dst = b""
    dtab: List[Tuple[bytes, bytes]] = []
    try:
        proto.readStructBegin()
        while True:
            _, ftype, fid = proto.readFieldBegin()
            if ftype == TType.STOP:
                break
            if fid in (1, 2, 3, 7, 11) and ftype == TType.I64:
                fields[fid] = proto.readI64() & 0xFFFFFFFFFFFFFFFF
            elif fid == 5 and ftype == TType.BOOL:
                # The caller's sampling decision, which Finagle keeps
                # apart from the flags.
                fields[fid] = proto.readBool()
            elif fid == 6 and ftype == TType.STRUCT:
                proto.readStructBegin()
                while True:
                    _, t, i = proto.readFieldBegin()
                    if t == TType.STOP:
                        break
                    if i == 1 and t == TType.STRING:
                        contexts.append((CLIENT_ID_KEY, proto.readBinary()))
                    else:
                        proto.skip(t)
                proto.readStructEnd()
            elif fid in (8, 10) and ftype == TType.LIST:
                _, size = proto.readListBegin()
                for _ in range(size):
                    pair = [b"", b""]
                    proto.readStructBegin()
                    while True:
                        _, t, i = proto.readFieldBegin()
                        if t == TType.STOP:
                            break
                        if i in (1, 2) and t == TType.STRING:
                            pair[i - 1] = proto.readBinary()
                        else:
                            proto.skip(t)
                    proto.readStructEnd()
                    (contexts if fid == 8 else dtab).append((pair[0], pair[1]))
            elif fid == 9 and ftype == TType.STRING:
                dst = proto.readBinary()
            else:
                proto.skip(ftype)
        proto.readStructEnd()
    except Exception as e:
        raise BadMessageError("undecodable TTwitter RequestHeader: %s" % (e,))
    if 1 in fields and 2 in fields:
        span = fields[2]
        flags = fields.get(7, 0)
        if 5 in fields and not flags & (DEBUG | SAMPLING_KNOWN):
            flags |= SAMPLING_KNOWN | SAMPLED if fields[5] else SAMPLING_KNOWN
        trace = TraceId(span, fields.get(3, span), fields[1], flags, fields.get(11))
        contexts.insert(0, (TRACE_KEY, trace.encode()))
    return contexts, dst, dtab, buffer.cstringio_buf.tell()


class VanillaSession(InOrderReplies):
    """
    A downgraded (framed Thrift or TTwitter) server session, with the event
    interface of L{txscales.mux._serversession.ServerSession}; replies are written
    in call order (L{InOrderReplies}).

    @ivar ttwitter: whether the client upgraded to TTwitter.
    """

    negotiated = False

    def __init__(self, maxFrameSize: int) -> None:
        InOrderReplies.__init__(self)
        self._decoder = FramedDecoder(maxFrameSize)
        self._first = True
        self._broken = False
        self.ttwitter = False

    def receiveData(self, data: bytes) -> List[Dispatch]:
        """
        Handle received bytes.

        @return: a list of L{Dispatch} events.
        @raise txscales.errors.ProtocolError: for an oversized or
            undecodable frame.
        """
        events: List[Dispatch] = []
        for frame in self._decoder.feed(data):
            self._frame(frame, events)
        return events

    def _frame(self, frame, events) -> None:
        contexts, dst, dtab = [], b"", []
        if self.ttwitter:
            contexts, dst, dtab, start = _readRequestHeader(frame)
            frame = frame[start:]
        protocol, name, messageType, seqid, _ = readMessageBegin(frame)
        if self._first:
            self._first = False
            if name == UPGRADE_METHOD and messageType == TMessageType.CALL:
                # The upgrade reply: the call's header as a REPLY, and an
                # empty UpgradeReply struct.
                self.ttwitter = True
                header = encodeMessageHeader(BINARY, _UPGRADE_NAME, TMessageType.REPLY, seqid)
                self._out.append(encodeFrame(header + b"\x00"))
                return
        requestId = self._received(messageType == TMessageType.ONEWAY)
        events.append(Dispatch(requestId, None, contexts, dst, dtab, frame))

    def bufferedSize(self) -> int:
        """
        @return: how many received bytes wait for the rest of their frame.
        """
        return self._decoder.bufferedSize()

    def reply(
        self, requestId: int, tag: Optional[int], body: bytes, contexts: Sequence[Tuple[bytes, bytes]] = ()
    ) -> bool:
        """
        Answer call C{requestId}; answers are written in call order.

        @return: whether bytes are now ready to send.
        """
        return self._answered(requestId, encodeFrame(b"\x00" + body if self.ttwitter else body))

    def replyError(self, requestId: int, tag: Optional[int], message: str, flags: int = 0) -> bool:
        """
        Plain Thrift cannot carry a Mux error or nack: close the connection.
        """
        self._broken = True
        return False

    replyNack = replyError

    def readyToClose(self, graceExpired: bool = False) -> bool:
        """
        @return: whether the connection should close now.
        """
        return self._broken or (self.state == "draining" and not self._queue)
