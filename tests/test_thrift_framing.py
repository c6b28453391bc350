"""
Tests for the sans-IO plain Thrift transports and sessions: tables of
(bytes, messages) fed whole, one byte at a time and with trailing bytes;
malformed input; fuzzing against Apache Thrift's own protocol writers; the
client and server sessions.
"""

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.protocol.TCompactProtocol import TCompactProtocol
from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.transport.TTransport import TMemoryBuffer
from twisted.trial.unittest import SynchronousTestCase

from txscales.demo.gen import TestService
from txscales.demo.gen.ttypes import InvalidQueryException
from txscales.errors import ApplicationError, BadMessageError, FrameTooLargeError, UnexpectedMessageError
from txscales.thrift._codec import (
    BINARY,
    COMPACT,
    describeService,
    encodeApplicationException,
    encodeMessageHeader,
    encodeResult,
)
from txscales.thrift._framing import (
    BUFFERED,
    FRAMED,
    MAX_DEPTH,
    BufferedDecoder,
    FramedDecoder,
    encodeFrame,
    makeDecoder,
    messageType,
)
from txscales.thrift._session import ClientSession, ServerSession, callHeader, encodeArgs

METHODS = describeService(TestService.Iface)
QUERY = METHODS["query"]
LOG = METHODS["log"]

# Golden messages, written out by hand from the protocol specifications.
# query("x") seqid 1, binary strict: version|CALL, name, seqid, field 1
# (string "x"), stop.
BINARY_QUERY = bytes.fromhex("80010001" "00000005" "7175657279" "00000001" "0b0001" "00000001" "78" "00")
# The same call in the compact protocol: id 0x82, version 1 | CALL << 5,
# varint seqid, varint name length, name, field header (delta 1, binary),
# varint length, "x", stop.
COMPACT_QUERY = bytes.fromhex("82" "21" "01" "05" "7175657279" "18" "01" "78" "00")
# Old, non-strict binary: name length, name, type byte, seqid.
OLD_BINARY_QUERY = bytes.fromhex("00000005" "7175657279" "01" "00000001" "0b0001" "00000001" "78" "00")
# The reply "xx" to the binary call: field 0 (success).
BINARY_REPLY = bytes.fromhex("80010002" "00000005" "7175657279" "00000001" "0b0000" "00000002" "7878" "00")
# A one-way log("hi"), seqid 2.
BINARY_ONEWAY = bytes.fromhex("80010004" "00000003" "6c6f67" "00000002" "0b0001" "00000002" "6869" "00")
COMPACT_ONEWAY = bytes.fromhex("82" "81" "02" "03" "6c6f67" "18" "02" "6869" "00")


def write(protocolClass, name, kind, seqid, fields):
    """
    Write a message with Apache Thrift's pure-Python protocol writers.

    @param fields: (id, type, value) of the top-level struct, values as in
        L{writeValue}.
    """
    buffer = TMemoryBuffer()
    protocol = protocolClass(buffer)
    protocol.writeMessageBegin(name, kind, seqid)
    writeValue(protocol, TType.STRUCT, fields)
    protocol.writeMessageEnd()
    return buffer.getvalue()


def writeValue(p, ttype, value):
    """
    Write one value: scalars as themselves, a struct as a list of (id, type,
    value), a list or set as (element type, items), a map as (key type,
    value type, pairs).
    """
    if ttype == TType.STRUCT:
        p.writeStructBegin("s")
        for fid, t, v in value:
            p.writeFieldBegin("f", t, fid)
            writeValue(p, t, v)
            p.writeFieldEnd()
        p.writeFieldStop()
        p.writeStructEnd()
    elif ttype in (TType.LIST, TType.SET):
        elementType, items = value
        (p.writeListBegin if ttype == TType.LIST else p.writeSetBegin)(elementType, len(items))
        for item in items:
            writeValue(p, elementType, item)
        (p.writeListEnd if ttype == TType.LIST else p.writeSetEnd)()
    elif ttype == TType.MAP:
        keyType, valueType, pairs = value
        p.writeMapBegin(keyType, valueType, len(pairs))
        for k, v in pairs:
            writeValue(p, keyType, k)
            writeValue(p, valueType, v)
        p.writeMapEnd()
    else:
        {
            TType.BOOL: p.writeBool,
            TType.BYTE: p.writeByte,
            TType.I16: p.writeI16,
            TType.I32: p.writeI32,
            TType.I64: p.writeI64,
            TType.DOUBLE: p.writeDouble,
            TType.STRING: p.writeBinary,
            TType.UUID: p.writeUuid,
        }[ttype](value)


