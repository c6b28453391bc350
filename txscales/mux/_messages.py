"""
Mux messages and their bodies: plain Python, no Twisted.

A frame is C{size:4 type:1 tag:3 body}; C{size} counts type, tag and body.
Each message class knows its type code, encodes its body with C{encodeBody}
and is decoded from a body by L{decodeMessage}.  Framing (length prefixes,
fragments) lives in L{txscales.mux._framing}.

Type codes are signed bytes.  Finagle sends C{Rerr} as 127 and C{Tdiscarded}
as -62 (the "BAD" legacy codes); the canonical codes are -128 and 66.  Both
are decoded; a decoded message remembers which spelling it came with
(C{legacy}) so that it re-encodes byte for byte.  New messages use the
canonical codes.
"""

from struct import Struct
from typing import Callable, List, Optional, Union

from txscales.errors import BadMessageError, EncodeError, UnknownMessageTypeError
from txscales.mux._fields import (
    _readPairs,
    _readShortBytes,
    _text,
    _u16,
    _writePairs,
    _writeShortBytes,
)
from txscales.mux._shapes import Shapes

T_REQ = 1
R_REQ = -1
T_DISPATCH = 2
R_DISPATCH = -2
T_DRAIN = 64
R_DRAIN = -64
T_PING = 65
R_PING = -65
T_DISCARDED = 66
T_DISCARDED_LEGACY = -62
R_DISCARDED = -66
T_LEASE = 67
T_INIT = 68
R_INIT = -68
R_ERR = -128
R_ERR_LEGACY = 127

MARKER_TAG = 0
CONTROL_TAG = 1
MIN_TAG = 2
MAX_TAG = 0x7FFFFF
FRAGMENT_BIT = 0x800000

STATUS_OK = 0
STATUS_ERROR = 1
STATUS_NACK = 2

MUX_FAILURE_KEY = b"MuxFailure"
RETRIES_KEY = b"com.twitter.finagle.Retries"
"""Finagle's Retries context: the requeue attempt, a 4-byte int."""
FLAG_RETRYABLE = 1 << 0
FLAG_REJECTED = 1 << 1
FLAG_NON_RETRYABLE = 1 << 2

_short = Struct(">H")
_int = Struct(">I")
_long = Struct(">Q")
_header = Struct(">II")
_tagWhich = Struct(">I")
_STATUS_NO_CONTEXTS = [bytes((status, 0, 0)) for status in range(3)]


class Message:
    """
    Base of all Mux messages.

    @cvar type: the signed type code this class encodes with.
    @ivar tag: the message's tag.
    """

    __slots__ = ("tag",)
    type: int
    fields: "tuple[str, ...]" = ()
    tag: int

    def encodeBody(self) -> bytes:
        """
        @return: the body bytes (everything after the tag).
        """
        return b""

    def bodyParts(self) -> List[bytes]:
        """
        @return: the list of byte strings whose concatenation is the body.
        """
        return [self.encodeBody()]

    def wireType(self):
        """
        @return: the signed type code to write for this message.
        """
        return self.type

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in ("tag",) + self.fields)

    def __hash__(self):
        return hash((type(self),) + tuple(repr(getattr(self, f)) for f in ("tag",) + self.fields))

    def __repr__(self) -> str:
        parts = ["tag=%r" % (self.tag,)] + [
            "%s=%r" % (f, getattr(self, f)) for f in self.fields
        ]
        return "%s(%s)" % (type(self).__name__, ", ".join(parts))


class _Empty(Message):
    __slots__ = ()

    def __init__(self, tag=CONTROL_TAG) -> None:
        self.tag = tag

    @classmethod
    def decodeBody(cls, tag, body):
        if body:
            raise BadMessageError("%s carries %d unexpected body bytes" % (cls.__name__, len(body)))
        return cls(tag)


class Tdrain(_Empty):
    """
    The server asks the client to stop sending new requests on this session.
    """

    __slots__ = ()
    type = T_DRAIN


class Rdrain(_Empty):
    """
    The client's acknowledgement of a L{Tdrain}.
    """

    __slots__ = ()
    type = R_DRAIN


class Tping(_Empty):
    """
    A liveness probe; the peer answers with L{Rping} of the same tag.
    """

    __slots__ = ()
    type = T_PING


class Rping(_Empty):
    """
    The answer to a L{Tping}.
    """

    __slots__ = ()
    type = R_PING


class Rdiscarded(_Empty):
    """
    The server's acknowledgement that the request with this tag was discarded.
    """

    __slots__ = ()
    type = R_DISCARDED


