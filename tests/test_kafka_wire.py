"""
Tests for Kafka's sans-IO wire code: primitives, request and response
messages, version choice and error codes.  The byte tables follow the
schemas of Apache Kafka's C{common/message/*.json}; kafka-python's encoder,
generated from the same schemas, checks every version besides.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.protocol.metadata import ApiVersionsRequest as KApiVersionsRequest
from kafka.protocol.metadata import ApiVersionsResponse as KApiVersionsResponse
from kafka.protocol.metadata import MetadataRequest as KMetadataRequest
from kafka.protocol.metadata import MetadataResponse as KMetadataResponse
from kafka.protocol.producer import InitProducerIdRequest as KInitProducerIdRequest
from kafka.protocol.producer import InitProducerIdResponse as KInitProducerIdResponse
from kafka.protocol.producer import ProduceRequest as KProduceRequest
from kafka.protocol.producer import ProduceResponse as KProduceResponse
from twisted.trial.unittest import SynchronousTestCase

from txscales._framing import LengthPrefixDecoder
from txscales.errors import FrameTooLargeError, ProtocolError, TxScalesError
from txscales.kafka import (
    KafkaEncodeError,
    KafkaError,
    KafkaProtocolError,
    NotLeaderOrFollowerError,
    UnsupportedVersionError,
)
from txscales.kafka import _primitives as p
from txscales.kafka._errors import ERROR_CODES, errorForCode
from txscales.kafka._messages import (
    API_VERSIONS,
    INIT_PRODUCER_ID,
    METADATA,
    PRODUCE,
    SUPPORTED_VERSIONS,
    ApiVersionsResponse,
    BrokerMetadata,
    InitProducerIdResponse,
    MetadataResponse,
    PartitionMetadata,
    PartitionProduceResponse,
    ProduceResponse,
    TopicMetadata,
    chooseVersion,
    chooseVersions,
    correlationIdOf,
    decodeApiVersionsResponse,
    decodeInitProducerIdResponse,
    decodeMetadataResponse,
    decodeProduceResponse,
    encodeApiVersionsRequest,
    encodeInitProducerIdRequest,
    encodeMetadataRequest,
    encodeProduceRequest,
    encodeRequest,
)


def h(text: str) -> bytes:
    """
    @return: the bytes of hex C{text}, spaces ignored.
    """
    return bytes.fromhex(text.replace(" ", ""))


def framed(text: str) -> bytes:
    """
    @return: the bytes of hex C{text} behind their int32 length prefix.
    """
    data = h(text)
    return len(data).to_bytes(4, "big") + data


# (name, encoded request, its exact frame).
REQUESTS = [
    ("ApiVersions v0", encodeRequest(18, 0, 1, "txs", encodeApiVersionsRequest(0)),
     "0000000d 0012 0000 00000001 0003 747873"),
    ("ApiVersions v3", encodeRequest(18, 3, 2, "txs", encodeApiVersionsRequest(3, "txscales", "1.0")),
     "0000001c 0012 0003 00000002 0003 747873 00  09 74787363616c6573 04 312e30 00"),
    ("Metadata v12", encodeRequest(3, 12, 3, "txs", encodeMetadataRequest(12, ["t"])),
     "00000025 0003 000c 00000003 0003 747873 00  02 00000000000000000000000000000000 02 74 00  01 00 00"),
    ("Metadata v8 all topics", encodeRequest(3, 8, 4, None, encodeMetadataRequest(8, None, False)),
     "00000011 0003 0008 00000004 ffff  ffffffff 00 00 00"),
    ("Produce v9", encodeRequest(0, 9, 5, "txs", encodeProduceRequest(9, -1, 30000, [("t", [(0, b"REC")])])),
     "00000024 0000 0009 00000005 0003 747873 00  00 ffff 00007530 02 0274 02 00000000 04524543 00 00 00"),
    ("Produce v3", encodeRequest(0, 3, 6, "txs", encodeProduceRequest(3, 1, 1000, [("t", [(1, b"AB"), (2, b"")])])),
     "00000032 0000 0003 00000006 0003 747873  ffff 0001 000003e8 00000001 0001 74 00000002"
     " 00000001 00000002 4142  00000002 00000000"),
    ("InitProducerId v4", encodeRequest(22, 4, 7, "txs", encodeInitProducerIdRequest(4)),
     "0000001e 0016 0004 00000007 0003 747873 00  00 7fffffff ffffffffffffffff ffff 00"),
    ("InitProducerId v0", encodeRequest(22, 0, 8, "txs", encodeInitProducerIdRequest(0, None, 60000)),
     "00000013 0016 0000 00000008 0003 747873  ffff 0000ea60"),
]

_TOPIC_ID = "0102030405060708090a0b0c0d0e0f10"

# (name, apiKey, version, exact frame, decoded).
RESPONSES = [
    ("ApiVersions v0", API_VERSIONS, 0,
     framed("00000001 0000 00000002 0012 0000 0003 0000 0003 0009"),
     ApiVersionsResponse(0, {18: (0, 3), 0: (3, 9)})),
    ("ApiVersions v3, an unknown tagged field", API_VERSIONS, 3,
     framed("00000002 0000 03 0012 0000 0003 00 0000 0003 0009 00 00000007 01 01 08 0000000000000005"),
     ApiVersionsResponse(0, {18: (0, 3), 0: (3, 9)}, 7)),
    ("ApiVersions v3 refused in v0", API_VERSIONS, 3,
     framed("00000003 0023 00000001 0012 0000 0002"),
     ApiVersionsResponse(35, {18: (0, 2)})),
    ("Metadata v12", METADATA, 12,
     framed("00000004 00  00000000  02 00000001 0a6c6f63616c686f7374 00002384 00 00  03 6331  00000001"
            " 02 0000 0274 " + _TOPIC_ID + " 00"
            " 02 0000 00000000 00000001 00000000 02 00000001 02 00000001 01 00  80000000 00  00"),
     MetadataResponse([BrokerMetadata(1, "localhost", 9092)],
                      [TopicMetadata(0, "t", [PartitionMetadata(0, 0, 1, 0, [1], [1], [])], False, h(_TOPIC_ID))],
                      "c1", 1)),
    ("Metadata v1, unknown topic", METADATA, 1,
     framed("00000005  00000001 00000001 0009 6c6f63616c686f7374 00002384 ffff  00000001"
            " 00000001 0003 0001 74 00 00000000"),
     MetadataResponse([BrokerMetadata(1, "localhost", 9092)], [TopicMetadata(3, "t", [], False)], None, 1)),
    ("Produce v9", PRODUCE, 9,
     framed("00000006 00  02 0274 02 00000000 0000 000000000000002a ffffffffffffffff 0000000000000000 01 00 00"
            " 00  00000000 00"),
     ProduceResponse({"t": [PartitionProduceResponse(0, 0, 42, -1, 0)]})),
    ("Produce v8, an error", PRODUCE, 8,
     framed("00000007  00000001 0001 74 00000001 00000001 0006 ffffffffffffffff ffffffffffffffff"
            " ffffffffffffffff 00000001 00000000 0003 626164 0004 6f6f7073  00000064"),
     ProduceResponse({"t": [PartitionProduceResponse(1, 6, -1, -1, -1, [(0, "bad")], "oops")]}, 100)),
    ("Produce v3", PRODUCE, 3,
     framed("00000008  00000001 0001 74 00000001 00000000 0000 0000000000000000 ffffffffffffffff  00000000"),
     ProduceResponse({"t": [PartitionProduceResponse(0, 0, 0, -1, -1)]})),
    ("InitProducerId v4", INIT_PRODUCER_ID, 4,
     framed("00000009 00  00000000 0000 00000000000003e8 0000 00"),
     InitProducerIdResponse(0, 1000, 0)),
    ("InitProducerId v0", INIT_PRODUCER_ID, 0,
     framed("0000000a  00000000 0000 00000000000003e8 0005"),
     InitProducerIdResponse(0, 1000, 5)),
]

DECODERS = {
    API_VERSIONS: decodeApiVersionsResponse,
    METADATA: decodeMetadataResponse,
    PRODUCE: decodeProduceResponse,
    INIT_PRODUCER_ID: decodeInitProducerIdResponse,
}


def decodeAll(frames, pending):
    """
    @param frames: response frames without their prefix.
    @param pending: correlation id -> (apiKey, version), as a connection
        keeps it.
    @return: the decoded responses.
    """
    out = []
    for frame in frames:
        apiKey, version = pending[correlationIdOf(frame)]
        out.append(DECODERS[apiKey](frame, version))
    return out


class RequestTests(SynchronousTestCase):
    """
    Requests encode to their exact bytes.
    """

    def test_vectors(self):
        """
        Each request of the table encodes to its bytes.
        """
        for name, encoded, expected in REQUESTS:
            self.assertEqual(encoded.hex(), h(expected).hex(), name)

    def test_everyVersionMatchesKafkaPython(self):
        """
        Every version txscales speaks encodes each request as kafka-python
        does, header and length prefix included.
        """
        checked = 0
        for version in range(*_range(API_VERSIONS)):
            theirs = KApiVersionsRequest[version](client_software_name="txscales", client_software_version="1.0")
            ours = encodeApiVersionsRequest(version, "txscales", "1.0")
            checked += self._compare(theirs, API_VERSIONS, version, ours)
        for version in range(*_range(METADATA)):
            theirs = KMetadataRequest[version](
                topics=[KMetadataRequest[version].MetadataRequestTopic(name=n) for n in ("a", "bb")],
                allow_auto_topic_creation=False,
            )
            checked += self._compare(theirs, METADATA, version, encodeMetadataRequest(version, ["a", "bb"], False))
        for version in range(*_range(PRODUCE)):
            cls = KProduceRequest[version]
            topic = cls.TopicProduceData(
                name="t", partition_data=[cls.TopicProduceData.PartitionProduceData(index=3, records=b"xyz")]
            )
            theirs = cls(transactional_id=None, acks=-1, timeout_ms=5000, topic_data=[topic])
            ours = encodeProduceRequest(version, -1, 5000, [("t", [(3, b"xyz")])])
            checked += self._compare(theirs, PRODUCE, version, ours)
        for version in range(*_range(INIT_PRODUCER_ID)):
            theirs = KInitProducerIdRequest[version](
                transactional_id=None, transaction_timeout_ms=0x7FFFFFFF, producer_id=-1, producer_epoch=-1
            )
            checked += self._compare(theirs, INIT_PRODUCER_ID, version, encodeInitProducerIdRequest(version))
        self.assertEqual(checked, 4 + 12 + 9 + 5)

    def _compare(self, theirs, apiKey, version, body):
        theirs.with_header(correlation_id=99, client_id="cid")
        expected = theirs.encode(header=True, framed=True)
        self.assertEqual(encodeRequest(apiKey, version, 99, "cid", body).hex(), bytes(expected).hex(),
                         "api %d v%d" % (apiKey, version))
        return 1

    def test_encodeErrors(self):
        """
        A value out of its field's range is refused with L{KafkaEncodeError}.
        """
        self.assertRaises(KafkaEncodeError, p.int16, 1 << 15)
        self.assertRaises(KafkaEncodeError, p.int32, -(1 << 31) - 1)
        self.assertRaises(KafkaEncodeError, p.string, "x" * 40000)
        self.assertRaises(KafkaEncodeError, p.varint, 1 << 31)
        self.assertRaises(KafkaEncodeError, p.varlong, -(1 << 63) - 1)
        self.assertRaises(KafkaEncodeError, p.uvarint, -1)
        self.assertFalse(KafkaEncodeError("x").mayHaveReachedServer)


def _range(apiKey):
    low, high = SUPPORTED_VERSIONS[apiKey]
    return low, high + 1


class ResponseTests(SynchronousTestCase):
    """
    Responses decode from their exact bytes, however they arrive.
    """

    def pending(self):
        return {correlationIdOf(frame[4:]): (apiKey, version) for _, apiKey, version, frame, _ in RESPONSES}

    def test_whole(self):
        """
        Each response of the table, fed whole, decodes to its message.
        """
        for name, apiKey, version, frame, expected in RESPONSES:
            frames = LengthPrefixDecoder(1 << 20).feed(frame)
            self.assertEqual(decodeAll(frames, self.pending()), [expected], name)

    def test_byteByByte(self):
        """
        All responses, one stream fed a byte at a time, decode to the table's
        messages.
        """
        decoder = LengthPrefixDecoder(1 << 20)
        stream = b"".join(frame for _, _, _, frame, _ in RESPONSES)
        frames = []
        for i in range(len(stream)):
            frames.extend(decoder.feed(stream[i : i + 1]))
        self.assertEqual(decodeAll(frames, self.pending()), [expected for *_, expected in RESPONSES])
        self.assertEqual(decoder.bufferedSize(), 0)

    def test_trailingBytes(self):
        """
        Bytes of the next frame after a response stay buffered and do not
        change it.
        """
        for name, apiKey, version, frame, expected in RESPONSES:
            decoder = LengthPrefixDecoder(1 << 20)
            frames = decoder.feed(frame + frame[:7])
            self.assertEqual(decodeAll(frames, self.pending()), [expected], name)
            self.assertEqual(decoder.bufferedSize(), 7)

    def test_truncatedBodies(self):
        """
        Every response cut short anywhere raises L{KafkaProtocolError}.
        """
        for name, apiKey, version, frame, _ in RESPONSES:
            body = frame[4:]
            for end in range(len(body)):
                self.assertRaises(KafkaProtocolError, DECODERS[apiKey], body[:end], version)

    def test_extraBytesInFrame(self):
        """
        A response with a byte after its last field is refused.
        """
        for name, apiKey, version, frame, _ in RESPONSES:
            self.assertRaises(KafkaProtocolError, DECODERS[apiKey], frame[4:] + b"\x00", version)

    def test_everyVersionFromKafkaPython(self):
        """
        Responses kafka-python encodes decode, in every version txscales
        speaks.
        """
        for version in range(*_range(API_VERSIONS)):
            cls = KApiVersionsResponse[version]
            keys = [cls.ApiVersion(api_key=0, min_version=3, max_version=11)]
            frame = self._encode(cls(error_code=0, api_keys=keys, throttle_time_ms=5))
            expected = ApiVersionsResponse(0, {0: (3, 11)}, 5 if version else 0)
            self.assertEqual(decodeApiVersionsResponse(frame, version), expected)
        for version in range(*_range(METADATA)):
            cls = KMetadataResponse[version]
            part = cls.MetadataResponseTopic.MetadataResponsePartition(
                error_code=0, partition_index=2, leader_id=1, leader_epoch=4, replica_nodes=[1, 2],
                isr_nodes=[1], offline_replicas=[2],
            )
            topic = cls.MetadataResponseTopic(error_code=0, name="t", is_internal=False, partitions=[part])
            broker = cls.MetadataResponseBroker(node_id=1, host="h", port=9, rack="r")
            frame = self._encode(cls(throttle_time_ms=0, brokers=[broker], cluster_id="c", controller_id=1,
                                     topics=[topic]))
            decoded = decodeMetadataResponse(frame, version)
            self.assertEqual(decoded.brokers, [BrokerMetadata(1, "h", 9, "r")], version)
            partition = decoded.topics[0].partitions[0]
            self.assertEqual(
                (partition.partition, partition.leader, partition.replicas, partition.isr),
                (2, 1, [1, 2], [1]),
            )
            self.assertEqual(partition.leaderEpoch, 4 if version >= 7 else -1)
        for version in range(*_range(PRODUCE)):
            cls = KProduceResponse[version]
            part = cls.TopicProduceResponse.PartitionProduceResponse(index=3, error_code=6, base_offset=77)
            frame = self._encode(cls(responses=[cls.TopicProduceResponse(name="t", partition_responses=[part])]))
            answer = decodeProduceResponse(frame, version).topics["t"][0]
            self.assertEqual((answer.partition, answer.errorCode, answer.baseOffset), (3, 6, 77), version)
        for version in range(*_range(INIT_PRODUCER_ID)):
            cls = KInitProducerIdResponse[version]
            frame = self._encode(cls(throttle_time_ms=0, error_code=0, producer_id=123, producer_epoch=4))
            self.assertEqual(decodeInitProducerIdResponse(frame, version), InitProducerIdResponse(0, 123, 4))

    def _encode(self, response):
        response.with_header(correlation_id=5)
        return bytes(response.encode(header=True))


class ReaderBoundsTests(SynchronousTestCase):
    """
    L{p.Reader} checks each length against what remains and its bound
    before it allocates.
    """

    def test_lengthPastEnd(self):
        """
        A string, bytes or array length beyond the buffer is refused.
        """
        self.assertRaises(KafkaProtocolError, p.Reader(h("0005 6162")).string)
        self.assertRaises(KafkaProtocolError, p.Reader(h("7fffffff 00")).bytesField)
        self.assertRaises(KafkaProtocolError, p.Reader(h("ffffff7f 00")).bytesField, True)
        self.assertRaises(KafkaProtocolError, p.Reader(h("7fffffff 0000")).arrayLength)

    def test_arrayCountRefusedBeforeDecoding(self):
        """
        An array count that its elements cannot fit is refused before any
        element is read: the decode function never runs.
        """
        calls = []
        reader = p.Reader(h("00000003 00000001 00000002"))
        self.assertRaises(KafkaProtocolError, reader.array, lambda r: calls.append(r.int32()), False, 4)
        self.assertEqual(calls, [])

    def test_overBound(self):
        """
        A length over the reader's bound is refused even when the bytes are
        there.
        """
        reader = p.Reader(h("00000004 61626364"), maxLength=3)
        self.assertRaises(KafkaProtocolError, reader.bytesField)
        self.assertEqual(p.Reader(h("00000004 61626364"), maxLength=4).bytesField(), b"abcd")

    def test_negativeLengths(self):
        """
        A length below -1 is refused; -1 is null.
        """
        self.assertRaises(KafkaProtocolError, p.Reader(h("fffe")).nullableString)
        self.assertIsNone(p.Reader(h("ffff")).nullableString())
        self.assertIsNone(p.Reader(h("00")).nullableString(True))
        self.assertRaises(KafkaProtocolError, p.Reader(h("ffff")).string)

    def test_varints(self):
        """
        Varints round-trip at their limits; one too long is refused.
        """
        for value in (0, 1, -1, 63, -64, 64, (1 << 31) - 1, -(1 << 31)):
            self.assertEqual(p.Reader(p.varint(value)).varint(), value)
        for value in (0, -1, (1 << 63) - 1, -(1 << 63)):
            self.assertEqual(p.Reader(p.varlong(value)).varlong(), value)
        self.assertEqual(p.varint(-1), b"\x01")
        self.assertEqual(p.varint(300), h("d804"))
        self.assertRaises(KafkaProtocolError, p.Reader(h("ffffffffff01")).varint)
        self.assertRaises(KafkaProtocolError, p.Reader(h("ff")).uvarint)
        self.assertRaises(KafkaProtocolError, p.Reader(h("ffffffff1f")).varint)

    def test_taggedFields(self):
        """
        Tagged fields round-trip; out-of-order tags and counts that cannot
        fit are refused.
        """
        fields = {0: b"a", 5: b"bcd"}
        self.assertEqual(p.Reader(p.taggedFields(fields)).taggedFields(), fields)
        self.assertRaises(KafkaProtocolError, p.Reader(h("02 05 00 01 00")).taggedFields)
        self.assertRaises(KafkaProtocolError, p.Reader(h("7f 00 00")).taggedFields)
        self.assertRaises(KafkaProtocolError, p.Reader(h("01 00 05 00")).taggedFields)

    def test_invalidUtf8(self):
        """
        A string that is not UTF-8 is refused.
        """
        self.assertRaises(KafkaProtocolError, p.Reader(h("0001 ff")).string)

    def test_frameOverLimit(self):
        """
        A response frame whose prefix is over the decoder's bound is refused
        from its four bytes.
        """
        self.assertRaises(FrameTooLargeError, LengthPrefixDecoder(1024).feed, h("00000401"))

    def test_protocolErrorFamily(self):
        """
        L{KafkaProtocolError} is a txscales protocol error.
        """
        self.assertTrue(issubclass(KafkaProtocolError, ProtocolError))


class VersionChoiceTests(SynchronousTestCase):
    """
    The version of each API is the highest both sides speak.
    """

    def test_highestCommon(self):
        """
        txscales picks the lower of the two maxima.
        """
        broker = {0: (0, 9), 3: (0, 12), 18: (0, 3), 22: (0, 4)}
        self.assertEqual(chooseVersions(broker), {0: 9, 3: 12, 22: 4})
        newer = {0: (3, 13), 3: (0, 13), 18: (0, 4), 22: (0, 6)}
        self.assertEqual(chooseVersions(newer), {0: 11, 3: 12, 22: 4})
        self.assertEqual(chooseVersion(API_VERSIONS, newer), 3)

    def test_noCommonVersion(self):
        """
        A broker without a common version of an API gets
        L{UnsupportedVersionError}.
        """
        self.assertRaises(UnsupportedVersionError, chooseVersion, PRODUCE, {0: (0, 2)})
        self.assertRaises(UnsupportedVersionError, chooseVersion, PRODUCE, {0: (12, 13)})
        error = self.assertRaises(UnsupportedVersionError, chooseVersions, {3: (0, 12)})
        self.assertIn("Produce", str(error))
        self.assertFalse(error.mayHaveBeenWritten)


class ErrorCodeTests(SynchronousTestCase):
    """
    Error codes map to typed errors that say what a retry may do.
    """

    def test_namedCodes(self):
        """
        The codes a producer must tell apart each have their class and flags.
        """
        expected = {
            3: ("UNKNOWN_TOPIC_OR_PARTITION", True, False, True),
            5: ("LEADER_NOT_AVAILABLE", True, False, True),
            6: ("NOT_LEADER_OR_FOLLOWER", True, False, True),
            7: ("REQUEST_TIMED_OUT", True, True, False),
            10: ("MESSAGE_TOO_LARGE", False, False, False),
            18: ("RECORD_LIST_TOO_LARGE", False, False, False),
            19: ("NOT_ENOUGH_REPLICAS", True, False, False),
            20: ("NOT_ENOUGH_REPLICAS_AFTER_APPEND", True, True, False),
            35: ("UNSUPPORTED_VERSION", False, False, False),
            45: ("OUT_OF_ORDER_SEQUENCE_NUMBER", False, False, False),
            46: ("DUPLICATE_SEQUENCE_NUMBER", False, True, False),
            47: ("INVALID_PRODUCER_EPOCH", False, False, False),
        }
        for code, (name, retryable, written, refresh) in expected.items():
            error = errorForCode(code, "broker says")
            self.assertIsInstance(error, KafkaError)
            self.assertIsInstance(error, TxScalesError)
            self.assertEqual(
                (error.code, error.name, error.retryable, error.mayHaveBeenWritten, error.refreshMetadata),
                (code, name, retryable, written, refresh),
            )
            self.assertEqual(error.message, "broker says")
            self.assertIs(ERROR_CODES[code].errorClass, type(error))
        self.assertIsInstance(errorForCode(6), NotLeaderOrFollowerError)

    def test_otherCodes(self):
        """
        A code without its own class still carries its name and flags; an
        unknown code is not retried and may have written.
        """
        error = errorForCode(13)
        self.assertEqual((error.name, error.retryable, error.mayHaveBeenWritten), ("NETWORK_EXCEPTION", True, True))
        self.assertIsInstance(error, KafkaError)
        unknown = errorForCode(4242)
        self.assertEqual((unknown.code, unknown.name), (4242, "UNKNOWN_CODE_4242"))
        self.assertEqual((unknown.retryable, unknown.mayHaveBeenWritten), (False, True))
        self.assertIn("UNKNOWN_CODE_4242 (4242)", str(unknown))


class FuzzTests(SynchronousTestCase):
    """
    Any bytes decode or raise L{KafkaProtocolError}, never anything else.
    """

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(sorted(DECODERS)), st.integers(0, 12), st.binary(max_size=120))
    def test_randomBodies(self, apiKey, version, body):
        """
        Random bytes after a correlation id decode or raise
        L{KafkaProtocolError}.
        """
        try:
            DECODERS[apiKey](b"\x00\x00\x00\x01" + body, version)
        except KafkaProtocolError:
            pass

    @settings(max_examples=400, deadline=None)
    @given(st.sampled_from(range(len(RESPONSES))), st.integers(4, 400), st.integers(0, 255))
    def test_mutatedVectors(self, index, position, value):
        """
        A response of the table with one byte changed decodes or raises
        L{KafkaProtocolError}.
        """
        _, apiKey, version, frame, _ = RESPONSES[index]
        data = bytearray(frame[4:])
        data[position % len(data)] = value
        try:
            DECODERS[apiKey](bytes(data), version)
        except KafkaProtocolError:
            pass


class RoundTripTests(SynchronousTestCase):
    """
    What the primitive encoders write, L{p.Reader} reads back.
    """

    @settings(max_examples=200, deadline=None)
    @given(st.none() | st.text(max_size=50), st.none() | st.binary(max_size=50), st.booleans(),
           st.integers(-(2**63), 2**63 - 1), st.integers(-(2**31), 2**31 - 1),
           st.dictionaries(st.integers(0, 1000), st.binary(max_size=20), max_size=4))
    def test_primitives(self, text, data, compact, long, integer, tagged):
        """
        Strings, bytes, integers, varints and tagged fields round-trip, and
        use every byte they wrote.
        """
        encoded = (p.nullableString(text, compact) + p.bytesField(data, compact) + p.int64(long)
                   + p.int32(integer) + p.varint(integer) + p.varlong(long) + p.taggedFields(tagged)
                   + p.array([integer, integer], p.int32, compact))
        reader = p.Reader(encoded)
        self.assertEqual(reader.nullableString(compact), text)
        self.assertEqual(reader.nullableBytes(compact), data)
        self.assertEqual((reader.int64(), reader.int32(), reader.varint(), reader.varlong()),
                         (long, integer, integer, long))
        self.assertEqual(reader.taggedFields(), tagged)
        self.assertEqual(reader.int32Array(compact), [integer, integer])
        reader.expectEnd()