# A struct with every type, nested containers, a field id delta above 15
# (compact's long field header) and a list of 20 (compact's long list
# header).
EVERYTHING = [
    (1, TType.BOOL, True),
    (2, TType.BOOL, False),
    (3, TType.BYTE, -7),
    (4, TType.I16, -300),
    (5, TType.I32, 2**31 - 1),
    (6, TType.I64, -(2**63)),
    (7, TType.DOUBLE, 2.5),
    (8, TType.STRING, b"\x00\xffbytes"),
    (9, TType.UUID, uuid.UUID(int=12345)),
    (10, TType.LIST, (TType.I32, list(range(20)))),
    (11, TType.SET, (TType.STRING, [b"a", b"bc", b""])),
    (12, TType.MAP, (TType.STRING, TType.I64, [(b"k", 1), (b"l", -1)])),
    (13, TType.MAP, (TType.I32, TType.LIST, [(1, (TType.STRING, [b"x"])), (2, (TType.STRING, []))])),
    (14, TType.STRUCT, [(1, TType.STRUCT, [(1, TType.LIST, (TType.BOOL, [True, False, True]))])]),
    (15, TType.LIST, (TType.STRUCT, [[(1, TType.I32, 1)], [], [(2, TType.DOUBLE, -1.0)]])),
    (16, TType.LIST, (TType.I64, [])),
    (17, TType.MAP, (TType.STRING, TType.STRING, [])),
    (300, TType.MAP, (TType.I16, TType.DOUBLE, [(1, 1.0), (2, 2.0)])),
    (-5, TType.I32, 5),
]

# (name, bytes, messages) fed to the buffered decoder.
BUFFERED_TABLE = [
    ("binary call", BINARY_QUERY, [BINARY_QUERY]),
    ("compact call", COMPACT_QUERY, [COMPACT_QUERY]),
    ("old binary call", OLD_BINARY_QUERY, [OLD_BINARY_QUERY]),
    ("binary reply", BINARY_REPLY, [BINARY_REPLY]),
    ("pipelined", BINARY_QUERY + BINARY_ONEWAY + BINARY_QUERY, [BINARY_QUERY, BINARY_ONEWAY, BINARY_QUERY]),
    ("pipelined compact", COMPACT_ONEWAY + COMPACT_QUERY, [COMPACT_ONEWAY, COMPACT_QUERY]),
    ("mixed protocols", COMPACT_QUERY + BINARY_QUERY + OLD_BINARY_QUERY, [COMPACT_QUERY, BINARY_QUERY, OLD_BINARY_QUERY]),
    ("empty struct", write(TBinaryProtocol, "m", TMessageType.REPLY, 7, []), None),
    ("everything binary", write(TBinaryProtocol, "every", TMessageType.CALL, 1, EVERYTHING), None),
    ("everything compact", write(TCompactProtocol, "every", TMessageType.CALL, 1, EVERYTHING), None),
    ("exception reply", encodeApplicationException("query", 3, BINARY, "boom", 6), None),
    ("compact exception reply", encodeApplicationException("query", 3, COMPACT, "boom", 6), None),
]


SINGLE_MESSAGES = [data for _, data, messages in BUFFERED_TABLE if messages is None or len(messages) == 1]