class Tdispatch(Message):
    """
    A request with broadcast contexts, a destination path and a delegation
    table.

    @ivar contexts: list of (key bytes, value bytes), in wire order.
    @ivar dst: the destination path, bytes (empty for none).
    @ivar dtab: list of (prefix bytes, name-tree bytes).
    @ivar body: the payload (one Thrift message for ThriftMux).
    """

    __slots__ = ("contexts", "dst", "dtab", "body")
    type = T_DISPATCH
    fields = ("contexts", "dst", "dtab", "body")

    def __init__(self, tag, contexts=(), dst: Union[bytes, str] = b"", dtab=(), body: bytes = b"") -> None:
        self.tag = tag
        self.contexts = list(contexts)
        self.dst = dst if type(dst) is bytes else _text(dst)
        self.dtab = [(_text(a), _text(b)) for a, b in dtab] if dtab else []
        self.body = body

    def encodeBody(self):
        return b"".join(self.bodyParts())

    def bodyParts(self):
        """
        @return: the list of byte strings whose concatenation is the body.
        """
        parts: List[bytes] = []
        _writePairs(parts, self.contexts, "context")
        _writeShortBytes(parts, self.dst, "dst")
        _writePairs(parts, self.dtab, "dtab")
        parts.append(self.body)
        return parts

    @classmethod
    def decodeBody(cls, tag, body, shapes=None):
        """
        @param shapes: the L{Shapes} of the headers of the peer's earlier
            requests, to read this header by and learn from; None to read
            it field by field.
        """
        message = cls.__new__(cls)
        message.tag = tag
        known = shapes.read(body) if shapes is not None and type(body) is bytes else None
        if known is not None:
            message.contexts, offset = known
            message.dst = b""
            message.dtab = []
        else:
            message.contexts, offset = _readPairs(body, 0, "context")
            message.dst, offset = _readShortBytes(body, offset, "dst")
            message.dtab, offset = _readPairs(body, offset, "dtab")
            if shapes is not None and not message.dst and not message.dtab and type(body) is bytes:
                shapes.missed(message.contexts)
        message.body = bytes(body[offset:])
        return message


class Rdispatch(Message):
    """
    The answer to a L{Tdispatch}.

    @ivar status: L{STATUS_OK}, L{STATUS_ERROR} or L{STATUS_NACK}.
    @ivar contexts: list of (key bytes, value bytes).
    @ivar body: the reply payload; for an error, its UTF-8 message.
    """

    __slots__ = ("status", "contexts", "body")
    type = R_DISPATCH
    fields = ("status", "contexts", "body")

    def __init__(self, tag, status=STATUS_OK, contexts=(), body: bytes = b"") -> None:
        self.tag = tag
        self.status = status
        self.contexts = list(contexts)
        self.body = body

    def encodeBody(self):
        return b"".join(self.bodyParts())

    def bodyParts(self):
        """
        @return: the list of byte strings whose concatenation is the body.
        """
        if not 0 <= self.status <= 255:
            raise EncodeError("status %r is not a byte" % (self.status,))
        if not self.contexts:
            return [_STATUS_NO_CONTEXTS[self.status] if self.status < 3 else bytes((self.status, 0, 0)), self.body]
        parts = [bytes((self.status,))]
        _writePairs(parts, self.contexts, "context")
        parts.append(self.body)
        return parts

    @classmethod
    def decodeBody(cls, tag, body):
        if not body:
            raise BadMessageError("Rdispatch without a status byte")
        if body[1:3] == b"\x00\x00":
            contexts, offset = [], 3
        else:
            contexts, offset = _readPairs(body, 1, "context")
        message = cls.__new__(cls)
        message.tag = tag
        message.status = body[0]
        message.contexts = contexts
        message.body = bytes(body[offset:])
        return message


class Treq(Message):
    """
    The pre-Tdispatch request (deprecated, still accepted).

    @ivar keys: list of (key int, value bytes); key 1 = trace id, 2 = flags.
    @ivar body: the payload.
    """

    __slots__ = ("keys", "body")
    type = T_REQ
    fields = ("keys", "body")

    def __init__(self, tag, keys=(), body: bytes = b"") -> None:
        self.tag = tag
        self.keys = list(keys)
        self.body = body

    def encodeBody(self):
        if len(self.keys) > 255:
            raise EncodeError("Treq carries at most 255 keys")
        parts = [bytes((len(self.keys),))]
        for key, value in self.keys:
            if not 0 <= key <= 255 or len(value) > 255:
                raise EncodeError("Treq key %r or its value is out of range" % (key,))
            parts.append(bytes((key, len(value))))
            parts.append(value)
        parts.append(self.body)
        return b"".join(parts)

    @classmethod
    def decodeBody(cls, tag, body):
        if not body:
            raise BadMessageError("Treq without a key count")
        offset = 1
        keys = []
        for _ in range(body[0]):
            if offset + 2 > len(body):
                raise BadMessageError("truncated Treq key")
            key, size = body[offset], body[offset + 1]
            offset += 2
            if offset + size > len(body):
                raise BadMessageError("truncated Treq value")
            keys.append((key, bytes(body[offset : offset + size])))
            offset += size
        return cls(tag, keys, bytes(body[offset:]))


