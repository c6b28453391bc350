"""
Tests that a large frame trickled in small chunks is buffered in linear
time: each receive path keeps the chunks and joins them once, instead of
concatenating what it holds with each new chunk (which copies the frame
again per chunk: quadratic).
"""

import struct

from twisted.trial.unittest import SynchronousTestCase

from txscales._framing import LengthPrefixDecoder
from txscales.mux._messages import Tdispatch, encodeMessage
from txscales.mux._serversession import ServerSession as MuxServerSession
from txscales.thrift import FRAMED, FramedDecoder, encodeFrame
from txscales.thrift._session import ServerSession as ThriftServerSession
from txscales.thriftmux._vanilla import VanillaSession

MIB = 1024 * 1024
FRAME_SIZE = 16 * MIB
CHUNK = 4096


class Counted(bytes):
    """
    Received bytes that count the bytes copied by concatenating them with
    other bytes (C{held + chunk}, in either order).

    @cvar copied: bytes copied by concatenations so far.
    """

    copied = 0

    def __add__(self, other):
        Counted.copied += len(self) + len(other)
        return bytes(self) + bytes(other)

    def __radd__(self, other):
        if not isinstance(other, bytes):
            # bytearray += chunk: let bytearray extend itself in place
            # (amortised linear), which it does when this gives up.
            return NotImplemented
        Counted.copied += len(self) + len(other)
        return bytes(other) + bytes(self)


def thriftCall(size):
    """
    @return: a binary Thrift CALL of C{query(x)} of about C{size} bytes.
    """
    name = b"query"
    x = size - 30
    return (
        struct.pack(">Ii", 0x80010001, len(name))
        + name
        + struct.pack(">i", 1)
        + b"\x0b\x00\x01"
        + struct.pack(">i", x)
        + b"a" * x
        + b"\x00"
    )


class ChunkedFrameTests(SynchronousTestCase):
    """
    A 16 MiB frame fed in 4 KiB chunks to each receive path that buffers
    frames.
    """

    def setUp(self):
        Counted.copied = 0

    def feed(self, feed, data):
        """
        Feed C{data} to C{feed} in 4 KiB L{Counted} chunks.

        @return: what the calls returned, concatenated.
        """
        out = []
        for i in range(0, len(data), CHUNK):
            out += feed(Counted(data[i : i + CHUNK]))
        return out

    def assertLinear(self, data):
        # One frame: joining it once copies it once; anything that copies
        # what is held with each chunk copies about len(data) ** 2 / 8 KiB.
        self.assertLessEqual(Counted.copied, 2 * len(data))

    def test_lengthPrefixDecoder(self):
        """
        L{LengthPrefixDecoder} returns the frame, having copied its bytes
        a bounded number of times.
        """
        payload = b"p" * FRAME_SIZE
        frames = self.feed(LengthPrefixDecoder(FRAME_SIZE).feed, encodeFrame(payload) + encodeFrame(b"next"))
        self.assertEqual(frames, [payload, b"next"])
        self.assertLinear(payload)

    def test_framedThrift(self):
        """
        The framed Thrift decoder of the plain Thrift server and client.
        """
        message = thriftCall(FRAME_SIZE)
        self.assertEqual(self.feed(FramedDecoder(FRAME_SIZE).feed, encodeFrame(message)), [message])
        self.assertLinear(message)

    def test_plainThriftServer(self):
        """
        The plain Thrift server session, framed.
        """
        message = thriftCall(FRAME_SIZE)
        session = ThriftServerSession(FRAMED, FRAME_SIZE)
        [call] = self.feed(session.receiveData, encodeFrame(message))
        self.assertEqual(call.message, message)
        self.assertLinear(message)

    def test_downgradedThrift(self):
        """
        The downgraded (framed Thrift) session of a ThriftMux server.
        """
        message = thriftCall(FRAME_SIZE)
        session = VanillaSession(FRAME_SIZE)
        [dispatch] = self.feed(session.receiveData, encodeFrame(message))
        self.assertEqual(dispatch.body, message)
        self.assertLinear(message)

    def test_mux(self):
        """
        The Mux server session.
        """
        body = b"b" * (FRAME_SIZE - 100)
        session = MuxServerSession(FRAME_SIZE)
        [dispatch] = self.feed(session.receiveData, encodeMessage(Tdispatch(2, [], b"", [], body)))
        self.assertEqual(dispatch.body, body)
        self.assertLinear(body)
