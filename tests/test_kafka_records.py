"""
Tests for Kafka's RecordBatch v2 encoder and decoder, and its codecs,
against an independent encoder: kafka-python's C{DefaultRecordBatchBuilder}.
"""

import gzip
import struct

from google_crc32c import value as crc32c
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from twisted.trial.unittest import SynchronousTestCase

from txscales.kafka import KafkaEncodeError, KafkaProtocolError, UnsupportedCodecError
from txscales.kafka import _codecs
from txscales.kafka._codecs import CODECS, checkCodec, compress, decompress
from txscales.kafka._records import (
    HEADER_SIZE,
    RecordBatchBuilder,
    decodeRecordBatch,
    decodeRecordBatches,
    producerOf,
    restamp,
)

BASE = 1700000000000


def records(count=20, size=100):
    """
    @return: (timestamp, key, value, headers) of C{count} records: some
        without a key, one without a value, timestamps out of order, some
        with headers (one with a null value).
    """
    out = []
    for i in range(count):
        key = None if i % 3 == 0 else b"key-%d" % (i,)
        value = None if i == 5 else b"v" * size + b"%d" % (i,)
        headers = [("h1", b"x" * i), ("h2", None)] if i % 2 else []
        out.append((BASE + 3 * i - 5 * (i % 4), key, value, headers))
    return out


def ours(codec, items, producer=(1234, 5, 17), **kwargs):
    builder = RecordBatchBuilder(codec, **kwargs)
    for timestamp, key, value, headers in items:
        builder.append(timestamp, key, value, headers)
    # kafka-python sends partitionLeaderEpoch 0 where the Java client sends -1.
    return builder.build(*producer, partitionLeaderEpoch=0)


def theirs(codec, items, producer=(1234, 5, 17)):
    builder = DefaultRecordBatchBuilder(2, CODECS[codec], False, *producer, 1 << 30)
    for offset, (timestamp, key, value, headers) in enumerate(items):
        builder.append(offset, timestamp, key, value, headers)
    return bytes(builder.build())


def readBack(batch):
    """
    @return: the records kafka-python's decoder reads from C{batch}.
    """
    return [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in DefaultRecordBatch(batch)]


def ourReadBack(batch):
    return [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in decodeRecordBatches(batch)[0].records]


class _ZeroTime:
    """
    A C{time} module whose clock reads 0, for gzip headers without a date.
    """

    @staticmethod
    def time():
        return 0.0


