"""
Tests for the sans-IO length-prefix decoder shared by Mux and framed Thrift:
a table of (frames, exact bytes) fed whole, one byte at a time and with
trailing bytes, and lengths refused from their prefix alone.
"""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txscales._framing import LengthPrefixDecoder, encodeFrame
from txscales.errors import BadMessageError, FrameTooLargeError

TABLE = [
    ("empty stream", [], ""),
    ("one frame", [b"\xab\xcd"], "00000002abcd"),
    ("empty frame", [b""], "00000000"),
    ("two frames", [b"x", b"yz"], "0000000178" "00000002797a"),
    ("a Mux Tping", [bytes.fromhex("41000001")], "0000000441000001"),
    ("a frame of 300 bytes", [bytes(range(256)) + bytes(44)], "0000012c" + bytes(range(256)).hex() + "00" * 44),
]


def feedBytewise(decoder, data):
    frames = []
    for i in range(len(data)):
        frames.extend(decoder.feed(data[i : i + 1]))
    return frames


class TableTests(SynchronousTestCase):
    """
    Each stream of the table decodes to its frames however it is cut, and
    encodes back to its exact bytes.
    """

    def test_encode(self):
        """
        Each frame list encodes to exactly its bytes.
        """
        for name, frames, hexBytes in TABLE:
            self.assertEqual(b"".join(map(encodeFrame, frames)).hex(), hexBytes, name)

    def test_whole(self):
        """
        Each stream fed whole gives its frames and leaves nothing buffered.
        """
        for name, frames, hexBytes in TABLE:
            decoder = LengthPrefixDecoder(1024)
            self.assertEqual(decoder.feed(bytes.fromhex(hexBytes)), frames, name)
            self.assertEqual(decoder.bufferedSize(), 0, name)

    def test_bytewise(self):
        """
        Each stream fed one byte at a time gives its frames.
        """
        for name, frames, hexBytes in TABLE:
            decoder = LengthPrefixDecoder(1024)
            self.assertEqual(feedBytewise(decoder, bytes.fromhex(hexBytes)), frames, name)
            self.assertEqual(decoder.bufferedSize(), 0, name)

    def test_trailingBytes(self):
        """
        Bytes after the last whole frame are kept until the rest of their
        frame arrives, then complete it.
        """
        for name, frames, hexBytes in TABLE:
            decoder = LengthPrefixDecoder(1024)
            self.assertEqual(decoder.feed(bytes.fromhex(hexBytes) + b"\x00\x00\x00\x03a"), frames, name)
            self.assertEqual(decoder.bufferedSize(), 5, name)
            self.assertEqual(decoder.feed(b"b"), [], name)
            self.assertEqual(decoder.bufferedSize(), 6, name)
            self.assertEqual(decoder.feed(b"c\x00\x00"), [b"abc"], name)
            self.assertEqual(decoder.bufferedSize(), 2, name)

    def test_split(self):
        """
        C{split} gives the buffer and the end of each frame's payload, each
        payload starting four bytes after the previous end.
        """
        for name, frames, hexBytes in TABLE:
            buf, ends = LengthPrefixDecoder(1024).split(bytes.fromhex(hexBytes) + b"\x00")
            starts = [4] + [end + 4 for end in ends[:-1]]
            self.assertEqual([buf[start:end] for start, end in zip(starts, ends)], frames, name)

    @given(st.lists(st.binary(max_size=40), max_size=6), st.data())
    def test_anyCuts(self, frames, data):
        """
        Any frames, their bytes cut anywhere, decode to themselves.
        """
        stream = b"".join(map(encodeFrame, frames))
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
        decoder = LengthPrefixDecoder(40)
        decoded = []
        for start, end in zip([0] + cuts, cuts + [len(stream)]):
            decoded.extend(decoder.feed(stream[start:end]))
        self.assertEqual(decoded, frames)
        self.assertEqual(decoder.bufferedSize(), 0)

    def test_largeFrameInChunks(self):
        """
        A large frame arriving in many chunks is kept as those chunks and
        decodes once whole.
        """
        payload = bytes(range(256)) * 1024
        stream = encodeFrame(payload)
        decoder = LengthPrefixDecoder(len(payload))
        for i in range(0, len(stream) - 1000, 1000):
            self.assertEqual(decoder.feed(stream[i : i + 1000]), [])
            self.assertEqual(decoder.bufferedSize(), i + 1000)
        self.assertEqual(decoder.feed(stream[i + 1000 :]), [payload])
        self.assertEqual(decoder.bufferedSize(), 0)


class LimitTests(SynchronousTestCase):
    """
    A length outside the limits is refused as soon as its prefix is whole,
    before any byte of its frame is buffered.
    """

    def test_oversizedFromPrefix(self):
        """
        A 2 GiB length is refused from its four bytes alone, whole or cut.
        """
        e = self.assertRaises(FrameTooLargeError, LengthPrefixDecoder(1024).feed, b"\x80\x00\x00\x00")
        self.assertIn("2147483648", str(e))
        decoder = LengthPrefixDecoder(1024)
        self.assertEqual(decoder.feed(b"\x80\x00"), [])
        self.assertRaises(FrameTooLargeError, decoder.feed, b"\x00\x00")

    def test_oversizedAfterFrames(self):
        """
        An oversized length after whole frames is refused in the same feed.
        """
        decoder = LengthPrefixDecoder(4)
        self.assertRaises(FrameTooLargeError, decoder.feed, encodeFrame(b"ok") + b"\x00\x00\x00\x05")

    def test_atTheLimits(self):
        """
        Frames of exactly the minimum and maximum sizes are accepted; one
        byte less or more is refused, with the name given.
        """
        decoder = LengthPrefixDecoder(8, 4, "Mux frame")
        self.assertEqual(decoder.feed(encodeFrame(b"a" * 4) + encodeFrame(b"b" * 8)), [b"a" * 4, b"b" * 8])
        e = self.assertRaises(BadMessageError, LengthPrefixDecoder(8, 4).feed, encodeFrame(b"abc"))
        self.assertIn("3 bytes", str(e))
        e = self.assertRaises(FrameTooLargeError, LengthPrefixDecoder(8, 4, "Mux frame").feed, b"\x00\x00\x00\x09")
        self.assertIn("Mux frame of 9 bytes", str(e))
