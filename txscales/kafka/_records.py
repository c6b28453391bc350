"""
Kafka's RecordBatch v2 (magic 2), sans-IO: a builder that encodes records
into a batch, and a bounded decoder.  Plain Python, no Twisted.

The layout is that of Apache Kafka's C{DefaultRecordBatch} and
C{DefaultRecord}: a 61-byte header (base offset, batch length, partition
leader epoch, magic, CRC-32C, attributes, last offset delta, base and max
timestamps, producer id, epoch and base sequence, record count), then the
records, compressed as a whole when the batch has a codec.  The CRC-32C
covers everything from the attributes to the end, and comes from the C
implementation of C{google-crc32c}.
"""

from dataclasses import dataclass, field
from struct import Struct
from typing import List, Optional, Sequence, Tuple, Union

from google_crc32c import value as crc32c

from txscales.kafka._codecs import checkCodec, compress, decompress
from txscales.kafka._errors import KafkaEncodeError, KafkaProtocolError
from txscales.kafka._primitives import Reader, varlong

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc
_PREFIX = Struct(">qiibI")
# attributes, lastOffsetDelta, baseTimestamp, maxTimestamp, producerId,
# producerEpoch, baseSequence, recordCount
_AFTER_CRC = Struct(">hiqqqhii")
HEADER_SIZE = _PREFIX.size + _AFTER_CRC.size
# The batch length counts from the partition leader epoch on.
_LENGTH_OFFSET = 12

CODEC_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20

# The most a decoder accepts by default: a batch, and a batch's
# decompressed records.
DEFAULT_MAX_BATCH_SIZE = 16 * 1024 * 1024

Header = Tuple[Union[str, bytes], Optional[bytes]]


@dataclass
class Record:
    """
    One record of a batch.

    @ivar offset: the batch's base offset plus the record's offset delta.
    @ivar timestamp: the batch's base timestamp plus the record's delta.
    @ivar headers: (key, value) pairs; a value may be None.
    """

    offset: int
    timestamp: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: List[Tuple[str, Optional[bytes]]] = field(default_factory=list)


@dataclass
class RecordBatch:
    """
    A decoded RecordBatch v2.
    """

    baseOffset: int
    partitionLeaderEpoch: int
    attributes: int
    lastOffsetDelta: int
    baseTimestamp: int
    maxTimestamp: int
    producerId: int
    producerEpoch: int
    baseSequence: int
    records: List[Record]

    @property
    def codec(self) -> int:
        """
        The compression codec's number.
        """
        return self.attributes & CODEC_MASK

    @property
    def isTransactional(self) -> bool:
        """
        Whether the batch belongs to a transaction.
        """
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def isControl(self) -> bool:
        """
        Whether the batch is a control batch (a transaction marker).
        """
        return bool(self.attributes & CONTROL_MASK)


# The zigzag varints of 0..63, which most deltas and counts are.
_ONE_BYTE = [bytes((n << 1,)) for n in range(64)]


def _varint(value: int) -> bytes:
    """
    L{varint} without its range check, quick for small values: the
    record encoder's hot path.
    """
    if 0 <= value < 64:
        return _ONE_BYTE[value]
    zigzag = (value << 1) ^ (value >> 63)
    if zigzag < 0x80:
        return bytes((zigzag,))
    if zigzag < 0x4000:
        return bytes(((zigzag & 0x7F) | 0x80, zigzag >> 7))
    return varlong(value)


def _sizedBytes(value: Optional[bytes]) -> bytes:
    if value is None:
        return b"\x01"  # varint -1
    return _varint(len(value)) + value


def encodeRecord(offsetDelta: int, timestampDelta: int, key: Optional[bytes], value: Optional[bytes],
                 headers: Sequence[Header] = ()) -> bytes:
    """
    @return: one record as it appears in a batch, its varint length first.
    """
    if not (-(1 << 63) <= timestampDelta < 1 << 63 and 0 <= offsetDelta < 1 << 31):
        raise KafkaEncodeError("timestamp delta %r or offset delta %r out of range" % (timestampDelta, offsetDelta))
    parts = [b"\x00", _varint(timestampDelta), _varint(offsetDelta), _sizedBytes(key), _sizedBytes(value),
             _varint(len(headers))]
    for headerKey, headerValue in headers:
        if isinstance(headerKey, str):
            headerKey = headerKey.encode("utf-8")
        parts.append(_sizedBytes(headerKey))
        parts.append(_sizedBytes(headerValue))
    body = b"".join(parts)
    return _varint(len(body)) + body


# The zigzag varints of 0.._SMALL - 1: offset deltas, timestamp deltas and
# lengths of the usual record, found without arithmetic.
_SMALL = 4096
_VARINTS = tuple(_varint(n) for n in range(_SMALL))