class GoldenVectorTests(SynchronousTestCase):
    """
    The hand-written vectors are what Apache Thrift and txscales write.
    """

    def test_apacheWritesTheVectors(self):
        """
        Apache Thrift's writers produce the golden call bytes.
        """
        fields = [(1, TType.STRING, b"x")]
        self.assertEqual(write(TBinaryProtocol, "query", TMessageType.CALL, 1, fields), BINARY_QUERY)
        self.assertEqual(write(TCompactProtocol, "query", TMessageType.CALL, 1, fields), COMPACT_QUERY)

    def test_callHeaders(self):
        """
        txscales writes the same call bytes for both protocols, one-way calls
        included.
        """
        for protocol, call, oneway in [(BINARY, BINARY_QUERY, BINARY_ONEWAY), (COMPACT, COMPACT_QUERY, COMPACT_ONEWAY)]:
            self.assertEqual(callHeader(QUERY, 1, protocol) + encodeArgs(QUERY, ("x",), {}, protocol), call)
            self.assertEqual(callHeader(LOG, 2, protocol) + encodeArgs(LOG, ("hi",), {}, protocol), oneway)

    def test_messageHeadersAsApache(self):
        """
        The one message-header encoder writes what Apache Thrift's
        C{writeMessageBegin} writes, in both protocols, for every message
        type, negative seqids and non-ASCII names included.
        """
        for protocol, protocolClass in [(BINARY, TBinaryProtocol), (COMPACT, TCompactProtocol)]:
            for name in ("query", "r\u00e9ponse", ""):
                for kind in (TMessageType.CALL, TMessageType.REPLY, TMessageType.EXCEPTION, TMessageType.ONEWAY):
                    for seqid in (0, 1, 300, 2**31 - 1, -1, -(2**31)):
                        buffer = TMemoryBuffer()
                        protocolClass(buffer).writeMessageBegin(name, kind, seqid)
                        header = encodeMessageHeader(protocol, name.encode("utf-8"), kind, seqid)
                        self.assertEqual(header, buffer.getvalue(), (protocol, name, kind, seqid))

    def test_messageType(self):
        """
        The message type is read from each header layout, without decoding.
        """
        self.assertEqual(
            [messageType(m) for m in (BINARY_QUERY, COMPACT_QUERY, OLD_BINARY_QUERY, BINARY_REPLY, COMPACT_ONEWAY)],
            [TMessageType.CALL, TMessageType.CALL, TMessageType.CALL, TMessageType.REPLY, TMessageType.ONEWAY],
        )
        self.assertIsNone(messageType(b"\x80"))


def feedAll(decoder, chunks):
    out = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


def oneByOne(data):
    return [data[i : i + 1] for i in range(len(data))]


class BufferedDecoderTests(SynchronousTestCase):
    """
    The buffered transport finds message ends by walking each message.
    """

    def assertTable(self, chunker):
        for name, data, messages in BUFFERED_TABLE:
            decoder = BufferedDecoder()
            self.assertEqual(feedAll(decoder, chunker(data)), messages or [data], name)
            self.assertEqual(decoder.pending, 0, name)

    def test_whole(self):
        """
        Each table entry fed at once gives its messages.
        """
        self.assertTable(lambda data: [data])

    def test_byteByByte(self):
        """
        Each table entry fed one byte at a time gives its messages, each as
        soon as its last byte arrives.
        """
        self.assertTable(oneByOne)
        decoder = BufferedDecoder()
        self.assertEqual(feedAll(decoder, oneByOne(BINARY_QUERY[:-1])), [])
        self.assertEqual(decoder.feed(BINARY_QUERY[-1:]), [BINARY_QUERY])

    def test_trailingBytes(self):
        """
        Bytes after the last complete message are kept for the next feed.
        """
        for name, data, messages in BUFFERED_TABLE:
            decoder = BufferedDecoder()
            self.assertEqual(decoder.feed(data + COMPACT_QUERY[:5]), messages or [data], name)
            self.assertEqual(decoder.pending, 5, name)
            self.assertEqual(decoder.feed(COMPACT_QUERY[5:]), [COMPACT_QUERY], name)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from(SINGLE_MESSAGES), min_size=1, max_size=5), st.data())
    def test_anyCuts(self, messages, data):
        """
        Back-to-back messages cut anywhere come out whole and in order.
        """
        stream = b"".join(messages)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
        chunks = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
        self.assertEqual(feedAll(BufferedDecoder(), chunks), messages)


def nested(depth, binary=True):
    """
    A binary message whose struct nests C{depth} structs in field 1.
    """
    inner = []
    for _ in range(depth):
        inner = [(1, TType.STRUCT, inner)]
    return write(TBinaryProtocol if binary else TCompactProtocol, "m", TMessageType.CALL, 1, inner)