class Rreq(Message):
    """
    The answer to a L{Treq}: C{status} 0 ok, 1 error (UTF-8 message), 2 nack.
    """

    __slots__ = ("status", "body")
    type = R_REQ
    fields = ("status", "body")

    def __init__(self, tag, status=STATUS_OK, body: bytes = b"") -> None:
        self.tag = tag
        self.status = status
        self.body = body

    def encodeBody(self):
        if not 0 <= self.status <= 255:
            raise EncodeError("status %r is not a byte" % (self.status,))
        return bytes((self.status,)) + self.body

    @classmethod
    def decodeBody(cls, tag, body):
        if not body:
            raise BadMessageError("Rreq without a status byte")
        return cls(tag, body[0], bytes(body[1:]))


class Rerr(Message):
    """
    A session-level error answering the request with this tag; also the
    handshake marker C{Rerr(1, "tinit check")}.

    @ivar why: the UTF-8 reason, as bytes.
    @ivar legacy: C{True} to use Finagle's code 127 instead of -128.
    """

    __slots__ = ("why", "legacy")
    type = R_ERR
    fields = ("why",)

    def __init__(self, tag, why: Union[bytes, str] = b"", legacy: bool = False) -> None:
        self.tag = tag
        self.why = _text(why)
        self.legacy = legacy

    def wireType(self):
        return R_ERR_LEGACY if self.legacy else R_ERR

    def encodeBody(self):
        return self.why

    @classmethod
    def decodeBody(cls, tag, body, legacy: bool = False):
        return cls(tag, bytes(body), legacy)


class Tdiscarded(Message):
    """
    The client no longer wants the answer to request C{which}.  Sent on the
    marker tag 0.

    @ivar which: the discarded request's tag.
    @ivar why: the UTF-8 reason, as bytes.
    @ivar legacy: C{True} to use Finagle's code -62 instead of 66.
    """

    __slots__ = ("which", "why", "legacy")
    type = T_DISCARDED
    fields = ("which", "why")

    def __init__(self, which, why: Union[bytes, str] = b"", legacy: bool = False, tag=MARKER_TAG) -> None:
        self.tag = tag
        self.which = which
        self.why = _text(why)
        self.legacy = legacy

    def wireType(self):
        return T_DISCARDED_LEGACY if self.legacy else T_DISCARDED

    def encodeBody(self):
        if not 0 <= self.which <= 0xFFFFFF:
            raise EncodeError("discarded tag %r out of range" % (self.which,))
        return _tagWhich.pack(self.which)[1:] + self.why

    @classmethod
    def decodeBody(cls, tag, body, legacy: bool = False):
        if len(body) < 3:
            raise BadMessageError("Tdiscarded shorter than its 3-byte tag")
        which = (body[0] << 16) | (body[1] << 8) | body[2]
        return cls(which, bytes(body[3:]), legacy, tag)


class Tlease(Message):
    """
    The server grants the client a lease: C{unit} 0 means C{howMuch}
    milliseconds from now.
    """

    __slots__ = ("unit", "howMuch")
    type = T_LEASE
    fields = ("unit", "howMuch")

    def __init__(self, unit, howMuch, tag=MARKER_TAG) -> None:
        self.tag = tag
        self.unit = unit
        self.howMuch = howMuch

    def encodeBody(self):
        if not 0 <= self.unit <= 255 or not 0 <= self.howMuch < 2**64:
            raise EncodeError("Tlease unit or duration out of range")
        return bytes((self.unit,)) + _long.pack(self.howMuch)

    @classmethod
    def decodeBody(cls, tag, body):
        if len(body) != 9:
            raise BadMessageError("Tlease body is %d bytes, not 9" % (len(body),))
        return cls(body[0], _long.unpack_from(body, 1)[0], tag)