class ByteExactTests(SynchronousTestCase):
    """
    Batches are byte-exact with kafka-python's for the same records,
    timestamps and producer state.
    """

    def test_uncompressed(self):
        """
        An uncompressed batch equals kafka-python's, idempotent or not.
        """
        for producer in ((1234, 5, 17), (-1, -1, -1), (2**62, 32767, 2**31 - 1)):
            self.assertEqual(ours("none", records(), producer).hex(), theirs("none", records(), producer).hex())

    def test_producerOf(self):
        """
        L{producerOf} reads the producer id and epoch of kafka-python's
        batches.
        """
        for producer in ((1234, 5, 17), (-1, -1, -1), (2**62, 32767, 2**31 - 1)):
            self.assertEqual(producerOf(theirs("gzip", records(3), producer)), producer[:2])

    def test_restamp(self):
        """
        L{restamp} turns a batch encoded under one producer state into
        kafka-python's batch of the same records under another, compressed
        or not.
        """
        for codec in ("none", "gzip"):
            self.patch(gzip, "time", _ZeroTime)
            encoded = theirs(codec, records(3), (1234, 5, 17))
            for producer in ((1234, 6, 0), (-1, -1, -1), (2**62, 32767, 2**31 - 1)):
                self.assertEqual(restamp(encoded, *producer).hex(), theirs(codec, records(3), producer).hex())

    def test_gzip(self):
        """
        A gzip batch equals kafka-python's at its level, 9, once both gzip
        headers carry no date.
        """
        self.patch(gzip, "time", _ZeroTime)
        self.assertEqual(ours("gzip", records(), compressionLevel=9).hex(), theirs("gzip", records()).hex())

    def test_snappy(self):
        """
        A snappy batch equals kafka-python's: the xerial framing with 32 KiB
        blocks, over several blocks.
        """
        items = records(400, 300)
        self.assertEqual(ours("snappy", items).hex(), theirs("snappy", items).hex())

    def test_varintBoundaries(self):
        """
        Timestamp deltas and lengths at every varint width boundary, negative
        ones included, encode as kafka-python encodes them.
        """
        deltas = [0, -1, 63, -64, 64, -65, 8191, -8192, 8192, -8193, 10**9, -BASE, 2**40]
        sizes = [0, 63, 64, 8191, 8192, 70000]
        items = [(BASE + delta, None, bytes(sizes[i % len(sizes)]), []) for i, delta in enumerate(deltas)]
        self.assertEqual(ours("none", items).hex(), theirs("none", items).hex())
        self.assertEqual([r[1:4] for r in ourReadBack(ours("none", items))], [i[:3] for i in items])

    def test_oneRecord(self):
        """
        A batch of one record, no key and no headers, equals kafka-python's.
        """
        items = [(BASE, None, b"", [])]
        self.assertEqual(ours("none", items).hex(), theirs("none", items).hex())

    def test_golden(self):
        """
        A one-record batch has the exact bytes of DefaultRecordBatch's
        layout, the CRC-32C included.
        """
        builder = RecordBatchBuilder()
        builder.append(BASE, b"k", b"v", [("h", b"x")])
        expected = bytes.fromhex(
            "0000000000000000"  # baseOffset
            "0000003e"  # batchLength: 62 bytes from the leader epoch on
            "ffffffff"  # partitionLeaderEpoch, -1 as the Java client sends
            "02"  # magic
            "5e93538d"  # CRC-32C of attributes..end
            "0000"  # attributes
            "00000000"  # lastOffsetDelta
            "0000018bcfe56800"  # baseTimestamp
            "0000018bcfe56800"  # maxTimestamp
            "ffffffffffffffff" "ffff" "ffffffff"  # producer id, epoch, base sequence
            "00000001"  # records
            "18"  # record length 12 (zigzag)
            "00" "00" "00"  # attributes, timestamp delta, offset delta
            "02" "6b" "02" "76"  # key "k", value "v"
            "02" "02" "68" "02" "78"  # one header, "h" = "x"
        )
        self.assertEqual(builder.build().hex(), expected.hex())


class ReadBackTests(SynchronousTestCase):
    """
    What the builder writes, with every codec, reads back exactly through
    kafka-python's decoder and txscales' own.
    """

    def test_everyCodec(self):
        """
        Keys, values, headers and timestamps read back for each codec.
        """
        items = records(300)
        expected = [(i, t, k, v, h) for i, (t, k, v, h) in enumerate(items)]
        for codec in CODECS:
            batch = ours(codec, items)
            self.assertEqual(readBack(batch), expected, codec)
            self.assertEqual(ourReadBack(batch), expected, codec)
            self.assertEqual(decodeRecordBatches(batch)[0].codec, CODECS[codec])

    def test_theirBatchesDecode(self):
        """
        Batches kafka-python builds decode with txscales' decoder.
        """
        items = records(50)
        expected = [(i, t, k, v, h) for i, (t, k, v, h) in enumerate(items)]
        for codec in CODECS:
            self.assertEqual(ourReadBack(theirs(codec, items)), expected, codec)

    def test_header(self):
        """
        The decoded header has the builder's producer state, the first and
        largest timestamps and the last offset delta.
        """
        items = records()
        batch, end = decodeRecordBatch(ours("none", items, (7, 2, 100)))
        self.assertEqual(
            (batch.producerId, batch.producerEpoch, batch.baseSequence, batch.lastOffsetDelta),
            (7, 2, 100, len(items) - 1),
        )
        self.assertEqual((batch.baseTimestamp, batch.maxTimestamp), (items[0][0], max(t for t, *_ in items)))
        self.assertFalse(batch.isTransactional)
        self.assertFalse(batch.isControl)

    def test_transactional(self):
        """
        A transactional batch sets the attribute's bit.
        """
        builder = RecordBatchBuilder(transactional=True)
        builder.append(BASE, None, b"x")
        self.assertTrue(decodeRecordBatch(builder.build(1, 0, 0))[0].isTransactional)

    def test_sizes(self):
        """
        The builder counts what it holds: the header and each record's
        encoded size.
        """
        builder = RecordBatchBuilder()
        self.assertEqual(builder.sizeInBytes(), HEADER_SIZE)
        size = builder.append(BASE, b"k", b"v", [("h", b"x")])
        self.assertEqual(size, 13)
        self.assertEqual(len(builder.build()), builder.sizeInBytes())

    def test_emptyBatch(self):
        """
        A batch without records is refused.
        """
        self.assertRaises(KafkaEncodeError, RecordBatchBuilder().build)