class RecordBatchBuilder:
    """
    Collect records into one RecordBatch v2.

    Records are encoded once, as they are appended, into one buffer;
    L{build} compresses them and writes the header once the producer state
    is known.

    @ivar codec: the compression codec's number.
    @ivar recordCount: how many records were appended.
    @ivar baseTimestamp: the first record's timestamp.
    """

    def __init__(self, codec: str = "none", compressionLevel: Optional[int] = None,
                 transactional: bool = False) -> None:
        """
        @param codec: C{"none"}, C{"gzip"}, C{"snappy"}, C{"lz4"} or C{"zstd"}.
        @param compressionLevel: the codec's level; its default when None.
        @param transactional: mark the batch as part of a transaction.
        @raise txscales.kafka.UnsupportedCodecError: for a codec that cannot
            be used.
        """
        self.codec = checkCodec(codec)
        self.compressionLevel = compressionLevel
        self.transactional = transactional
        self.recordCount = 0
        self._records = bytearray()
        self.baseTimestamp = 0
        self._maxTimestamp = -1

    def append(self, timestamp: int, key: Optional[bytes], value: Optional[bytes],
               headers: Sequence[Header] = ()) -> int:
        """
        Add a record.

        @param timestamp: its create time, in milliseconds since the epoch.
        @return: its size in the batch, before compression.
        """
        count = self.recordCount
        if count == 0:
            self.baseTimestamp = timestamp
        delta = timestamp - self.baseTimestamp
        if timestamp > self._maxTimestamp:
            self._maxTimestamp = timestamp
        self.recordCount = count + 1
        if (not headers and 0 <= delta < _SMALL and count < _SMALL and value is not None
                and len(value) < _SMALL and (key is None or len(key) < _SMALL)):
            # The usual record, in one formatting operation.
            small = _VARINTS
            start = small[delta] + small[count]
            start += b"\x01" if key is None else small[len(key)] + key
            length = 2 + len(start) + len(small[len(value)]) + len(value)
            if length < _SMALL:
                self._records += b"%b\x00%b%b%b\x00" % (small[length], start, small[len(value)], value)
                return length + len(small[length])
        record = encodeRecord(count, delta, key, value, headers)
        self._records += record
        return len(record)

    def sizeInBytes(self) -> int:
        """
        @return: the batch's size so far, header included, before
            compression.
        """
        return HEADER_SIZE + len(self._records)

    def build(self, producerId: int = -1, producerEpoch: int = -1, baseSequence: int = -1,
              partitionLeaderEpoch: int = -1, baseOffset: int = 0) -> bytes:
        """
        @param producerId: the idempotent producer's id, -1 for none.
        @param producerEpoch: its epoch, -1 for none.
        @param baseSequence: the sequence number of the first record, -1 for
            none.
        @param partitionLeaderEpoch: the broker sets it; the Java client
            sends -1.
        @param baseOffset: the broker sets it; clients send 0.
        @return: the encoded batch.
        @raise KafkaEncodeError: for a batch without records.
        """
        if not self.recordCount:
            raise KafkaEncodeError("a RecordBatch needs at least one record")
        records: bytes = bytes(self._records)
        if self.codec:
            records = compress(self.codec, records, self.compressionLevel)
        attributes = self.codec | (TRANSACTIONAL_MASK if self.transactional else 0)
        body = _AFTER_CRC.pack(attributes, self.recordCount - 1, self.baseTimestamp, self._maxTimestamp,
                               producerId, producerEpoch, baseSequence, self.recordCount) + records
        crc = crc32c(body)
        length = len(body) + _PREFIX.size - _LENGTH_OFFSET
        return _PREFIX.pack(baseOffset, length, partitionLeaderEpoch, 2, crc) + body


def _headers(reader: Reader) -> List[Tuple[str, Optional[bytes]]]:
    count = reader.varint()
    if count < 0 or count * 2 > reader.remaining():
        raise KafkaProtocolError("%d record headers in %d bytes" % (count, reader.remaining()))
    headers = []
    for _ in range(count):
        key = _varBytes(reader)
        if key is None:
            raise KafkaProtocolError("a record header without a key")
        try:
            name = key.decode("utf-8")
        except UnicodeDecodeError:
            raise KafkaProtocolError("a record header key is not UTF-8") from None
        headers.append((name, _varBytes(reader)))
    return headers


def _varBytes(reader: Reader) -> Optional[bytes]:
    length = reader.varint()
    if length < 0:
        if length != -1:
            raise KafkaProtocolError("negative length %d" % (length,))
        return None
    if length > reader.remaining():
        raise KafkaProtocolError("%d bytes needed, %d left" % (length, reader.remaining()))
    start = reader.offset
    reader.offset += length
    return bytes(reader.data[start:reader.offset])


