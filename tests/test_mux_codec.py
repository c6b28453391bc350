"""
Tests for the sans-IO Mux codec: golden vectors cut from real Finagle
captures, derived vectors, malformed input and fuzzing.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txscales.errors import (
    BadMessageError,
    EncodeError,
    FrameTooLargeError,
    ProtocolError,
    UnknownMessageTypeError,
)
from txscales.mux._fields import _readPairs, _readShortBytes
from txscales.mux._framing import KEY_SIZE_KEPT, KEYS_KEPT, FrameDecoder, encodeDispatch, encodeFrames
from txscales.mux._shapes import LEARN_EVERY, MAX_PAIRS, MAX_SHAPES, Shape, Shapes
from txscales.mux._messages import (
    FLAG_NON_RETRYABLE,
    FLAG_REJECTED,
    FLAG_RETRYABLE,
    STATUS_ERROR,
    STATUS_NACK,
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
    Tlease,
    Tping,
    Treq,
    requestDecoder,
    encodeMessage,
    muxFailureContext,
    muxFailureFlags,
)
from txscales.mux._serversession import ServerSession

TRACE = b"com.twitter.finagle.tracing.TraceContext"
RETRIES = b"com.twitter.finagle.Retries"
DEADLINE = b"com.twitter.finagle.Deadline"
HEADERS = [(b"mux-framer", b"\x7f\xff\xff\xff"), (b"tls", b"off")]
QUERY_STRING = bytes.fromhex("80010001000000057175657279000000000b000100000006537472696e6700")
QUERY_OK = bytes.fromhex("80010001000000057175657279000000000b0001000000026f6b00")
G10_TEXT = b"org.apache.thrift.protocol.TProtocolException: Expected protocol id ffffff82 but got ffffff80"

# (name, message, exact frame bytes).  G* are golden (MUX.md 1.9, from
# Finagle captures); D* are derived with the same encoding rules.
VECTORS = [
    ("G1 marker", Rerr(1, b"tinit check", legacy=True), "0000000f7f00000174696e697420636865636b"),
    (
        "G2 Tinit",
        Tinit(1, 1, HEADERS),
        "0000002a4400000100010000000a6d75782d6672616d6572000000047fffffff00000003746c73000000036f6666",
    ),
    (
        "G3 Rinit",
        Rinit(1, 1, HEADERS),
        "0000002abc00000100010000000a6d75782d6672616d6572000000047fffffff00000003746c73000000036f6666",
    ),
    ("G4 Tping", Tping(1), "0000000441000001"),
    ("G4 Rping", Rping(1), "00000004bf000001"),
    (
        "G5 Tdispatch",
        Tdispatch(
            2,
            [
                (TRACE, bytes.fromhex("42ea40a4cb749ed6" * 3 + "0000000000000000")),
                (RETRIES, b"\x00\x00\x00\x00"),
                (DEADLINE, bytes.fromhex("16953b99d17d7ec07fffffffffffffff")),
            ],
            b"",
            [],
            QUERY_STRING,
        ),
        "000000c80200000200030028636f6d2e747769747465722e66696e61676c652e74726163696e672e5472616365436f6e74657874002042ea40a4cb749ed642ea40a4cb749ed642ea40a4cb749ed60000000000000000001b636f6d2e747769747465722e66696e61676c652e52657472696573000400000000001c636f6d2e747769747465722e66696e61676c652e446561646c696e65001016953b99d17d7ec07fffffffffffffff0000000080010001000000057175657279000000000b000100000006537472696e6700",
    ),
    (
        "G6 RdispatchOk",
        Rdispatch(2, 0, [], bytes.fromhex("80010002000000057175657279000000000b00000000000c537472696e67537472696e6700")),
        "0000002cfe00000200000080010002000000057175657279000000000b00000000000c537472696e67537472696e6700",
    ),
    ("G7 Tdrain", Tdrain(1), "0000000440000001"),
    ("G7 Rdrain", Rdrain(1), "00000004c0000001"),
    ("G8 RdispatchNack", Rdispatch(2, STATUS_NACK), "00000007fe000002020000"),
    (
        "G9 Tdispatch with dtab",
        Tdispatch(
            2,
            [
                (TRACE, bytes.fromhex("93c578d3944dc34e" * 3 + "0000000000000000")),
                (DEADLINE, bytes.fromhex("142088086e1fe6807fffffffffffffff")),
            ],
            b"",
            [(b"/foo", b"/bar")],
            QUERY_OK,
        ),
        "000000ad0200000200020028636f6d2e747769747465722e66696e61676c652e74726163696e672e5472616365436f6e74657874002093c578d3944dc34e93c578d3944dc34e93c578d3944dc34e0000000000000000001c636f6d2e747769747465722e66696e61676c652e446561646c696e650010142088086e1fe6807fffffffffffffff0000000100042f666f6f00042f62617280010001000000057175657279000000000b0001000000026f6b00",
    ),
    ("G10 RdispatchError", Rdispatch(2, STATUS_ERROR, [], G10_TEXT), "00000064fe000002010000" + G10_TEXT.hex()),
    ("D Tdiscarded (Finagle's code)", Tdiscarded(2, b"timeout", legacy=True), "0000000ec200000000000274696d656f7574"),
    ("D Tdiscarded (canonical code)", Tdiscarded(2, b"timeout"), "0000000e4200000000000274696d656f7574"),
    ("D Rdiscarded", Rdiscarded(2), "00000004be000002"),
    ("D Tlease", Tlease(0, 1000), "0000000d430000000000000000000003e8"),
    ("D Rerr (Finagle's code)", Rerr(3, b"boom", legacy=True), "000000087f000003626f6f6d"),
    ("D Rerr (canonical code)", Rerr(3, b"boom"), "0000000880000003626f6f6d"),
    (
        "D RdispatchNack with MuxFailure",
        Rdispatch(2, STATUS_NACK, muxFailureContext(FLAG_RETRYABLE | FLAG_REJECTED)),
        "0000001dfe000002020001000a4d75784661696c75726500080000000000000003",
    ),
    (
        "D RdispatchError with MuxFailure",
        Rdispatch(2, STATUS_ERROR, muxFailureContext(FLAG_NON_RETRYABLE), b"oops"),
        "00000021fe000002010001000a4d75784661696c757265000800000000000000046f6f7073",
    ),
    (
        "D Tdispatch with dst and dtab",
        Tdispatch(2, [], b"/s/svc", [(b"/s", b"/$/inet/127.0.0.1/9000")], bytes.fromhex("01020304")),
        "0000003002000002000000062f732f737663000100022f7300162f242f696e65742f3132372e302e302e312f3930303001020304",
    ),
    (
        "D Treq",
        Treq(2, [(1, bytes.fromhex("000000000000000100000000000000020000000000000003")), (2, b"\x01")], b"\xab"),
        "0000002301000002020118000000000000000100000000000000020000000000000003020101ab",
    ),
    ("D RreqOk", Rreq(2, 0, b"\xab"), "00000006ff00000200ab"),
]

FRAGMENTED = (
    Tdispatch(5, body=bytes(range(20))),
    16,
    "000000140280000500000000000000010203040506070809" "0000000e020000050a0b0c0d0e0f10111213",
)


def feedWhole(data):
    return FrameDecoder().feed(data)


def feedBytewise(data):
    decoder = FrameDecoder()
    messages = []
    for i in range(len(data)):
        messages.extend(decoder.feed(data[i : i + 1]))
    return messages


class VectorTests(SynchronousTestCase):
    """
    Every vector encodes to its exact bytes and decodes back to its message.
    """

    def test_encode(self):
        """
        Each message encodes to exactly its vector's bytes.
        """
        for name, message, hexBytes in VECTORS:
            self.assertEqual(encodeMessage(message).hex(), hexBytes, name)

    def test_decodeWhole(self):
        """
        Each vector fed whole decodes to its message, keeping the type
        spelling it came with.
        """
        for name, message, hexBytes in VECTORS:
            [decoded] = feedWhole(bytes.fromhex(hexBytes))
            self.assertEqual(decoded, message, name)
            self.assertEqual(encodeMessage(decoded).hex(), hexBytes, name)

    def test_decodeBytewise(self):
        """
        Each vector fed one byte at a time decodes to its message.
        """
        for name, message, hexBytes in VECTORS:
            self.assertEqual(feedBytewise(bytes.fromhex(hexBytes)), [message], name)

    def test_decodeWithTrailingBytes(self):
        """
        Bytes after a whole frame wait for the rest of the next frame.
        """
        for name, message, hexBytes in VECTORS:
            decoder = FrameDecoder()
            self.assertEqual(decoder.feed(bytes.fromhex(hexBytes) + b"\x00\x00\x00\x04\x41"), [message], name)
            self.assertEqual(decoder.bufferedSize(), 5, name)
            self.assertEqual(decoder.feed(b"\x00\x00\x01"), [Tping(1)], name)
            self.assertEqual(decoder.bufferedSize(), 0, name)

    def test_allVectorsInOneStream(self):
        """
        All vectors concatenated decode to all messages in order.
        """
        stream = b"".join(bytes.fromhex(h) for _, _, h in VECTORS)
        expected = [m for _, m, _ in VECTORS]
        self.assertEqual(feedWhole(stream), expected)
        self.assertEqual(feedBytewise(stream), expected)

    def test_fragmentedEncode(self):
        """
        A Tdispatch larger than the peer's window is written as fragments
        with the fragment bit on all but the last.
        """
        message, window, hexBytes = FRAGMENTED
        self.assertEqual(encodeFrames(message, window).hex(), hexBytes)

    def test_fragmentedDecode(self):
        """
        Fragments reassemble into one message, whole and byte by byte.
        """
        message, _, hexBytes = FRAGMENTED
        self.assertEqual(feedWhole(bytes.fromhex(hexBytes)), [message])
        self.assertEqual(feedBytewise(bytes.fromhex(hexBytes)), [message])

    def test_fragmentsInterleave(self):
        """
        Fragments of two tags interleaved with a ping reassemble per tag.
        """
        a = encodeFrames(Tdispatch(2, body=b"a" * 40), 16)
        b = encodeFrames(Tdispatch(3, body=b"b" * 40), 16)
        framesA = _split(a)
        framesB = _split(b)
        stream = b"".join(x + y for x, y in zip(framesA, framesB)) + encodeMessage(Tping(1))
        self.assertEqual(
            feedWhole(stream), [Tdispatch(2, body=b"a" * 40), Tdispatch(3, body=b"b" * 40), Tping(1)]
        )

    def test_discardDropsFragments(self):
        """
        A Tdiscarded for a tag drops its partial fragments.
        """
        frames = _split(encodeFrames(Tdispatch(2, body=b"a" * 40), 16))
        decoder = FrameDecoder()
        decoder.feed(frames[0])
        self.assertEqual(decoder.feed(encodeMessage(Tdiscarded(2, b"x"))), [Tdiscarded(2, b"x")])
        self.assertEqual(decoder.bufferedSize(), 0)

    def test_differentTerminatorEndsSequence(self):
        """
        An Rerr ending an Rdispatch fragment sequence drops the fragments and
        stands alone.
        """
        frames = _split(encodeFrames(Rdispatch(2, body=b"a" * 40), 16))
        self.assertEqual(feedWhole(frames[0] + encodeMessage(Rerr(2, b"gone"))), [Rerr(2, b"gone")])

    def test_muxFailureFlags(self):
        """
        MuxFailure flags round-trip and are 0 when absent.
        """
        self.assertEqual(muxFailureFlags(muxFailureContext(5)), 5)
        self.assertEqual(muxFailureFlags([]), 0)
        self.assertEqual(muxFailureContext(0), [])


def _split(data):
    frames = []
    while data:
        size = int.from_bytes(data[:4], "big") + 4
        frames.append(data[:size])
        data = data[size:]
    return frames


# (name, bytes, error class) for malformed input.
MALFORMED = [
    ("unknown type 0", "0000000400000001", UnknownMessageTypeError),
    ("unknown type 0x82 (compact Thrift)", "0000000582210000aa", UnknownMessageTypeError),
    ("frame shorter than its header", "00000002ffff", BadMessageError),
    ("Tping with a body", "0000000541000001ff", BadMessageError),
    ("truncated context count", "000000050200000200", BadMessageError),
    ("context key longer than the frame", "00000009020000020001000500", BadMessageError),
    ("context key length above 32767", "0000000a02000002000180000000", BadMessageError),
    ("Rdispatch without status", "00000004fe000002", BadMessageError),
    ("Tdiscarded too short", "0000000642000000abcd", BadMessageError),
    ("Tlease of 8 bytes", "0000000c4300000000000000000003e8", BadMessageError),
    ("Tinit truncated header", "0000000a44000001000100000005", BadMessageError),
    ("Treq with truncated key", "000000050100000201", BadMessageError),
    ("fragment of a Tping", "0000000441800001", BadMessageError),
]


class MalformedTests(SynchronousTestCase):
    """
    Malformed input raises typed errors, whole and byte by byte.
    """

    def test_malformed(self):
        """
        Each malformed frame raises its error class, a ProtocolError.
        """
        for name, hexBytes, error in MALFORMED:
            data = bytes.fromhex(hexBytes)
            e = self.assertRaises(error, feedWhole, data)
            self.assertIsInstance(e, ProtocolError, name)
            self.assertRaises(error, feedBytewise, data)

    def test_oversizedLengthRefusedFromPrefix(self):
        """
        A 2 GiB length prefix is refused from its four bytes alone.
        """
        decoder = FrameDecoder(maxFrameSize=1024)
        e = self.assertRaises(FrameTooLargeError, decoder.feed, b"\x80\x00\x00\x00")
        self.assertIn("2147483648", str(e))

    def test_frameAtLimitAccepted(self):
        """
        A frame exactly at the limit is accepted.
        """
        frame = encodeMessage(Tdispatch(2, body=b"x" * 100))
        decoder = FrameDecoder(maxFrameSize=len(frame) - 4)
        self.assertEqual(decoder.feed(frame), [Tdispatch(2, body=b"x" * 100)])
        self.assertRaises(FrameTooLargeError, FrameDecoder(maxFrameSize=len(frame) - 5).feed, frame)

    def test_reassemblyLimited(self):
        """
        Fragments adding up to more than the limit are refused.
        """
        data = encodeFrames(Tdispatch(2, body=b"x" * 100), 30)
        decoder = FrameDecoder(maxFrameSize=64)
        self.assertRaises(FrameTooLargeError, decoder.feed, data)

    def test_largeFrameInChunks(self):
        """
        A large frame arriving in many chunks decodes once whole.
        """
        body = bytes(range(256)) * 1024
        frame = encodeMessage(Rdispatch(2, body=body))
        decoder = FrameDecoder()
        messages = []
        for i in range(0, len(frame), 1000):
            messages.extend(decoder.feed(frame[i : i + 1000]))
        self.assertEqual(messages, [Rdispatch(2, body=body)])
        self.assertEqual(decoder.bufferedSize(), 0)

    def test_encodeErrors(self):
        """
        Out-of-range fields raise EncodeError instead of writing bad bytes.
        """
        self.assertRaises(EncodeError, encodeMessage, Tping(0x800000 + 0x7FFFFF + 1))
        self.assertRaises(EncodeError, encodeMessage, Tdispatch(0x1000000))
        self.assertRaises(EncodeError, encodeMessage, Tdispatch(2, [(b"k" * 32768, b"")]))
        self.assertRaises(EncodeError, encodeMessage, Tdispatch(2, dst=b"/" * 40000))
        self.assertRaises(EncodeError, encodeMessage, Rdispatch(2, 256))
        self.assertRaises(EncodeError, encodeMessage, Tlease(0, -1))

    def test_encodedKeysBounded(self):
        """
        The encoded context keys C{encodeDispatch} keeps for its caller are
        bounded in number and size, and do not change the bytes written.
        """
        keys = {}
        contexts = [(b"k%d" % (i,), b"v") for i in range(KEYS_KEPT + 10)] + [(b"x" * (KEY_SIZE_KEPT + 1), b"v")]
        for _ in range(2):
            self.assertEqual(encodeDispatch(2, contexts, b"", (), b"b", keys=keys), encodeMessage(Tdispatch(2, contexts, body=b"b")))
        self.assertEqual(sorted(keys), sorted(k for k, _ in contexts[:KEYS_KEPT]))
        self.assertEqual(keys[b"k1"], b"\x00\x02k1")

    def test_encodeDispatchErrors(self):
        """
        The direct Tdispatch encoder refuses what the message class refuses.
        """
        self.assertRaises(EncodeError, encodeDispatch, 0x1000000, [], b"", (), b"")
        self.assertRaises(EncodeError, encodeDispatch, 2, [(b"k" * 32768, b"")], b"", (), b"")
        self.assertRaises(EncodeError, encodeDispatch, 2, [(b"k", b"v" * 32768)], b"", (), b"")
        self.assertRaises(EncodeError, encodeDispatch, 2, [], b"/" * 40000, (), b"")
        self.assertRaises(EncodeError, encodeDispatch, 2, [(b"", b"")] * 65536, b"", (), b"")


dispatchFields = (
    st.integers(2, 0x7FFFFF),
    st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=40)), max_size=4),
    st.binary(max_size=30),
    st.binary(max_size=300),
    st.integers(1, 64),
)
"""Strategies for a Tdispatch's tag, contexts, dst and body, and a window."""


