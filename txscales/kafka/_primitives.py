"""
Kafka's primitive types, sans-IO: fixed-width integers, varints, strings,
bytes, arrays and tagged fields, in their classic and compact ("flexible
version") forms.  Plain Python, no Twisted.

Encoders are functions that return bytes.  L{Reader} decodes from a buffer
and checks every length against what remains of it, and against a bound,
before it allocates anything.
"""

import uuid as _uuid
from struct import Struct, error as StructError
from typing import Callable, Dict, Iterable, List, Optional, TypeVar

from txscales.kafka._errors import KafkaEncodeError, KafkaProtocolError

T = TypeVar("T")

_int8 = Struct(">b")
_int16 = Struct(">h")
_int32 = Struct(">i")
_int64 = Struct(">q")

# The largest string, bytes or array a reader accepts unless told otherwise:
# nothing in a response a producer reads comes near it.
DEFAULT_MAX_LENGTH = 64 * 1024 * 1024


def int8(value: int) -> bytes:
    """
    @return: C{value} as a signed byte.
    """
    return _pack(_int8, value)


def int16(value: int) -> bytes:
    """
    @return: C{value} as a big-endian signed 16-bit integer.
    """
    return _pack(_int16, value)


def int32(value: int) -> bytes:
    """
    @return: C{value} as a big-endian signed 32-bit integer.
    """
    return _pack(_int32, value)


def int64(value: int) -> bytes:
    """
    @return: C{value} as a big-endian signed 64-bit integer.
    """
    return _pack(_int64, value)


def boolean(value: bool) -> bytes:
    """
    @return: C{value} as one byte, 1 or 0.
    """
    return b"\x01" if value else b"\x00"


def _pack(struct: Struct, value: int) -> bytes:
    try:
        return struct.pack(value)
    except StructError:
        raise KafkaEncodeError("%r does not fit %s" % (value, struct.format)) from None


def uvarint(value: int) -> bytes:
    """
    @param value: 0 to 2**64 - 1.
    @return: C{value} as an unsigned varint (7 bits a byte, low first).
    """
    if not 0 <= value < 1 << 64:
        raise KafkaEncodeError("%r does not fit an unsigned varint" % (value,))
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varint(value: int) -> bytes:
    """
    @param value: a signed 32-bit integer.
    @return: C{value} zigzag-encoded as a varint.
    """
    if not -(1 << 31) <= value < 1 << 31:
        raise KafkaEncodeError("%r does not fit a varint" % (value,))
    return uvarint(((value << 1) ^ (value >> 31)) & 0xFFFFFFFF)


