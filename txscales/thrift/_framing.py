"""
Plain Thrift transports, sans-IO: where one message ends and the next
begins.  Plain Python, no Twisted.

Two transports are in use:

  - B{framed}: each message is preceded by its length, a 4-byte big-endian
    unsigned integer (L{txscales._framing}).  A length above the configured
    maximum is refused as soon as the prefix arrives, before anything of
    that size is buffered.
  - B{buffered}: messages follow one another with nothing in between, so
    their ends are found by walking each message's structure (message
    header, then one struct) in the binary or the compact protocol, whichever
    the message's first byte announces.  The walk is resumable: bytes are
    looked at once however the message is cut, and a declared size (string,
    container) above the maximum is refused before the bytes arrive.

Each decoder's C{feed(bytes)} returns the complete messages (as bytes),
keeping the rest for the next call; malformed input raises a
L{txscales.errors.ProtocolError}, after which the decoder must not be fed
again (the connection is closed).
"""

from struct import Struct
from typing import Any, List, Optional

from thrift.Thrift import TMessageType, TType

# encodeFrame is also the framed transport's encoder, by this name.
from txscales._framing import LengthPrefixDecoder, encodeFrame
from txscales.errors import BadMessageError, FrameTooLargeError

FRAMED = "framed"
BUFFERED = "buffered"
TRANSPORTS = (FRAMED, BUFFERED)

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
"""The largest message (or frame) accepted unless configured otherwise."""

MAX_DEPTH = 64
"""How deeply structs and containers may nest (Apache Thrift's default)."""

_uint = Struct(">I")
_int = Struct(">i")

_MESSAGE_TYPES = (TMessageType.CALL, TMessageType.REPLY, TMessageType.EXCEPTION, TMessageType.ONEWAY)

# Wire sizes of the fixed-size types (a bool inside a compact container is
# one byte; a bool field of a compact struct lives in its field header).
_BINARY_FIXED = {TType.BOOL: 1, TType.BYTE: 1, TType.DOUBLE: 8, TType.I16: 2, TType.I32: 4, TType.I64: 8, TType.UUID: 16}
_COMPACT_FIXED = {TType.BOOL: 1, TType.BYTE: 1, TType.DOUBLE: 8, TType.UUID: 16}
_VARIABLE = (TType.STRING, TType.STRUCT, TType.MAP, TType.SET, TType.LIST)
_BINARY_TYPES = frozenset(_BINARY_FIXED) | frozenset(_VARIABLE)
_COMPACT_VARINTS = frozenset((TType.I16, TType.I32, TType.I64))
_COMPACT_TYPES = {
    1: TType.BOOL,
    2: TType.BOOL,
    3: TType.BYTE,
    4: TType.I16,
    5: TType.I32,
    6: TType.I64,
    7: TType.DOUBLE,
    8: TType.STRING,
    9: TType.LIST,
    10: TType.SET,
    11: TType.MAP,
    12: TType.STRUCT,
    13: TType.UUID,
}


def messageType(message):
    """
    Peek at the type of a complete Thrift message without decoding it.

    @return: the C{TMessageType} (C{CALL}, C{REPLY}, C{EXCEPTION} or
        C{ONEWAY}), or None when C{message} is too short or not Thrift.
    """
    if len(message) < 2:
        return None
    first = message[0]
    if first == 0x82:
        return message[1] >> 5
    if first == 0x80:
        return message[3] if len(message) >= 4 else None
    if first & 0x80 or len(message) < 4:
        return None
    end = 4 + _uint.unpack_from(message)[0]
    return message[end] if end < len(message) else None


class FramedDecoder(LengthPrefixDecoder):
    """
    Split a byte stream of the framed transport into messages: a
    L{LengthPrefixDecoder} that refuses empty frames.
    """

    def __init__(self, maxFrameSize=DEFAULT_MAX_MESSAGE_SIZE) -> None:
        LengthPrefixDecoder.__init__(self, maxFrameSize, 1, "Thrift frame")

    @property
    def pending(self):
        """
        How many bytes wait for the rest of their frame.
        """
        return self.bufferedSize()


class _NeedMore(Exception):
    """
    The walk reached the end of the bytes received.

    @ivar need: how long the buffer must be before the walk can go on.
    """

    def __init__(self, need) -> None:
        self.need = need


def _varint(buf, pos, end):
    """
    Read an unsigned varint.

    @return: (value, position after it).
    """
    result = 0
    shift = 0
    for _ in range(10):
        if pos >= end:
            raise _NeedMore(pos + 1)
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
    raise BadMessageError("compact varint longer than 10 bytes")


def _need(end, needed):
    if needed > end:
        raise _NeedMore(needed)


_STRUCT = 0
_CONTAINER = 1