class FuzzTests(SynchronousTestCase):
    """
    Random bytes yield messages or typed errors, never anything else.
    """

    @settings(max_examples=400, deadline=None)
    @given(st.binary(max_size=200), st.integers(min_value=1, max_value=7))
    def test_randomBytes(self, data, chunk):
        """
        Any bytes, in any chunking, decode or raise a ProtocolError.
        """
        decoder = FrameDecoder(maxFrameSize=4096)
        try:
            for i in range(0, len(data), chunk):
                decoder.feed(data[i : i + chunk])
        except ProtocolError:
            pass

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from([v[2] for v in VECTORS]), st.integers(min_value=4, max_value=300), st.integers(0, 255))
    def test_mutatedVectors(self, hexBytes, position, value):
        """
        A vector with one byte changed decodes or raises a ProtocolError.
        """
        data = bytearray(bytes.fromhex(hexBytes))
        data[position % len(data)] = value
        try:
            FrameDecoder().feed(bytes(data))
        except ProtocolError:
            pass

    @settings(max_examples=200, deadline=None)
    @given(*dispatchFields)
    def test_encodeDispatch(self, tag, contexts, dst, body, window):
        """
        The direct Tdispatch encoder writes the message class's bytes, with
        bytes or bytearray fields, fragmented or not.
        """
        message = Tdispatch(tag, contexts, dst, [], body)
        self.assertEqual(encodeDispatch(tag, contexts, dst, (), body), encodeMessage(message))
        self.assertEqual(encodeDispatch(tag, contexts, dst, (), body, window), encodeFrames(message, window))
        mutable = [(bytearray(k), bytearray(v)) for k, v in contexts]
        self.assertEqual(encodeDispatch(tag, mutable, dst, (), body), encodeMessage(message))

    @settings(max_examples=200, deadline=None)
    @given(*dispatchFields)
    def test_tdispatchRoundTrip(self, tag, contexts, dst, body, window):
        """
        Any Tdispatch survives encoding (fragmented or not) and decoding.
        """
        message = Tdispatch(tag, contexts, dst, [(b"/a", b"/b")], body)
        self.assertEqual(feedWhole(encodeFrames(message, window)), [message])
        self.assertEqual(feedWhole(encodeMessage(message)), [message])