class DecoderBoundsTests(SynchronousTestCase):
    """
    The decoder refuses corrupt or oversized batches with
    L{KafkaProtocolError} before it allocates for them.
    """

    def setUp(self):
        self.batch = ours("none", records())

    def test_truncated(self):
        """
        A batch cut short anywhere is refused.
        """
        for end in range(len(self.batch)):
            self.assertRaises(KafkaProtocolError, decodeRecordBatch, self.batch[:end])

    def test_everyByteFlipped(self):
        """
        Any byte changed in the batch length, the magic, the CRC or what it
        covers is caught (the base offset and leader epoch, which the broker
        rewrites, are not covered).
        """
        for position in [8, 9, 10, 11] + list(range(16, len(self.batch))):
            mutated = bytearray(self.batch)
            mutated[position] ^= 0x40
            self.assertRaises(KafkaProtocolError, decodeRecordBatch, bytes(mutated))

    def test_oversizedLength(self):
        """
        A batch length over the bound is refused from the header.
        """
        mutated = bytearray(self.batch)
        struct.pack_into(">i", mutated, 8, 0x7FFFFFF0)
        error = self.assertRaises(KafkaProtocolError, decodeRecordBatch, bytes(mutated))
        self.assertIn("at most", str(error))
        self.assertRaises(KafkaProtocolError, decodeRecordBatch, self.batch, 0, len(self.batch) - 1)

    def test_recordCountBeyondBytes(self):
        """
        A record count that the records cannot hold is refused before any
        record is decoded, even with a valid CRC.
        """
        builder = RecordBatchBuilder()
        builder.append(BASE, None, b"x")
        batch = bytearray(builder.build())
        struct.pack_into(">i", batch, HEADER_SIZE - 4, 0x7FFFFFFF)
        struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
        error = self.assertRaises(KafkaProtocolError, decodeRecordBatch, bytes(batch))
        self.assertIn("records in", str(error))

    def test_decompressionBomb(self):
        """
        Records that decompress beyond the bound are refused as soon as the
        output passes it.
        """
        builder = RecordBatchBuilder("gzip")
        builder.append(BASE, None, bytes(1 << 20))
        batch = builder.build()
        self.assertLess(len(batch), 4096)
        for codec in CODECS:
            if codec == "none":
                continue
            self.assertRaises(KafkaProtocolError, decompress, CODECS[codec], compress(CODECS[codec], bytes(5000)),
                              4999)
            self.assertEqual(decompress(CODECS[codec], compress(CODECS[codec], bytes(5000)), 5000), bytes(5000))
        error = self.assertRaises(KafkaProtocolError, decodeRecordBatch, batch, 0, 1 << 16)
        self.assertIn("gzip", str(error))

    def test_badMagic(self):
        """
        A batch whose magic is not 2 is refused.
        """
        mutated = bytearray(self.batch)
        mutated[16] = 1
        self.assertIn("magic", str(self.assertRaises(KafkaProtocolError, decodeRecordBatch, bytes(mutated))))

    def test_corruptCompressed(self):
        """
        Garbage under a codec raises L{KafkaProtocolError}.
        """
        for codec in ("gzip", "snappy", "lz4", "zstd"):
            self.assertRaises(KafkaProtocolError, decompress, CODECS[codec], b"\x82SNAPPY\x00garbage-garbage", 100)