class MalformedBufferedTests(SynchronousTestCase):
    """
    Bytes that are not Thrift messages fail with typed errors, as soon as
    the offending bytes (or a declared size) arrive.
    """

    def assertRejected(self, data, error, maxMessageSize=1024):
        decoder = BufferedDecoder(maxMessageSize)
        self.assertRaises(error, decoder.feed, data)
        decoder = BufferedDecoder(maxMessageSize)
        self.assertRaises(error, feedAll, decoder, oneByOne(data))

    def test_badVersions(self):
        """
        A binary version other than 1, or a compact one, is refused.
        """
        self.assertRejected(b"\x80\x02\x00\x01" + BINARY_QUERY[4:], BadMessageError)
        self.assertRejected(b"\x81\x01\x00\x01" + BINARY_QUERY[4:], BadMessageError)
        self.assertRejected(b"\x82\x22" + COMPACT_QUERY[2:], BadMessageError)

    def test_badMessageTypes(self):
        """
        Message types outside CALL, REPLY, EXCEPTION and ONEWAY are refused.
        """
        self.assertRejected(b"\x80\x01\x00\x05" + BINARY_QUERY[4:], BadMessageError)
        self.assertRejected(b"\x80\x01\x00\x00" + BINARY_QUERY[4:], BadMessageError)
        self.assertRejected(b"\x82\xa1" + COMPACT_QUERY[2:], BadMessageError)
        self.assertRejected(OLD_BINARY_QUERY[:9] + b"\x09" + OLD_BINARY_QUERY[10:], BadMessageError)

    def test_unknownTypes(self):
        """
        Field and element types that Thrift does not define are refused.
        """
        self.assertRejected(BINARY_QUERY[:17] + b"\x05" + BINARY_QUERY[18:], BadMessageError)
        self.assertRejected(COMPACT_QUERY[:9] + b"\x1e" + COMPACT_QUERY[10:], BadMessageError)
        badList = write(TBinaryProtocol, "m", TMessageType.CALL, 1, [(1, TType.LIST, (TType.I32, [1]))])
        at = badList.index(b"\x08\x00\x00\x00\x01")
        self.assertRejected(badList[:at] + b"\x01" + badList[at + 1 :], BadMessageError)

    def test_negativeSizes(self):
        """
        A negative string or container size is refused.
        """
        self.assertRejected(BINARY_QUERY[:20] + b"\xff\xff\xff\xff" + BINARY_QUERY[24:], BadMessageError)
        badList = write(TBinaryProtocol, "m", TMessageType.CALL, 1, [(1, TType.LIST, (TType.I32, [1]))])
        at = badList.index(b"\x08\x00\x00\x00\x01") + 1
        self.assertRejected(badList[:at] + b"\xff\xff\xff\xfe" + badList[at + 4 :], BadMessageError)

    def test_declaredSizesAboveMaximum(self):
        """
        A string, container or method name declared larger than the
        maximum is refused from its size alone, before its bytes arrive.
        """
        decoder = BufferedDecoder(1024)
        self.assertRaises(FrameTooLargeError, decoder.feed, BINARY_QUERY[:20] + b"\x00\x00\x04\x00")
        decoder = BufferedDecoder(1024)
        self.assertRaises(FrameTooLargeError, decoder.feed, COMPACT_QUERY[:10] + b"\x80\x10")
        decoder = BufferedDecoder(1024)
        self.assertRaises(FrameTooLargeError, decoder.feed, b"\x80\x01\x00\x01\x00\x00\x10\x00")
        listHeader = write(TBinaryProtocol, "m", TMessageType.CALL, 1, [(1, TType.LIST, (TType.STRUCT, []))])[:-6]
        decoder = BufferedDecoder(1024)
        self.assertRaises(FrameTooLargeError, decoder.feed, listHeader + b"\x0c\x00\x00\x04\x00")

    def test_notThrift(self):
        """
        An HTTP request is refused at once: read as an old binary header its
        name length is far above the maximum.
        """
        self.assertRejected(b"GET / HTTP/1.1\r\n", FrameTooLargeError)

    def test_overlongVarint(self):
        """
        A compact varint of more than 10 bytes is refused.
        """
        self.assertRejected(b"\x82\x21" + b"\xff" * 11, BadMessageError)

    def test_nestingLimit(self):
        """
        Structs nested up to the limit pass; one level more is refused.
        """
        for binary in (True, False):
            ok = nested(MAX_DEPTH - 1, binary)
            self.assertEqual(BufferedDecoder().feed(ok), [ok])
            self.assertRejected(nested(MAX_DEPTH, binary), BadMessageError, maxMessageSize=4096)

    def test_largeMessageCutManyTimes(self):
        """
        A message near the maximum, cut into many small chunks, is walked
        once: each chunk costs the bytes it brings, not the whole message.
        """
        items = [b"x" * 10] * 20000
        message = write(TCompactProtocol, "m", TMessageType.CALL, 1, [(1, TType.LIST, (TType.STRING, items))])
        decoder = BufferedDecoder(len(message))
        chunks = [message[i : i + 1000] for i in range(0, len(message), 1000)]
        self.assertEqual(feedAll(decoder, chunks), [message])
        self.assertRaises(FrameTooLargeError, feedAll, BufferedDecoder(len(message) - 1), chunks)