def tdispatchBody(contexts, dst=b"", dtab=(), body=b"payload"):
    """
    @return: the body bytes of a Tdispatch frame (after type and tag).
    """
    return encodeMessage(Tdispatch(2, contexts, dst, list(dtab), body))[8:]


def fieldByField(body):
    """
    @return: (contexts, dst, dtab, payload) of a Tdispatch body read field by
        field, or None when it does not decode.
    """
    try:
        contexts, offset = _readPairs(body, 0, "context")
        dst, offset = _readShortBytes(body, offset, "dst")
        dtab, offset = _readPairs(body, offset, "dtab")
    except BadMessageError:
        return None
    return contexts, dst, dtab, body[offset:]


contextLists = st.lists(st.tuples(st.binary(max_size=30), st.binary(max_size=40)), max_size=MAX_PAIRS)


class ShapeTests(SynchronousTestCase):
    """
    A Tdispatch header read by its learnt shape reads as it does field by
    field, and a header of another shape is not taken for it.
    """

    @settings(max_examples=300, deadline=None)
    @given(contextLists, st.binary(max_size=50), st.integers(0, 400), st.integers(0, 255))
    def test_shapeReadsAsFields(self, contexts, payload, position, value):
        """
        Whole, truncated or with one byte changed, a body read by a shape
        gives the contexts and payload that field-by-field reading gives,
        or is left to it.
        """
        shape = Shape(contexts)
        body = tdispatchBody(contexts, body=payload)
        self.assertEqual(shape.read(body), contexts)
        self.assertEqual(body[shape.size :], payload)
        mutated = bytearray(body)
        mutated[position % len(mutated)] = value
        for candidate in (bytes(mutated), body[: position % len(body)]):
            read = shape.read(candidate)
            if read is not None:
                self.assertEqual(fieldByField(candidate), (read, b"", [], candidate[shape.size :]))

    @settings(max_examples=200, deadline=None)
    @given(contextLists, contextLists, st.binary(max_size=20))
    def test_otherShapes(self, learnt, other, dst):
        """
        A header with other keys, value sizes, a dst or a dtab does not
        match a shape learnt from another.
        """
        shape = Shape(learnt)
        body = tdispatchBody(other, dst=dst, dtab=[(b"/a", b"/b")] if not dst else ())
        self.assertIsNone(shape.read(body))
        body = tdispatchBody(other, dst=dst)
        read = shape.read(body)
        if read is not None:
            self.assertEqual((read, dst), (other, b""))

    def test_learnAndForget(self):
        """
        The first header is learnt at once; when under one header in five
        matches, the shapes are forgotten and learning waits longer.
        """
        shapes = Shapes()
        steady = [(b"k", b"1234")]
        shapes.missed(steady)
        self.assertEqual(shapes.read(tdispatchBody(steady)), (steady, Shape(steady).size))
        for i in range(LEARN_EVERY * 4):
            contexts = [(b"k", b"x" * (i % 40 + 5))]
            if shapes.read(tdispatchBody(contexts)) is None:
                shapes.missed(contexts)
        self.assertLessEqual(len(shapes.shapes), MAX_SHAPES)
        self.assertGreater(shapes._every, LEARN_EVERY)

    def test_decodeThroughShapes(self):
        """
        Tdispatch frames decode to the same messages before and after their
        shape is learnt, and a different frame after it decodes correctly.
        """
        contexts = [(b"com.twitter.finagle.Retries", b"\x00\x00\x00\x00"), (b"c", b"v")]
        first = Tdispatch(2, contexts, b"", [], b"a")
        second = Tdispatch(3, [(b"c", b"v" * 3)], b"/dst", [(b"/a", b"/b")], b"b")
        shapes = Shapes()
        decoder = FrameDecoder(decode=requestDecoder(shapes))
        for message in (first, first, second, first):
            self.assertEqual(decoder.feed(encodeMessage(message)), [message])
        self.assertEqual(len(shapes.shapes), 1)

    def test_sessionDecodesThroughShapes(self):
        """
        A server session's requests carry the same contexts, dst, dtab and
        body before and after their shape is learnt (their contexts read
        when first asked for), and a request that does not fit it too.
        """
        contexts = [(b"com.twitter.finagle.Retries", b"\x00\x00\x00\x00"), (b"c", b"v")]
        session = ServerSession()
        session.receiveData(encodeMessage(Tinit(1, 1, [])))
        sent = [
            Tdispatch(2, contexts, b"", [], b"a"),
            Tdispatch(3, contexts, b"", [], b"b"),
            Tdispatch(4, [(b"c", b"v" * 3)], b"/dst", [(b"/a", b"/b")], b"c"),
            Tdispatch(5, contexts, b"", [], b"d"),
        ]
        events = session.receiveData(b"".join(encodeMessage(m) for m in sent))
        self.assertEqual(len(session._shapes.shapes), 1)
        self.assertEqual(
            [(e.tag, e.contexts, e.dst, e.dtab, e.body) for e in events],
            [(m.tag, m.contexts, m.dst, m.dtab, m.body) for m in sent],
        )
        events[0].contexts = []
        self.assertEqual(events[0].contexts, [])

    def test_shapesPerSession(self):
        """
        Each server session learns the shapes of its own client's requests:
        one client's headers do not change what another session keeps.
        """
        learner, other = ServerSession(), ServerSession()
        learner.receiveData(encodeMessage(Tdispatch(2, [(b"k", b"v")], body=b"a")))
        self.assertEqual(len(learner._shapes.shapes), 1)
        self.assertEqual(other._shapes.shapes, [])