def _record(reader: Reader, baseOffset: int, baseTimestamp: int) -> Record:
    length = reader.varint()
    if not 0 < length <= reader.remaining():
        raise KafkaProtocolError("record of %d bytes, %d left" % (length, reader.remaining()))
    end = reader.offset + length
    outer = reader.end
    reader.end = end
    reader.int8()
    timestamp = baseTimestamp + reader.varlong()
    offset = baseOffset + reader.varint()
    key = _varBytes(reader)
    value = _varBytes(reader)
    headers = _headers(reader)
    reader.expectEnd("record")
    reader.end = outer
    return Record(offset, timestamp, key, value, headers)


_PRODUCER = Struct(">qh")


def producerOf(batch: bytes) -> Tuple[int, int]:
    """
    @param batch: an encoded RecordBatch v2.
    @return: the producer id and epoch in its header.
    """
    producerId, epoch = _PRODUCER.unpack_from(batch, _PREFIX.size + 22)
    return producerId, epoch


_STAMP = Struct(">qhi")


def restamp(batch: bytes, producerId: int, producerEpoch: int, baseSequence: int) -> bytes:
    """
    Give an encoded RecordBatch v2 another producer id, epoch and base
    sequence (an idempotent producer's retry after an epoch bump), with its
    CRC computed again; its records, compressed or not, are kept as they are.

    @param batch: an encoded RecordBatch v2.
    @return: the batch under the new producer state.
    """
    body = bytearray(memoryview(batch)[_PREFIX.size:])
    _STAMP.pack_into(body, 22, producerId, producerEpoch, baseSequence)
    baseOffset, length, leaderEpoch, magic, _ = _PREFIX.unpack_from(batch)
    return _PREFIX.pack(baseOffset, length, leaderEpoch, magic, crc32c(bytes(body))) + body


def decodeRecordBatch(data: bytes, offset: int = 0, maxBatchSize: int = DEFAULT_MAX_BATCH_SIZE
                      ) -> Tuple[RecordBatch, int]:
    """
    Decode one RecordBatch v2, checking its CRC.

    @param data: the bytes that hold it.
    @param offset: where it starts.
    @param maxBatchSize: the largest batch, and the largest decompressed
        records, accepted.
    @return: the batch, and the offset just after it.
    @raise KafkaProtocolError: for a batch that is truncated, over the
        bound, not magic 2, or whose CRC, counts or lengths are wrong.
    """
    if len(data) - offset < HEADER_SIZE:
        raise KafkaProtocolError("RecordBatch header needs %d bytes, %d left" % (HEADER_SIZE, len(data) - offset))
    baseOffset, length, leaderEpoch, magic, crc = _PREFIX.unpack_from(data, offset)
    if magic != 2:
        raise KafkaProtocolError("RecordBatch magic %d, not 2" % (magic,))
    size = length + _LENGTH_OFFSET
    if size < HEADER_SIZE or size > maxBatchSize:
        raise KafkaProtocolError("RecordBatch of %d bytes (at most %d)" % (size, maxBatchSize))
    end = offset + size
    if end > len(data):
        raise KafkaProtocolError("RecordBatch of %d bytes, %d left" % (size, len(data) - offset))
    body = bytes(data[offset + _PREFIX.size:end])
    if crc32c(body) != crc:
        raise KafkaProtocolError("RecordBatch CRC-32C mismatch")
    (attributes, lastOffsetDelta, baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence,
     count) = _AFTER_CRC.unpack_from(body, 0)
    records = body[_AFTER_CRC.size:]
    codec = attributes & CODEC_MASK
    if codec:
        records = decompress(codec, records, maxBatchSize)
    # A record takes at least 7 bytes.
    if count < 0 or count * 7 > len(records):
        raise KafkaProtocolError("%d records in %d bytes" % (count, len(records)))
    reader = Reader(records)
    decoded = [_record(reader, baseOffset, baseTimestamp) for _ in range(count)]
    reader.expectEnd("RecordBatch")
    batch = RecordBatch(baseOffset, leaderEpoch, attributes, lastOffsetDelta, baseTimestamp, maxTimestamp,
                        producerId, producerEpoch, baseSequence, decoded)
    return batch, end


def decodeRecordBatches(data: bytes, maxBatchSize: int = DEFAULT_MAX_BATCH_SIZE) -> List[RecordBatch]:
    """
    @return: every batch of C{data}, which holds whole batches only.
    @raise KafkaProtocolError: see L{decodeRecordBatch}.
    """
    batches = []
    offset = 0
    while offset < len(data):
        batch, offset = decodeRecordBatch(data, offset, maxBatchSize)
        batches.append(batch)
    return batches