class FramedDecoderTests(SynchronousTestCase):
    """
    The framed transport: a 4-byte length before each message.
    """

    TABLE = [
        ("one", encodeFrame(BINARY_QUERY), [BINARY_QUERY]),
        (
            "three",
            encodeFrame(BINARY_QUERY) + encodeFrame(b"\x01") + encodeFrame(COMPACT_QUERY),
            [BINARY_QUERY, b"\x01", COMPACT_QUERY],
        ),
        ("exact prefix", bytes.fromhex("00000002abcd"), [b"\xab\xcd"]),
    ]

    def test_table(self):
        """
        Each entry fed whole, one byte at a time, and with trailing bytes
        gives its frames.
        """
        for name, data, frames in self.TABLE:
            self.assertEqual(FramedDecoder().feed(data), frames, name)
            decoder = FramedDecoder()
            self.assertEqual(feedAll(decoder, oneByOne(data)), frames, name)
            decoder = FramedDecoder()
            self.assertEqual(decoder.feed(data + b"\x00\x00\x00\x05ab"), frames, name)
            self.assertEqual(decoder.pending, 6, name)

    def test_tooLargeFromPrefix(self):
        """
        A length above the maximum is refused once the 4-byte prefix
        arrives, whatever follows.
        """
        decoder = FramedDecoder(100)
        self.assertEqual(decoder.feed(b"\x00\x00\x00"), [])
        self.assertRaises(FrameTooLargeError, decoder.feed, b"\x65")
        self.assertRaises(FrameTooLargeError, FramedDecoder().feed, b"\xff\xff\xff\xff")
        self.assertEqual(FramedDecoder(100).feed(b"\x00\x00\x00\x64" + b"x" * 100), [b"x" * 100])

    def test_emptyFrame(self):
        """
        A frame of length 0 is not a message.
        """
        self.assertRaises(BadMessageError, FramedDecoder().feed, b"\x00\x00\x00\x00")

    def test_makeDecoder(self):
        """
        Decoders are made by transport name; another name is a ValueError.
        """
        self.assertIsInstance(makeDecoder(FRAMED), FramedDecoder)
        self.assertIsInstance(makeDecoder(BUFFERED), BufferedDecoder)
        self.assertRaises(ValueError, makeDecoder, "http")


def reply(value, seqid=1, protocol=BINARY, method=QUERY):
    return encodeResult(method, seqid, protocol, value)


