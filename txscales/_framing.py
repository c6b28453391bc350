"""
Length-prefixed frames, sans-IO: each frame is preceded by its length, a
4-byte big-endian unsigned integer.  Plain Python, no Twisted.

Mux frames (L{txscales.mux}), framed Thrift (L{txscales.thrift}) and the
framed Thrift clients of a ThriftMux server all arrive this way;
L{LengthPrefixDecoder} is the one place their received bytes wait for the
rest of their frame.
"""

from struct import Struct
from typing import List, Optional, Tuple

from txscales.errors import BadMessageError, FrameTooLargeError, ProtocolError

_length = Struct(">I")


class LengthPrefixDecoder:
    """
    Split a byte stream into length-prefixed frames.

    A length is checked against C{maxFrameSize} and C{minFrameSize} as soon
    as its four bytes arrive, so an oversized frame is refused before any
    of it is buffered.  Bytes of an incomplete frame are kept as the chunks
    they arrived in and joined once, when the frame is complete.

    @ivar maxFrameSize: the largest frame accepted, its length prefix not
        counted.
    @ivar minFrameSize: the smallest frame accepted.
    @ivar name: what a frame is called in error messages.
    """

    def __init__(self, maxFrameSize: int, minFrameSize: int = 0, name: str = "frame") -> None:
        self.maxFrameSize = maxFrameSize
        self.minFrameSize = minFrameSize
        self.name = name
        # Received bytes not yet part of a complete frame, as they came.
        self._chunks: List[bytes] = []
        self._buffered = 0
        # The size (length prefix included) of the frame the chunks start,
        # once its prefix is known; 0 before.
        self._need = 0

    def bufferedSize(self) -> int:
        """
        @return: how many received bytes wait for the rest of their frame.
        """
        return self._buffered

    def feed(self, data: bytes) -> List[bytes]:
        """
        Add received bytes.

        @return: the frames they completed, in order, without their length
            prefixes.
        @raise FrameTooLargeError: for a length above C{maxFrameSize}.
        @raise BadMessageError: for a length below C{minFrameSize}.  After
            either error the stream cannot be trusted: do not feed the
            decoder again.
        """
        buf, ends = self.split(data)
        frames = []
        start = 4
        for end in ends:
            frames.append(buf[start:end])
            start = end + 4
        return frames

    def split(self, data: bytes) -> Tuple[bytes, List[int]]:
        """
        Add received bytes, and say where the frames they completed are,
        without copying them out: what L{feed} does, for a decoder that
        reads each frame's own header in place.

        @return: C{(buf, ends)}: C{buf} starts with the first frame
            completed, length prefix included; each frame's payload ends at
            its offset in C{ends} and starts four bytes after the previous
            end (at offset 4 for the first).
        @raise FrameTooLargeError: see L{feed}.
        @raise BadMessageError: see L{feed}.
        """
        buf, ends, error = self.splitUntilError(data)
        if error is not None:
            raise error
        return buf, ends

    def splitUntilError(self, data: bytes) -> Tuple[bytes, List[int], Optional[ProtocolError]]:
        """
        What L{split} does, but a bad length does not hide the frames
        completed before it.

        @return: C{(buf, ends, error)}: C{buf} and C{ends} as L{split}
            returns them, for the frames before a bad length; C{error} is
            the L{FrameTooLargeError} or L{BadMessageError} that length
            makes (the stream cannot be trusted after it: do not feed the
            decoder again), or None.
        """
        if self._buffered:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered < (self._need or 4):
                return b"", [], None
            buf = b"".join(self._chunks)
            self._chunks = []
            self._buffered = self._need = 0
        else:
            buf = data
        size = len(buf)
        offset = 0
        ends: List[int] = []
        maxFrameSize = self.maxFrameSize
        minFrameSize = self.minFrameSize
        while size - offset >= 4:
            length = _length.unpack_from(buf, offset)[0]
            if length > maxFrameSize or length < minFrameSize:
                # Nothing after a bad length is kept.
                return buf, ends, self._refusal(length)
            end = offset + 4 + length
            if end > size:
                self._need = length + 4
                break
            ends.append(end)
            offset = end
        if offset < size:
            self._chunks.append(buf[offset:] if offset else buf)
            self._buffered = size - offset
        return buf, ends, None

    def _refusal(self, length: int) -> ProtocolError:
        if length > self.maxFrameSize:
            return FrameTooLargeError(
                "%s of %d bytes exceeds the limit of %d" % (self.name, length, self.maxFrameSize)
            )
        return BadMessageError(
            "%s of %d bytes is shorter than the minimum of %d" % (self.name, length, self.minFrameSize)
        )


def encodeFrame(payload: bytes) -> bytes:
    """
    @return: C{payload} as one frame: its length prefix, then itself.
    """
    return _length.pack(len(payload)) + payload
