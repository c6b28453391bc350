"""
The compression codecs of Kafka's RecordBatch: gzip from the standard
library; snappy (xerial framing, as the Java client writes it), lz4 (the LZ4
frame format) and zstd from optional libraries (C{pip install
txscales[kafka-codecs]}).  Plain Python, no Twisted.

Decompression is bounded: it stops, with L{KafkaProtocolError}, as soon as
the output would pass the bound it is given.
"""

import struct
import zlib
from importlib import import_module
from types import ModuleType
from typing import Callable, Dict, Optional

from txscales.kafka._errors import KafkaProtocolError, UnsupportedCodecError

# A RecordBatch's attributes name its codec by these numbers.
CODECS: Dict[str, int] = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
CODEC_NAMES: Dict[int, str] = {number: name for name, number in CODECS.items()}

# The library each optional codec needs, as pip and import name it.
_LIBRARIES: Dict[str, str] = {"snappy": "cramjam", "lz4": "lz4.frame", "zstd": "zstandard"}

# The xerial snappy stream: magic, version 1, compatible version 1, then
# blocks of at most 32 KiB uncompressed, each behind its big-endian int32
# compressed length (SnappyOutputStream's defaults, which the Java client uses).
_XERIAL_HEADER = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024

# The gzip header the Java client's GZIPOutputStream writes: deflate, no
# flags, no modification time; the operating system "unknown".
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00"


def _library(codec: str) -> ModuleType:
    """
    @return: the module an optional codec needs.
    @raise UnsupportedCodecError: if it is not installed.
    """
    try:
        return import_module(_LIBRARIES[codec])
    except ImportError:
        raise UnsupportedCodecError(
            codec, "needs %s (pip install txscales[kafka-codecs])" % (_LIBRARIES[codec].split(".")[0],)
        ) from None


def checkCodec(name: str) -> int:
    """
    Check that a codec can be used.

    @param name: C{"none"}, C{"gzip"}, C{"snappy"}, C{"lz4"} or C{"zstd"}.
    @return: the codec's number in a RecordBatch's attributes.
    @raise UnsupportedCodecError: for another name, or a codec whose library
        is not installed.
    """
    if name not in CODECS:
        raise UnsupportedCodecError(name, "Kafka has no such codec (%s)" % (", ".join(sorted(CODECS)),))
    if name in _LIBRARIES:
        _library(name)
    return CODECS[name]


def _gzip(data: bytes, level: Optional[int]) -> bytes:
    level = 6 if level is None else level
    deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, 0)
    # The extra flags say "best" for level 9 and "fastest" for level 1, as
    # Python's GzipFile writes them.
    extra = b"\x02" if level == 9 else b"\x04" if level == 1 else b"\x00"
    return b"".join(
        (
            _GZIP_HEADER,
            extra,
            b"\xff",
            deflate.compress(data),
            deflate.flush(),
            struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF),
        )
    )


def _ungzip(data: bytes, limit: int) -> bytes:
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflate.decompress(data, limit + 1)
    except zlib.error as e:
        raise KafkaProtocolError("gzip: %s" % (e,)) from None
    _checkLimit("gzip", len(out), limit)
    if not inflate.eof:
        raise KafkaProtocolError("gzip: truncated stream")
    return out


def _snappy(data: bytes, level: Optional[int]) -> bytes:
    snappy = _library("snappy").snappy
    parts = [_XERIAL_HEADER]
    for start in range(0, len(data), _XERIAL_BLOCK):
        block = bytes(snappy.compress_raw(data[start : start + _XERIAL_BLOCK]))
        parts.append(struct.pack(">i", len(block)))
        parts.append(block)
    return b"".join(parts)


def _unsnappy(data: bytes, limit: int) -> bytes:
    cramjam = _library("snappy")
    snappy = cramjam.snappy
    try:
        if not data.startswith(_XERIAL_HEADER[:8]):
            _checkLimit("snappy", snappy.decompress_raw_len(data), limit)
            return bytes(snappy.decompress_raw(data))
        out = []
        total = 0
        offset = len(_XERIAL_HEADER)
        while offset < len(data):
            if len(data) - offset < 4:
                raise KafkaProtocolError("snappy: truncated block length")
            (size,) = struct.unpack_from(">i", data, offset)
            offset += 4
            if not 0 <= size <= len(data) - offset:
                raise KafkaProtocolError("snappy: block of %d bytes, %d left" % (size, len(data) - offset))
            block = data[offset : offset + size]
            offset += size
            total += snappy.decompress_raw_len(block)
            _checkLimit("snappy", total, limit)
            out.append(bytes(snappy.decompress_raw(block)))
        return b"".join(out)
    except cramjam.DecompressionError as e:
        raise KafkaProtocolError("snappy: %s" % (e,)) from None


def _lz4(data: bytes, level: Optional[int]) -> bytes:
    frame = _library("lz4")
    # The Java client's frames: 64 KiB independent blocks, no block or
    # content checksum, no content size.
    result: bytes = frame.compress(
        data,
        compression_level=level or 0,
        block_size=frame.BLOCKSIZE_MAX64KB,
        block_linked=False,
        content_checksum=False,
        store_size=False,
    )
    return result


def _unlz4(data: bytes, limit: int) -> bytes:
    frame = _library("lz4")
    decompressor = frame.LZ4FrameDecompressor()
    try:
        out: bytes = decompressor.decompress(data, max_length=limit + 1)
    except RuntimeError as e:
        raise KafkaProtocolError("lz4: %s" % (e,)) from None
    _checkLimit("lz4", len(out), limit)
    if not decompressor.eof:
        raise KafkaProtocolError("lz4: truncated frame")
    return out


def _zstd(data: bytes, level: Optional[int]) -> bytes:
    zstandard = _library("zstd")
    result: bytes = zstandard.ZstdCompressor(level=3 if level is None else level).compress(data)
    return result


def _unzstd(data: bytes, limit: int) -> bytes:
    zstandard = _library("zstd")
    try:
        with zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True) as reader:
            out: bytes = reader.read(limit + 1)
            _checkLimit("zstd", len(out), limit)
            return out
    except zstandard.ZstdError as e:
        raise KafkaProtocolError("zstd: %s" % (e,)) from None


def _checkLimit(codec: str, size: int, limit: int) -> None:
    if size > limit:
        raise KafkaProtocolError("%s: decompresses to more than %d bytes" % (codec, limit))


_COMPRESS: Dict[int, Callable[[bytes, Optional[int]], bytes]] = {1: _gzip, 2: _snappy, 3: _lz4, 4: _zstd}
_DECOMPRESS: Dict[int, Callable[[bytes, int], bytes]] = {1: _ungzip, 2: _unsnappy, 3: _unlz4, 4: _unzstd}


def compress(codec: int, data: bytes, level: Optional[int] = None) -> bytes:
    """
    @param codec: a codec's number (not 0).
    @param level: the compression level; the codec's default when None.
    @return: C{data} compressed as Kafka expects it.
    @raise UnsupportedCodecError: if the codec's library is not installed.
    """
    return _COMPRESS[codec](data, level)


def decompress(codec: int, data: bytes, limit: int) -> bytes:
    """
    @param codec: a codec's number (not 0).
    @param limit: the most bytes the output may have.
    @return: C{data} decompressed.
    @raise KafkaProtocolError: if C{data} is not valid for the codec, or
        decompresses to more than C{limit} bytes.
    @raise UnsupportedCodecError: if the codec's library is not installed.
    """
    if codec not in _DECOMPRESS:
        raise KafkaProtocolError("unknown compression codec %d" % (codec,))
    return _DECOMPRESS[codec](data, limit)