class CodecTests(SynchronousTestCase):
    """
    Codecs are checked when asked for, and a missing library is a typed
    error.
    """

    def test_known(self):
        """
        Every codec Kafka defines is accepted, with its number.
        """
        self.assertEqual({name: checkCodec(name) for name in CODECS}, CODECS)

    def test_unknown(self):
        """
        A name Kafka does not define is refused.
        """
        error = self.assertRaises(UnsupportedCodecError, checkCodec, "brotli")
        self.assertEqual(error.codec, "brotli")
        self.assertFalse(error.mayHaveReachedServer)
        self.assertRaises(UnsupportedCodecError, RecordBatchBuilder, "brotli")

    def test_missingLibrary(self):
        """
        A codec whose library cannot be imported is refused when asked for,
        naming the extra to install.
        """

        def missing(name):
            raise ImportError(name)

        self.patch(_codecs, "import_module", missing)
        for codec in ("snappy", "lz4", "zstd"):
            error = self.assertRaises(UnsupportedCodecError, checkCodec, codec)
            self.assertIn("kafka-codecs", str(error))
            self.assertRaises(UnsupportedCodecError, RecordBatchBuilder, codec)
        self.assertEqual(checkCodec("gzip"), 1)
        self.assertEqual(checkCodec("none"), 0)

    def test_javaFraming(self):
        """
        The framings are those the Java client writes: gzip without a date,
        xerial snappy, LZ4 frames of independent 64 KiB blocks without
        content size.
        """
        data = b"abc" * 50000
        gz = compress(1, data)
        self.assertEqual(gz[:10], bytes.fromhex("1f8b08000000000000ff"))
        snappy = compress(2, data)
        self.assertEqual(snappy[:16], b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01")
        lz4 = compress(3, data)
        # Magic, then FLG: version 01, independent blocks, no checksums,
        # no content size; BD: 64 KiB blocks.
        self.assertEqual(lz4[:6], bytes.fromhex("04224d18") + bytes([0x60, 0x40]))
        for codec in (1, 2, 3, 4):
            self.assertEqual(decompress(codec, compress(codec, data), len(data)), data)


class FuzzTests(SynchronousTestCase):
    """
    Any bytes decode as batches or raise L{KafkaProtocolError}.
    """

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(sorted(CODECS)), st.integers(0, 3000), st.integers(0, 255), st.booleans())
    def test_mutatedBatches(self, codec, position, value, fixCrc):
        """
        A batch with one byte changed, its CRC made right again or not,
        decodes or raises L{KafkaProtocolError}, whatever its codec.
        """
        data = bytearray(ours(codec, records(8)))
        data[position % len(data)] = value
        if fixCrc:
            struct.pack_into(">I", data, 17, crc32c(bytes(data[21:])))
        try:
            decodeRecordBatches(bytes(data))
        except KafkaProtocolError:
            pass

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from([1, 2, 3, 4]), st.binary(max_size=200))
    def test_randomCompressed(self, codec, data):
        """
        Random bytes under any codec decompress or raise
        L{KafkaProtocolError}.
        """
        try:
            decompress(codec, data, 1 << 16)
        except KafkaProtocolError:
            pass


recordStrategy = st.tuples(
    st.integers(0, 2**45),
    st.none() | st.binary(max_size=80),
    st.none() | st.binary(max_size=300),
    st.lists(st.tuples(st.text(max_size=10), st.none() | st.binary(max_size=20)), max_size=3),
)
"""A record: timestamp, key, value, headers."""


class PropertyTests(SynchronousTestCase):
    """
    Any records encode as kafka-python encodes them, and read back.
    """

    @settings(max_examples=200, deadline=None)
    @given(st.lists(recordStrategy, min_size=1, max_size=20), st.integers(-1, 2**40), st.integers(-1, 32767),
           st.integers(-1, 2**31 - 1))
    def test_byteExact(self, items, producerId, epoch, sequence):
        """
        Any records and producer state give kafka-python's bytes, and
        decode back to themselves.
        """
        producer = (producerId, epoch, sequence)
        batch = ours("none", items, producer)
        self.assertEqual(batch.hex(), theirs("none", items, producer).hex())
        expected = [(i, t, k, v, h) for i, (t, k, v, h) in enumerate(items)]
        self.assertEqual(ourReadBack(batch), expected)