class BufferedDecoder:
    """
    Split a byte stream of the buffered (unframed) transport into messages,
    binary or compact, by walking each message's structure.

    The walk keeps, between calls, the position reached and a stack of the
    structs and containers it is inside; each step reads one field or element
    header (and the length or container header of its value) and changes the
    state only once all of it is there, so input may be cut anywhere.

    @ivar maxMessageSize: the largest message accepted.
    """

    def __init__(self, maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.maxMessageSize = maxMessageSize
        self._buffer = bytearray()
        self._reset()

    def _reset(self) -> None:
        self._pos = 0
        self._stack: Optional[List[List[Any]]] = None
        self._binary = True
        self._needed = 1

    @property
    def pending(self):
        """
        How many bytes wait for the rest of their message.
        """
        return len(self._buffer)

    def feed(self, data):
        """
        @return: the messages that C{data} completed, as bytes.
        @raise FrameTooLargeError: for a message (or a declared size in one)
            above the maximum.
        @raise BadMessageError: for bytes that are not a Thrift message.
        """
        buf = self._buffer
        buf += data
        messages = []
        while len(buf) >= self._needed:
            try:
                end = self._walk(buf)
            except _NeedMore as e:
                self._needed = e.need
                break
            messages.append(bytes(buf[:end]))
            del buf[:end]
            self._reset()
        return messages

    def _walk(self, buf):
        """
        Go on walking the message at the start of C{buf}.

        @return: its length once complete.
        @raise _NeedMore: when C{buf} ends first (the state is kept).
        """
        end = len(buf)
        limit = self.maxMessageSize
        if self._stack is None:
            self._binary, self._pos = self._header(buf, end)
            self._stack = [[_STRUCT]]
        stack = self._stack
        binary = self._binary
        pos = self._pos
        try:
            while stack:
                if pos > limit:
                    raise FrameTooLargeError("Thrift message of more than %d bytes" % (limit,))
                frame = stack[-1]
                if frame[0] is _STRUCT:
                    if pos >= end:
                        raise _NeedMore(pos + 1)
                    b = buf[pos]
                    if binary:
                        if b == TType.STOP:
                            pos += 1
                            stack.pop()
                            continue
                        ttype = b
                        if ttype not in _BINARY_TYPES:
                            raise BadMessageError("unknown Thrift binary field type %d" % (ttype,))
                        at = pos + 3
                        _need(end, at)
                    else:
                        if b & 0x0F == 0:
                            pos += 1
                            stack.pop()
                            continue
                        ttype = _COMPACT_TYPES.get(b & 0x0F)
                        if ttype is None:
                            raise BadMessageError("unknown Thrift compact field type %d" % (b & 0x0F,))
                        at = pos + 1
                        if b >> 4 == 0:
                            at = _varint(buf, at, end)[1]
                        if ttype == TType.BOOL:
                            # The value is the field header's type.
                            pos = at
                            continue
                    pos, inner = self._value(ttype, buf, at, end, len(stack))
                    if inner is not None:
                        stack.append(inner)
                else:
                    remaining = frame[1]
                    if remaining == 0:
                        stack.pop()
                        continue
                    pos, inner = self._value(frame[2][remaining & 1], buf, pos, end, len(stack))
                    frame[1] = remaining - 1
                    if inner is not None:
                        stack.append(inner)
        finally:
            self._pos = pos
        if pos > limit:
            raise FrameTooLargeError("Thrift message of more than %d bytes" % (limit,))
        return pos

    def _header(self, buf, end):
        """
        Read a message header.

        @return: (whether the message is binary, where its struct starts).
        """
        first = buf[0]
        limit = self.maxMessageSize
        if first == 0x82:
            _need(end, 2)
            second = buf[1]
            if second & 0x1F != 1:
                raise BadMessageError("bad Thrift compact version %d" % (second & 0x1F,))
            if second >> 5 not in _MESSAGE_TYPES:
                raise BadMessageError("bad Thrift message type %d" % (second >> 5,))
            pos = _varint(buf, 2, end)[1]
            size, pos = _varint(buf, pos, end)
            if size > limit:
                raise FrameTooLargeError("Thrift method name of %d bytes exceeds %d" % (size, limit))
            return False, pos + size
        if first & 0x80:
            _need(end, 8)
            version = _uint.unpack_from(buf)[0]
            if version & 0xFFFF0000 != 0x80010000:
                raise BadMessageError("bad Thrift binary version %#x" % (version,))
            if version & 0xFF not in _MESSAGE_TYPES:
                raise BadMessageError("bad Thrift message type %d" % (version & 0xFF,))
            size = _uint.unpack_from(buf, 4)[0]
            if size > limit:
                raise FrameTooLargeError("Thrift method name of %d bytes exceeds %d" % (size, limit))
            return True, 8 + size + 4
        # Old, non-strict binary: the name's length, the name, the type.
        _need(end, 4)
        size = _uint.unpack_from(buf)[0]
        if size > limit:
            raise FrameTooLargeError("Thrift method name of %d bytes exceeds %d" % (size, limit))
        _need(end, 4 + size + 1)
        if buf[4 + size] not in _MESSAGE_TYPES:
            raise BadMessageError("bad Thrift message type %d" % (buf[4 + size],))
        return True, 4 + size + 1 + 4

    def _value(self, ttype, buf, pos, end, depth):
        """
        Step over one value of type C{ttype} starting at C{pos}, or over the
        header of a struct or container.

        @return: (position after what was read, a stack frame to enter or
            None).
        """
        binary = self._binary
        fixed = (_BINARY_FIXED if binary else _COMPACT_FIXED).get(ttype)
        if fixed is not None:
            return pos + fixed, None
        if not binary and ttype in _COMPACT_VARINTS:
            return _varint(buf, pos, end)[1], None
        if ttype == TType.STRING:
            if binary:
                _need(end, pos + 4)
                size = _int.unpack_from(buf, pos)[0]
                pos += 4
            else:
                size, pos = _varint(buf, pos, end)
            self._checkSize(size, pos, 1, "string")
            return pos + size, None
        if depth >= MAX_DEPTH:
            raise BadMessageError("Thrift structs and containers nested deeper than %d" % (MAX_DEPTH,))
        if ttype == TType.STRUCT:
            return pos, [_STRUCT]
        if ttype == TType.MAP:
            if binary:
                _need(end, pos + 6)
                types = (buf[pos], buf[pos + 1])
                count = _int.unpack_from(buf, pos + 2)[0]
                pos += 6
            else:
                count, pos = _varint(buf, pos, end)
                if count == 0:
                    return pos, None
                _need(end, pos + 1)
                types = (self._elementType(buf[pos] >> 4), self._elementType(buf[pos] & 0x0F))
                pos += 1
            if count == 0:
                return pos, None
            return self._container(pos, count, self._checkType(types[0]), self._checkType(types[1]))
        if ttype in (TType.LIST, TType.SET):
            if binary:
                _need(end, pos + 5)
                elementType = self._checkType(buf[pos])
                count = _int.unpack_from(buf, pos + 1)[0]
                pos += 5
            else:
                _need(end, pos + 1)
                b = buf[pos]
                elementType = self._elementType(b & 0x0F)
                count = b >> 4
                pos += 1
                if count == 15:
                    count, pos = _varint(buf, pos, end)
            if count == 0:
                return pos, None
            return self._container(pos, count, elementType)
        raise BadMessageError("Thrift type %d cannot be a value" % (ttype,))

    def _container(self, pos, count, elementType, valueType=None):
        """
        Step over a container of fixed-size elements at once; otherwise
        return the frame that walks its elements.  A map's keys and values
        alternate: its frame counts C{2 * count} down, and the element at
        count C{n} has type C{types[n & 1]}, a key at even counts.
        """
        fixedSizes = _BINARY_FIXED if self._binary else _COMPACT_FIXED
        keySize = fixedSizes.get(elementType)
        if valueType is None:
            self._checkSize(count, pos, keySize or 1, "container")
            if keySize is not None:
                return pos + count * keySize, None
            return pos, [_CONTAINER, count, (elementType, elementType)]
        valueSize = fixedSizes.get(valueType)
        self._checkSize(count, pos, (keySize or 1) + (valueSize or 1), "map")
        if keySize is not None and valueSize is not None:
            return pos + count * (keySize + valueSize), None
        return pos, [_CONTAINER, 2 * count, (elementType, valueType)]

    def _checkSize(self, count, pos, unit, what):
        if count < 0:
            raise BadMessageError("negative Thrift %s size %d" % (what, count))
        if pos + count * unit > self.maxMessageSize:
            raise FrameTooLargeError(
                "Thrift %s of %d elements at offset %d exceeds the %d-byte maximum" % (what, count, pos, self.maxMessageSize)
            )

    def _checkType(self, ttype):
        if ttype not in _BINARY_TYPES:
            raise BadMessageError("unknown Thrift element type %d" % (ttype,))
        return ttype

    @staticmethod
    def _elementType(compactType):
        ttype = _COMPACT_TYPES.get(compactType)
        if ttype is None:
            raise BadMessageError("unknown Thrift compact element type %d" % (compactType,))
        return ttype


def makeDecoder(transport, maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE):
    """
    @param transport: L{FRAMED} or L{BUFFERED}.
    @return: a decoder for C{transport}.
    @raise ValueError: for another transport.
    """
    if transport == FRAMED:
        return FramedDecoder(maxMessageSize)
    if transport == BUFFERED:
        return BufferedDecoder(maxMessageSize)
    raise ValueError("unknown Thrift transport %r (expected %s)" % (transport, " or ".join(TRANSPORTS)))