class ClientSessionTests(SynchronousTestCase):
    """
    One call at a time; replies must match the call's seqid and name.
    """

    def test_callBytes(self):
        """
        Calls are framed or not, in either protocol, with seqids counting up
        from 1 on the connection.
        """
        session = ClientSession(FRAMED, BINARY)
        self.assertEqual(session.call(QUERY, encodeArgs(QUERY, ("x",), {}, BINARY)), encodeFrame(BINARY_QUERY))
        session = ClientSession(BUFFERED, COMPACT)
        self.assertEqual(session.call(QUERY, encodeArgs(QUERY, ("x",), {}, COMPACT)), COMPACT_QUERY)
        self.assertEqual(session.receiveData(reply("xx", 1, COMPACT))[0].result(), "xx")
        data = session.call(QUERY, encodeArgs(QUERY, ("x",), {}, COMPACT))
        self.assertEqual(data[2], 2)

    def test_replyByteByByte(self):
        """
        A reply fed one byte at a time completes the call on its last byte.
        """
        for transport in (FRAMED, BUFFERED):
            session = ClientSession(transport, BINARY)
            session.call(QUERY, encodeArgs(QUERY, ("x",), {}, BINARY))
            data = BINARY_REPLY if transport == BUFFERED else encodeFrame(BINARY_REPLY)
            replies = [r for chunk in oneByOne(data) for r in session.receiveData(chunk)]
            self.assertEqual([r.result() for r in replies], ["xx"])
            self.assertIsNone(session.waiting)

    def test_declaredExceptionAndApplicationError(self):
        """
        A declared exception and a TApplicationException are the call's
        outcome, and leave the session usable.
        """
        session = ClientSession(BUFFERED, BINARY)
        session.call(QUERY, b"\x00")
        [r] = session.receiveData(encodeResult(QUERY, 1, BINARY, exception=InvalidQueryException(errorCode=3)))
        self.assertIsInstance(r.error, InvalidQueryException)
        self.assertEqual(r.error.errorCode, 3)
        session.call(QUERY, b"\x00")
        [r] = session.receiveData(encodeApplicationException("query", 2, BINARY, "no", TApplicationException.UNKNOWN_METHOD))
        self.assertIsInstance(r.error, ApplicationError)
        self.assertEqual(r.error.type, TApplicationException.UNKNOWN_METHOD)
        self.assertEqual(session.state, "open")

    def test_mismatches(self):
        """
        A reply with another seqid or method name, or one that comes while
        no call waits, is an UnexpectedMessageError and closes the session.
        """
        for data in [reply("xx", seqid=2), encodeResult(METHODS["raiseError"], 1, BINARY, "xx")]:
            session = ClientSession(BUFFERED, BINARY)
            session.call(QUERY, b"\x00")
            self.assertRaises(UnexpectedMessageError, session.receiveData, data)
            self.assertEqual(session.state, "closed")
        session = ClientSession(BUFFERED, BINARY)
        session.call(LOG, b"\x00")
        self.assertIsNone(session.waiting)
        self.assertRaises(UnexpectedMessageError, session.receiveData, reply("xx"))

    def test_malformedReplies(self):
        """
        An undecodable result struct, a reply in the other protocol, or a
        CALL instead of a reply is a BadMessageError.
        """
        for data in [BINARY_REPLY[:-3], reply("xx", protocol=COMPACT), BINARY_QUERY]:
            data = encodeFrame(data)
            session = ClientSession(FRAMED, BINARY)
            session.call(QUERY, b"\x00")
            self.assertRaises(BadMessageError, session.receiveData, data)

    def test_oneCallAtATime(self):
        """
        Starting a call while one waits is a programming error.
        """
        session = ClientSession()
        session.call(QUERY, b"\x00")
        self.assertRaises(RuntimeError, session.call, QUERY, b"\x00")

    def test_badOptions(self):
        """
        Unknown transport or protocol names are refused.
        """
        self.assertRaises(ValueError, ClientSession, "http", BINARY)
        self.assertRaises(ValueError, ClientSession, FRAMED, "json")


class ServerSessionTests(SynchronousTestCase):
    """
    Pipelined calls, answered in call order.
    """

    def test_inOrder(self):
        """
        Replies completed out of order are written in call order; one-way
        calls hold no place.
        """
        session = ServerSession(FRAMED)
        calls = session.receiveData(encodeFrame(BINARY_QUERY) + encodeFrame(BINARY_ONEWAY) + encodeFrame(COMPACT_QUERY))
        self.assertEqual([(c.requestId, c.oneway) for c in calls], [(1, False), (2, True), (3, False)])
        self.assertEqual(session.pendingCount, 2)
        self.assertFalse(session.reply(3, b"third"))
        self.assertFalse(session.reply(2, b"ignored"))
        self.assertEqual(session.dataToSend(), b"")
        self.assertTrue(session.reply(1, b"first"))
        self.assertEqual(session.dataToSend(), encodeFrame(b"first") + encodeFrame(b"third"))
        self.assertFalse(session.reply(1, b"again"))

    def test_emptyReply(self):
        """
        An empty reply (a one-way method called with a CALL message) writes
        nothing but frees its place.
        """
        session = ServerSession(BUFFERED)
        session.receiveData(BINARY_QUERY + BINARY_QUERY)
        self.assertFalse(session.reply(1, b""))
        self.assertTrue(session.reply(2, b"r"))
        self.assertEqual(session.dataToSend(), b"r")

    def test_notACall(self):
        """
        A client sending a REPLY is refused.
        """
        self.assertRaises(BadMessageError, ServerSession(BUFFERED).receiveData, BINARY_REPLY)

    def test_drain(self):
        """
        A draining session is ready to close once every reply is out.
        """
        session = ServerSession(BUFFERED)
        session.receiveData(BINARY_QUERY)
        self.assertFalse(session.readyToClose())
        session.drain()
        self.assertFalse(session.readyToClose())
        session.reply(1, b"r")
        self.assertFalse(session.readyToClose())
        session.dataToSend()
        self.assertTrue(session.readyToClose())
        session.connectionLost()
        self.assertEqual(session.state, "closed")
        self.assertFalse(session.reply(1, b"r"))
