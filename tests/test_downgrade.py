"""
Tests for the ThriftMux server's downgrade of framed Thrift and TTwitter
clients (MUX.md 2.3), with Finagle's captured bytes.
"""

from thrift.protocol.TCompactProtocol import TCompactProtocol
from thrift.Thrift import TMessageType
from thrift.transport.TTransport import TMemoryBuffer
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales.thriftmux._server import serverFactory
from txscales.thriftmux._vanilla import looksLikeThrift

G11_CALL = bytes.fromhex("0000001b80010001000000057175657279000000000b0001000000026f6b00")
G11_REPLY = bytes.fromhex("0000001d80010002000000057175657279000000000b0000000000046f6b6f6b00")
G12_CALL = bytes.fromhex("00000028800100010000001b5f5f63616e5f5f66696e61676c655f5f74726163655f5f76335f5f0000000000")
G12_REPLY = bytes.fromhex("00000028800100020000001b5f5f63616e5f5f66696e61676c655f5f74726163655f5f76335f5f0000000000")
G13_REPLY = bytes.fromhex("0000001e0080010002000000057175657279000000000b0000000000046f6b6f6b00")
# A TTwitter RequestHeader: trace_id=1, span_id=2, flags=0, contexts
# [(b"k", b"v")], client_id {name: "cid"}, then STOP.
HEADER = bytes.fromhex(
    "0a00010000000000000001"
    "0a00020000000000000002"
    "0a00070000000000000000"
    "0f00080c00000001" "0b0001000000016b" "0b00020000000176" "00"
    "0c0006" "0b000100000003636964" "00"
    "00"
)


def frame(payload):
    return len(payload).to_bytes(4, "big") + payload


class Recorder(TestServiceHandler):
    """
    The demo handler, recording contexts and holding delayed answers.
    """

    def __init__(self):
        TestServiceHandler.__init__(self, Clock())
        self.waiting = []

    def delayedQuery(self, x, delayMs):
        d = Deferred()
        self.waiting.append((x, d))
        return d


class DowngradeTests(SynchronousTestCase):
    """
    Framed Thrift and TTwitter clients are served on the Mux port.
    """

    def setUp(self):
        self.handler = Recorder()
        self.factory = serverFactory(TestService.Iface, self.handler, Clock())
        self.protocol = self.factory.buildProtocol(None)
        self.transport = StringTransportWithDisconnection()
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)

    def test_detection(self):
        """
        Binary CALL/ONEWAY, compact and non-strict Thrift look like Thrift;
        Mux messages do not.
        """
        self.assertTrue(looksLikeThrift(G11_CALL))
        self.assertTrue(looksLikeThrift(bytes.fromhex("0000001080010004")))
        self.assertTrue(looksLikeThrift(bytes.fromhex("0000001082210000")))
        self.assertTrue(looksLikeThrift(bytes.fromhex("0000001000000005")))
        self.assertFalse(looksLikeThrift(bytes.fromhex("0000000f7f00000174696e6974")))
        self.assertFalse(looksLikeThrift(bytes.fromhex("0000000441000001")))
        self.assertFalse(looksLikeThrift(bytes.fromhex("0000000880000003626f6f6d")))

    def test_vanillaBinary(self):
        """
        A framed binary call gets Finagle's exact reply (G11), byte by byte
        or whole.
        """
        for i in range(len(G11_CALL)):
            self.protocol.dataReceived(G11_CALL[i : i + 1])
        self.assertEqual(self.transport.value(), G11_REPLY)
        self.transport.clear()
        self.protocol.dataReceived(G11_CALL * 3)
        self.assertEqual(self.transport.value(), G11_REPLY * 3)

    def test_vanillaCompact(self):
        """
        A framed compact call is answered in the compact protocol.
        """
        buffer = TMemoryBuffer()
        proto = TCompactProtocol(buffer)
        proto.writeMessageBegin("query", TMessageType.CALL, 5)
        TestService.query_args(x="ok").write(proto)
        proto.writeMessageEnd()
        self.protocol.dataReceived(frame(buffer.getvalue()))
        reply = self.transport.value()[4:]
        self.assertEqual(reply[:1], b"\x82")
        proto = TCompactProtocol(TMemoryBuffer(reply))
        self.assertEqual(proto.readMessageBegin(), ("query", TMessageType.REPLY, 5))
        result = TestService.query_result()
        result.read(proto)
        self.assertEqual(result.success, "okok")

    def test_repliesInOrder(self):
        """
        Calls are dispatched concurrently and answered in call order.
        """
        calls = b"".join(
            frame(_call("delayedQuery", TestService.delayedQuery_args(x=x, delayMs=1), i))
            for i, x in enumerate(["a", "b"])
        )
        self.protocol.dataReceived(calls)
        (xa, da), (xb, db) = self.handler.waiting
        db.callback("BB")
        self.assertEqual(self.transport.value(), b"")
        da.callback("AA")
        replies = self.transport.value()
        self.assertIn(b"AA", replies[: len(replies) // 2])
        self.assertIn(b"BB", replies[len(replies) // 2 :])

    def test_oneway(self):
        """
        A one-way call runs the handler and writes nothing.
        """
        self.protocol.dataReceived(frame(_call("log", TestService.log_args(message="hi"), 0, TMessageType.ONEWAY)))
        self.assertEqual(self.handler.messages, ["hi"])
        self.assertEqual(self.transport.value(), b"")

    def test_ttwitter(self):
        """
        The TTwitter upgrade gets Finagle's exact reply (G12), later calls
        carry a RequestHeader whose contexts reach the handler, and replies
        carry an empty ResponseHeader (G13).
        """
        seen = []
        original = self.handler.query

        def query(x):
            from txscales.thriftmux import currentRequest

            seen.append(currentRequest.get())
            return original(x)

        self.handler.query = query
        self.factory = serverFactory(TestService.Iface, self.handler, Clock())
        self.setUpProtocol()
        self.protocol.dataReceived(G12_CALL)
        self.assertEqual(self.transport.value(), G12_REPLY)
        self.transport.clear()
        self.protocol.dataReceived(frame(HEADER + G11_CALL[4:]))
        self.assertEqual(self.transport.value(), G13_REPLY)
        [request] = seen
        self.assertEqual(request.clientId, "cid")
        self.assertEqual((request.trace.traceId, request.trace.spanId), (1, 2))
        self.assertIn((b"k", b"v"), request.contexts)

    def setUpProtocol(self):
        self.protocol = self.factory.buildProtocol(None)
        self.transport = StringTransportWithDisconnection()
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)

    def test_garbageClosesConnection(self):
        """
        A frame that is neither Mux nor Thrift closes the connection.
        """
        self.protocol.dataReceived(frame(b"\x00\x00\x00\x05junk!"))
        self.assertFalse(self.transport.connected)

    def test_drainWaitsForIdle(self):
        """
        Draining a downgraded session closes it once its calls are answered.
        """
        self.protocol.dataReceived(frame(_call("delayedQuery", TestService.delayedQuery_args(x="a", delayMs=1), 0)))
        done = self.factory.drainAll(timeout=5)
        self.assertTrue(self.transport.connected)
        self.handler.waiting[0][1].callback("AA")
        self.assertFalse(self.transport.connected)
        self.successResultOf(done)


def _call(name, args, seqid, messageType=TMessageType.CALL):
    from thrift.protocol.TBinaryProtocol import TBinaryProtocol

    buffer = TMemoryBuffer()
    proto = TBinaryProtocol(buffer)
    proto.writeMessageBegin(name, messageType, seqid)
    args.write(proto)
    proto.writeMessageEnd()
    return buffer.getvalue()
