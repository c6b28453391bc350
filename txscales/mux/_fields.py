"""
The fields of Mux message bodies: plain Python, no Twisted.

Short byte strings (C{len:2 bytes}) and lists of pairs (C{count:2 (len:2
key len:2 value)*}: contexts and dtabs), read with checks that raise
L{BadMessageError} and written with checks that raise L{EncodeError}.
"""

from struct import Struct, error as StructError
from typing import List, Tuple

from txscales.errors import BadMessageError, EncodeError

MAX_SHORT = 0x7FFF

_short = Struct(">H")


def _u16(data, offset, what):
    if offset + 2 > len(data):
        raise BadMessageError("truncated %s length" % (what,))
    return _short.unpack_from(data, offset)[0]


def _readShortBytes(data, offset, what):
    """
    Read a C{len:2 bytes} field.

    @return: (the bytes, the offset after them)
    """
    n = _u16(data, offset, what)
    if n > MAX_SHORT:
        raise BadMessageError("%s length %d exceeds 32767" % (what, n))
    start = offset + 2
    end = start + n
    if end > len(data):
        raise BadMessageError("truncated %s" % (what,))
    return bytes(data[start:end]), end


def _writeShortBytes(parts, value, what):
    if len(value) > MAX_SHORT:
        raise EncodeError("%s is %d bytes; Mux allows 32767" % (what, len(value)))
    parts.append(_short.pack(len(value)))
    parts.append(value)


def _readPairs(data, offset, what):
    """
    Read a C{count:2 (len:2 key len:2 value)*} field.

    @return: (list of (key, value), the offset after them)
    """
    # The fast path: one loop, no call per field; anything unusual (short
    # data, an oversized length, a buffer that is not bytes) goes to the
    # checked path, which raises the precise error.
    if type(data) is bytes:
        try:
            n = _short.unpack_from(data, offset)[0]
            if n <= MAX_SHORT:
                size = len(data)
                pairs: List[Tuple[bytes, bytes]] = []
                append = pairs.append
                unpack = _short.unpack_from
                pos = offset + 2
                for _ in range(n):
                    length = unpack(data, pos)[0]
                    end = pos + 2 + length
                    if length > MAX_SHORT or end + 2 > size:
                        break
                    length = unpack(data, end)[0]
                    after = end + 2 + length
                    if length > MAX_SHORT or after > size:
                        break
                    append((data[pos + 2 : end], data[end + 2 : after]))
                    pos = after
                else:
                    return pairs, pos
        except StructError:
            pass
    return _readPairsChecked(data, offset, what)


def _readPairsChecked(data, offset, what):
    n = _u16(data, offset, what + " count")
    if n > MAX_SHORT:
        raise BadMessageError("%s count %d exceeds 32767" % (what, n))
    offset += 2
    pairs = []
    for _ in range(n):
        k, offset = _readShortBytes(data, offset, what + " key")
        v, offset = _readShortBytes(data, offset, what + " value")
        pairs.append((k, v))
    return pairs, offset


def _writePairs(parts, pairs, what):
    if len(pairs) > MAX_SHORT:
        raise EncodeError("%d %s entries; Mux allows 32767" % (len(pairs), what))
    pack = _short.pack
    parts.append(pack(len(pairs)))
    for k, v in pairs:
        nk, nv = len(k), len(v)
        if nk > MAX_SHORT:
            raise EncodeError("%s key is %d bytes; Mux allows 32767" % (what, nk))
        if nv > MAX_SHORT:
            raise EncodeError("%s value is %d bytes; Mux allows 32767" % (what, nv))
        parts += (pack(nk), k, pack(nv), v)


def _text(value):
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)