def varlong(value: int) -> bytes:
    """
    @param value: a signed 64-bit integer.
    @return: C{value} zigzag-encoded as a varlong.
    """
    if not -(1 << 63) <= value < 1 << 63:
        raise KafkaEncodeError("%r does not fit a varlong" % (value,))
    return uvarint(((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF)


def string(value: str, compact: bool = False) -> bytes:
    """
    @param compact: use the flexible versions' form (unsigned varint length
        plus one) instead of an int16 length.
    @return: C{value} as a UTF-8 string with its length.
    """
    data = value.encode("utf-8")
    if compact:
        return uvarint(len(data) + 1) + data
    if len(data) > 0x7FFF:
        raise KafkaEncodeError("string of %d bytes is over 32767" % (len(data),))
    return _int16.pack(len(data)) + data


def nullableString(value: Optional[str], compact: bool = False) -> bytes:
    """
    @return: C{value} as L{string} does, or null (length -1, compact 0).
    """
    if value is None:
        return b"\x00" if compact else b"\xff\xff"
    return string(value, compact)


def bytesField(value: Optional[bytes], compact: bool = False) -> bytes:
    """
    @param value: the bytes, or None for null.
    @param compact: use the flexible versions' form (unsigned varint length
        plus one, 0 for null) instead of an int32 length (-1 for null).
    @return: C{value} with its length.
    """
    if value is None:
        return b"\x00" if compact else b"\xff\xff\xff\xff"
    if compact:
        return uvarint(len(value) + 1) + value
    return _int32.pack(len(value)) + value


def arrayLength(count: Optional[int], compact: bool = False) -> bytes:
    """
    @param count: the number of elements, or None for a null array.
    @return: the length that starts an array of C{count} elements.
    """
    if count is None:
        return b"\x00" if compact else b"\xff\xff\xff\xff"
    return uvarint(count + 1) if compact else _int32.pack(count)


def array(items: Iterable[T], encode: Callable[[T], bytes], compact: bool = False) -> bytes:
    """
    @param items: the elements.
    @param encode: encodes one element.
    @return: the array: its length and its encoded elements.
    """
    parts = [encode(item) for item in items]
    return arrayLength(len(parts), compact) + b"".join(parts)


def taggedFields(fields: Optional[Dict[int, bytes]] = None) -> bytes:
    """
    @param fields: tag -> the field's encoded value; None or empty for none.
    @return: a flexible version's tagged-field section, tags ascending.
    """
    if not fields:
        return b"\x00"
    out = [uvarint(len(fields))]
    for tag in sorted(fields):
        value = fields[tag]
        out.append(uvarint(tag) + uvarint(len(value)) + value)
    return b"".join(out)


class Reader:
    """
    Decode Kafka primitives from a buffer, bounded.

    Every read checks that its bytes are there; every length is checked
    against what remains and against C{maxLength} before anything of that
    size is built.  A failed check raises L{KafkaProtocolError}.

    @ivar data: the buffer.
    @ivar offset: where the next read starts.
    @ivar end: where the readable part of the buffer ends.
    @ivar maxLength: the largest string, bytes or array count accepted.
    """

    def __init__(
        self, data: bytes, offset: int = 0, end: Optional[int] = None, maxLength: int = DEFAULT_MAX_LENGTH
    ) -> None:
        """
        @param data: the buffer.
        @param offset: where reading starts.
        @param end: where reading must stop; the buffer's end when None.
        @param maxLength: the largest length accepted.
        """
        self.data = data
        self.offset = offset
        self.end = len(data) if end is None else end
        self.maxLength = maxLength

    def remaining(self) -> int:
        """
        @return: how many bytes are left to read.
        """
        return self.end - self.offset

    def expectEnd(self, what: str = "message") -> None:
        """
        @raise KafkaProtocolError: if bytes are left.
        """
        if self.offset != self.end:
            raise KafkaProtocolError("%d bytes after the end of the %s" % (self.end - self.offset, what))

    def _take(self, size: int) -> int:
        """
        Advance over C{size} bytes.

        @return: where they start.
        """
        start = self.offset
        if size > self.end - start:
            raise KafkaProtocolError("need %d bytes at offset %d, %d left" % (size, start, self.end - start))
        self.offset = start + size
        return start

    def _fixed(self, struct: Struct) -> int:
        start = self._take(struct.size)
        value: int = struct.unpack_from(self.data, start)[0]
        return value

    def int8(self) -> int:
        """
        @return: a signed byte.
        """
        return self._fixed(_int8)

    def int16(self) -> int:
        """
        @return: a big-endian signed 16-bit integer.
        """
        return self._fixed(_int16)

    def int32(self) -> int:
        """
        @return: a big-endian signed 32-bit integer.
        """
        return self._fixed(_int32)

    def int64(self) -> int:
        """
        @return: a big-endian signed 64-bit integer.
        """
        return self._fixed(_int64)

    def boolean(self) -> bool:
        """
        @return: a boolean byte (any non-zero value is true).
        """
        return self._fixed(_int8) != 0

    def uuid(self) -> _uuid.UUID:
        """
        @return: a 16-byte UUID.
        """
        start = self._take(16)
        return _uuid.UUID(bytes=bytes(self.data[start : start + 16]))

    def uvarint(self, maxBytes: int = 5) -> int:
        """
        @param maxBytes: the most bytes the varint may take (5 for 32 bits,
            10 for 64).
        @return: an unsigned varint.
        """
        data = self.data
        offset = self.offset
        if offset < self.end and data[offset] < 0x80:
            # One byte, as most lengths and counts are.
            self.offset = offset + 1
            return data[offset]
        value = 0
        shift = 0
        for i in range(maxBytes):
            if self.offset >= self.end:
                raise KafkaProtocolError("varint runs past the end at offset %d" % (self.offset,))
            byte = data[self.offset]
            self.offset += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise KafkaProtocolError("varint longer than %d bytes at offset %d" % (maxBytes, self.offset))

    def varint(self) -> int:
        """
        @return: a zigzag-encoded signed 32-bit varint.
        """
        raw = self.uvarint(5)
        if raw > 0xFFFFFFFF:
            raise KafkaProtocolError("varint %d does not fit 32 bits" % (raw,))
        return (raw >> 1) ^ -(raw & 1)

    def varlong(self) -> int:
        """
        @return: a zigzag-encoded signed 64-bit varlong.
        """
        raw = self.uvarint(10)
        if raw > 0xFFFFFFFFFFFFFFFF:
            raise KafkaProtocolError("varlong %d does not fit 64 bits" % (raw,))
        return (raw >> 1) ^ -(raw & 1)

    def _length(self, compact: bool, wide: bool) -> int:
        """
        Read a length: compact (varint, plus one) or int16/int32.

        @return: the length, -1 for null.
        """
        if compact:
            length = self.uvarint() - 1
        elif wide:
            length = self._fixed(_int32)
        else:
            length = self._fixed(_int16)
        if length < -1:
            raise KafkaProtocolError("negative length %d" % (length,))
        if length > self.maxLength:
            raise KafkaProtocolError("length %d is over the bound of %d" % (length, self.maxLength))
        return length

    def _blob(self, length: int) -> bytes:
        start = self._take(length)
        return bytes(self.data[start : start + length])

    def nullableString(self, compact: bool = False) -> Optional[str]:
        """
        @param compact: read the flexible versions' form.
        @return: a string, or None for null.
        """
        length = self._length(compact, False)
        if length < 0:
            return None
        try:
            return self._blob(length).decode("utf-8")
        except UnicodeDecodeError:
            raise KafkaProtocolError("string at offset %d is not UTF-8" % (self.offset - length,)) from None

    def string(self, compact: bool = False) -> str:
        """
        @param compact: read the flexible versions' form.
        @return: a non-null string.
        """
        value = self.nullableString(compact)
        if value is None:
            raise KafkaProtocolError("null where a string is required")
        return value

    def nullableBytes(self, compact: bool = False) -> Optional[bytes]:
        """
        @param compact: read the flexible versions' form.
        @return: bytes, or None for null.
        """
        length = self._length(compact, True)
        if length < 0:
            return None
        return self._blob(length)

    def bytesField(self, compact: bool = False) -> bytes:
        """
        @param compact: read the flexible versions' form.
        @return: non-null bytes.
        """
        value = self.nullableBytes(compact)
        if value is None:
            raise KafkaProtocolError("null where bytes are required")
        return value

    def arrayLength(self, compact: bool = False, minItemSize: int = 1) -> int:
        """
        Read the length of an array, and check its elements can fit in what
        remains.

        @param compact: read the flexible versions' form.
        @param minItemSize: the fewest bytes one element takes.
        @return: the number of elements; -1 for a null array.
        """
        count = self._length(compact, True)
        if count * minItemSize > self.end - self.offset:
            raise KafkaProtocolError(
                "array of %d elements cannot fit in the %d bytes left" % (count, self.end - self.offset)
            )
        return count

    def array(self, decode: Callable[["Reader"], T], compact: bool = False, minItemSize: int = 1) -> List[T]:
        """
        @param decode: reads one element.
        @return: the elements of a non-null array.
        """
        count = self.arrayLength(compact, minItemSize)
        if count < 0:
            raise KafkaProtocolError("null where an array is required")
        return [decode(self) for _ in range(count)]

    def int32Array(self, compact: bool = False) -> List[int]:
        """
        @return: the elements of a non-null array of int32.
        """
        return self.array(Reader.int32, compact, 4)

    def taggedFields(self) -> Dict[int, bytes]:
        """
        Read a flexible version's tagged-field section.

        @return: tag -> the field's raw value.
        """
        count = self.uvarint()
        if count * 2 > self.end - self.offset:
            raise KafkaProtocolError("%d tagged fields cannot fit in %d bytes" % (count, self.end - self.offset))
        fields: Dict[int, bytes] = {}
        previous = -1
        for _ in range(count):
            tag = self.uvarint()
            if tag <= previous:
                raise KafkaProtocolError("tagged field %d after %d" % (tag, previous))
            previous = tag
            size = self.uvarint()
            if size > self.maxLength:
                raise KafkaProtocolError("tagged field of %d bytes is over the bound" % (size,))
            fields[tag] = self._blob(size)
        return fields