class Tinit(Message):
    """
    Session negotiation: a version and a list of (key, value) headers.
    """

    __slots__ = ("version", "headers")
    type = T_INIT
    fields = ("version", "headers")

    def __init__(self, tag=CONTROL_TAG, version=1, headers=()) -> None:
        self.tag = tag
        self.version = version
        self.headers = [(_text(k), v) for k, v in headers]

    def encodeBody(self):
        if not 0 <= self.version <= 0xFFFF:
            raise EncodeError("version %r out of range" % (self.version,))
        parts = [_short.pack(self.version)]
        for k, v in self.headers:
            parts.append(_int.pack(len(k)))
            parts.append(k)
            parts.append(_int.pack(len(v)))
            parts.append(v)
        return b"".join(parts)

    @classmethod
    def decodeBody(cls, tag, body):
        version = _u16(body, 0, "version")
        offset = 2
        headers = []
        size = len(body)
        while offset < size:
            fields = []
            for what in ("key", "value"):
                if offset + 4 > size:
                    raise BadMessageError("truncated %s header %s length" % (cls.__name__, what))
                n = _int.unpack_from(body, offset)[0]
                offset += 4
                if offset + n > size:
                    raise BadMessageError("truncated %s header %s" % (cls.__name__, what))
                fields.append(bytes(body[offset : offset + n]))
                offset += n
            headers.append(tuple(fields))
        return cls(tag, version, headers)


class Rinit(Tinit):
    """
    The server's answer to L{Tinit}, with its own headers.
    """

    __slots__ = ()
    type = R_INIT


_DECODERS = {
    cls.type: cls.decodeBody
    for cls in (
        Treq, Rreq, Tdispatch, Rdispatch, Tdrain, Rdrain, Tping, Rping, Tdiscarded, Rdiscarded, Tlease, Tinit, Rinit, Rerr
    )
}
_DECODERS[T_DISCARDED_LEGACY] = lambda tag, body: Tdiscarded.decodeBody(tag, body, True)
_DECODERS[R_ERR_LEGACY] = lambda tag, body: Rerr.decodeBody(tag, body, True)

FRAGMENTABLE = frozenset([T_DISPATCH, R_DISPATCH])

MESSAGE_TYPES = frozenset(_DECODERS)
"""The type codes of the messages Mux defines, both spellings included."""


def decodeMessage(typeCode, tag, body):
    """
    Decode one message from its signed type code, tag and body.

    @param typeCode: the signed type byte.
    @param tag: the tag, without the fragment bit.
    @param body: the body bytes.
    @raise UnknownMessageTypeError: for a type Mux does not define.
    @raise BadMessageError: for a body that does not decode.
    @return: a L{Message}.
    """
    decoder = _DECODERS.get(typeCode)
    if decoder is None:
        raise UnknownMessageTypeError("unknown message type %d [tag=%d]" % (typeCode, tag))
    return decoder(tag, body)


def requestDecoder(shapes: Optional[Shapes]) -> Callable[[int, int, bytes], Message]:
    """
    @param shapes: the L{Shapes} learnt from one client's requests.
    @return: L{decodeMessage} for a server, which reads the header of each
        C{Tdispatch} by C{shapes}.
    """
    decodeBody = Tdispatch.decodeBody

    def decodeRequest(typeCode: int, tag: int, body: bytes) -> Message:
        if typeCode == T_DISPATCH:
            return decodeBody(tag, body, shapes)
        return decodeMessage(typeCode, tag, body)

    return decodeRequest


def encodeMessage(message):
    """
    Encode a whole message as one frame (no fragmentation).

    @param message: a L{Message}.
    @raise EncodeError: if a field is out of range.
    @return: the frame bytes, length prefix included.
    """
    body = message.encodeBody()
    return frameHeader(message.wireType(), message.tag, len(body)) + body


def frameHeader(typeCode, tag, bodySize):
    """
    Encode the 8-byte frame header for a body of C{bodySize} bytes.

    @param tag: the tag, possibly with L{FRAGMENT_BIT} set.
    @raise EncodeError: if the tag is out of range.
    """
    if tag < 0 or (tag & ~FRAGMENT_BIT) > MAX_TAG:
        raise EncodeError("tag %r is outside 0..0x7fffff" % (tag,))
    return _header.pack(bodySize + 4, ((typeCode & 0xFF) << 24) | tag)


def muxFailureFlags(contexts):
    """
    Read the MuxFailure flags from Rdispatch contexts.

    @return: the flags, 0 when absent.
    """
    for key, value in contexts:
        if key == MUX_FAILURE_KEY and len(value) >= 8:
            return _long.unpack_from(value)[0]
    return 0


def muxFailureContext(flags):
    """
    @return: the Rdispatch contexts carrying C{flags} (none when 0).
    """
    return [(MUX_FAILURE_KEY, _long.pack(flags))] if flags else []
