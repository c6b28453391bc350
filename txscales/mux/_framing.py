"""
Mux framing: length prefixes and fragments.  Plain Python, no Twisted.

L{FrameDecoder} turns received bytes into messages, reassembling fragmented
C{Tdispatch}/C{Rdispatch}; L{encodeFrames} turns a message into the frames
to write, fragmenting its body to the peer's window.
"""

from struct import Struct
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union, cast

from txscales._framing import LengthPrefixDecoder
from txscales.errors import BadMessageError, FragmentLimitError, FrameTooLargeError, ProtocolError
from txscales.mux._fields import MAX_SHORT
from txscales.mux._messages import (
    FRAGMENT_BIT,
    FRAGMENTABLE,
    MAX_TAG,
    Message,
    T_DISPATCH,
    Tdispatch,
    R_DISCARDED,
    T_DISCARDED,
    T_DISCARDED_LEGACY,
    Tdiscarded,
    decodeMessage,
    encodeMessage,
    frameHeader,
)

DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024

_header = Struct(">BBH")
_short = Struct(">H")
_NO_PAIRS = _short.pack(0)
_dispatchHeader = Struct(">II")
_DISPATCH_TYPE = T_DISPATCH << 24

FRAGMENT_OVERHEAD = 64
"""What a fragment costs against its connection's fragment budget, beyond
its body: what holding it costs us, whatever its size."""
MAX_FRAGMENTED_TAGS = 256
"""How many fragmented messages a connection may have unfinished at once."""

KEYS_KEPT = 64
"""How many encoded context keys L{encodeDispatch} keeps in one C{keys}."""
KEY_SIZE_KEPT = 256
"""The longest context key L{encodeDispatch} keeps encoded."""


class EncodedContexts(list):
    """
    Context pairs that carry their wire form, C{encoded} (the count, then
    each pair), made by whoever built them: L{encodeDispatch} writes it as
    it is.  C{encoded} must match the pairs; a changed set of contexts is a
    new plain list.
    """

    __slots__ = ("encoded",)
    encoded: bytes

    @classmethod
    def of(cls, pairs: Sequence[Tuple[bytes, bytes]], encoded: bytes) -> "EncodedContexts":
        """
        @return: C{pairs} with their wire form C{encoded}.
        """
        # No __init__ of our own: list's, in C, is cheaper per call.
        contexts = cls(pairs)
        contexts.encoded = encoded
        return contexts


class FrameDecoder:
    """
    Decode a Mux byte stream into messages.

    Frames are cut by a L{LengthPrefixDecoder}, which holds the bytes of an
    incomplete frame and refuses an oversized length as soon as its four
    bytes arrive, before any of the frame is buffered.  Reassembled
    fragments are held to the same limit, and all the unfinished fragmented
    messages of the connection together to a budget: each fragment is
    charged its body and L{FRAGMENT_OVERHEAD} bytes (so empty fragments
    count too), and at most C{maxFragmentedTags} tags may be partly received
    at once.

    @param decode: makes a message of a frame, as
        L{txscales.mux._messages.decodeMessage} (the default) does; a
        session may decode its most common message more directly.
    @param maxFragmentBytes: the fragment budget of the connection, in
        bytes; the default, L{fragmentBudget}C{(maxFrameSize)}, holds one
        largest message.
    @param maxFragmentedTags: how many fragmented messages may be
        unfinished at once.
    """

    def __init__(
        self,
        maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
        decode: Callable[[int, int, bytes], Any] = decodeMessage,
        maxFragmentBytes: Optional[int] = None,
        maxFragmentedTags: int = MAX_FRAGMENTED_TAGS,
    ) -> None:
        # A frame holds at least its type and tag.
        self._frames = LengthPrefixDecoder(maxFrameSize, 4)
        self._decode = decode
        # By tag: [type, body bytes, body parts, bytes charged].
        self._fragments: Dict[int, List[Any]] = {}
        self._charged = 0
        self.maxFragmentBytes = fragmentBudget(maxFrameSize) if maxFragmentBytes is None else maxFragmentBytes
        self.maxFragmentedTags = maxFragmentedTags

    @property
    def maxFrameSize(self) -> int:
        """
        The largest frame (and reassembled message) accepted, counting
        type, tag and body.
        """
        return self._frames.maxFrameSize

    def feed(self, data: bytes) -> List[Any]:
        """
        Add received bytes.

        @return: the list of messages completed by them, in order.
        @raise FrameTooLargeError: for a frame above the limit.
        @raise FragmentLimitError: when unfinished fragments exceed the
            connection's budget.
        @raise BadMessageError: for a frame that does not decode; the stream
            cannot be trusted after that and the connection should close.
        """
        messages, error = self.feedUntilError(data)
        if error is not None:
            raise error
        return messages

    def feedUntilError(self, data: bytes) -> Tuple[List[Message], Optional[ProtocolError]]:
        """
        Add received bytes, keeping the messages completed before a frame
        that breaks the protocol.

        @return: C{(messages, error)}: the messages completed, in order, up
            to the first bad frame; and the L{ProtocolError} that frame
            raised (the stream cannot be trusted after it: do not feed the
            decoder again), or None.
        """
        buf, ends, error = self._frames.splitUntilError(data)
        if not ends and error is None:
            # A frame still incomplete: what a peer trickling bytes costs.
            return [], None
        messages = []
        start = 0
        try:
            for end in ends:
                typeByte, tagHigh, tagLow = _header.unpack_from(buf, start + 4)
                typeCode = typeByte - 256 if typeByte > 127 else typeByte
                tag = (tagHigh << 16) | tagLow
                body = buf[start + 8 : end]
                start = end
                if tag & FRAGMENT_BIT or self._fragments:
                    message = self._reassemble(typeCode, tag, body)
                    if message is not None:
                        messages.append(message)
                    continue
                messages.append(self._decode(typeCode, tag, body))
        except ProtocolError as e:
            # Without its traceback, the error holds none of our buffers.
            error = e.with_traceback(None)
        if error is not None:
            self._fragments.clear()
            self._charged = 0
        return messages, error

    def _reassemble(self, typeCode, tag, body):
        """
        Handle a frame while fragments may be pending.

        @return: a message, or None when the frame was an inner fragment.
        """
        plainTag = tag & ~FRAGMENT_BIT
        fragments = self._fragments
        pending = fragments.get(plainTag)
        if tag & FRAGMENT_BIT:
            if typeCode not in FRAGMENTABLE:
                raise BadMessageError("message type %d cannot be fragmented" % (typeCode,))
            if pending is None:
                if len(fragments) >= self.maxFragmentedTags:
                    raise FragmentLimitError(
                        "more than %d fragmented messages open at once" % (self.maxFragmentedTags,)
                    )
                pending = fragments[plainTag] = [typeCode, 0, [], 0]
            elif pending[0] != typeCode:
                raise BadMessageError("fragments of tag %d change type" % (plainTag,))
            pending[1] += len(body)
            if pending[1] > self.maxFrameSize:
                raise FrameTooLargeError(
                    "fragmented message of tag %d exceeds the limit of %d"
                    % (plainTag, self.maxFrameSize)
                )
            charge = len(body) + FRAGMENT_OVERHEAD
            pending[3] += charge
            self._charged += charge
            if self._charged > self.maxFragmentBytes:
                raise FragmentLimitError(
                    "unfinished fragmented messages exceed the connection's budget of %d bytes"
                    % (self.maxFragmentBytes,)
                )
            pending[2].append(body)
            return None
        if pending is not None:
            self._drop(plainTag)
            if pending[0] == typeCode:
                pending[2].append(body)
                body = b"".join(pending[2])
                if len(body) > self.maxFrameSize:
                    raise FrameTooLargeError(
                        "fragmented message of tag %d exceeds the limit of %d"
                        % (plainTag, self.maxFrameSize)
                    )
            # A different terminating type (TdispatchError, Rerr) ends the
            # sequence: its fragments are dropped and the frame stands alone.
        message = self._decode(typeCode, plainTag, body)
        if typeCode in (T_DISCARDED, T_DISCARDED_LEGACY):
            self._drop(cast(Tdiscarded, message).which)
        elif typeCode == R_DISCARDED:
            self._drop(plainTag)
        return message

    def _drop(self, tag: int) -> None:
        pending = self._fragments.pop(tag, None)
        if pending is not None:
            self._charged -= pending[3]

    def bufferedSize(self) -> int:
        """
        @return: how many received bytes are held waiting for the rest of
            their frame or message.
        """
        # Asked after every read (the server's read timeout): without
        # fragments pending, skip the sum.
        if not self._fragments:
            return self._frames.bufferedSize()
        return self._frames.bufferedSize() + sum(p[1] for p in self._fragments.values())

    def fragmentBytes(self) -> int:
        """
        @return: how much of the fragment budget unfinished messages use.
        """
        return self._charged


def fragmentBudget(maxFrameSize: int) -> int:
    """
    @return: the default fragment budget of a connection whose largest
        frame is C{maxFrameSize}: one largest message, plus a sixteenth for
        the overhead charged per fragment (fragments of 1 KiB or more fit).
    """
    return maxFrameSize + maxFrameSize // 16


def encodeFrames(message: Message, window: Optional[int] = None) -> bytes:
    """
    Encode a message as the frames to write.

    @param window: the largest body the peer accepts in one frame (its
        C{mux-framer} header), or None for no fragmentation.
    @return: bytes of one or more frames, concatenated.
    """
    if message.type not in FRAGMENTABLE:
        return encodeMessage(message)
    parts = message.bodyParts()
    size = sum(map(len, parts))
    if window is None or size <= window:
        # One join: the header and the body's parts, copied once.
        parts.insert(0, frameHeader(message.type, message.tag, size))
        return b"".join(parts)
    body = b"".join(parts)
    typeCode = message.wireType()
    parts = []
    last = len(body) - window
    offset = 0
    while offset < last:
        parts.append(frameHeader(typeCode, message.tag | FRAGMENT_BIT, window))
        parts.append(body[offset : offset + window])
        offset += window
    parts.append(frameHeader(typeCode, message.tag, len(body) - offset))
    parts.append(body[offset:])
    return b"".join(parts)


def encodeDispatch(
    tag: int,
    contexts: Sequence[Tuple[bytes, bytes]],
    dst: Union[bytes, str],
    dtab: Sequence[Tuple[bytes, bytes]],
    body: bytes,
    window: Optional[int] = None,
    keys: Optional[Dict[bytes, bytes]] = None,
) -> bytes:
    """
    Encode a C{Tdispatch} straight from its fields, without making a
    L{txscales.mux._messages.Tdispatch}: the bytes of
    C{encodeFrames(Tdispatch(tag, contexts, dst, dtab, body), window)}.

    @param keys: a dict the caller keeps from call to call (a session
        keeps one): context keys already encoded (length and bytes), by
        key.  Up to L{KEYS_KEPT} keys of up to L{KEY_SIZE_KEPT} bytes are
        added to it, whatever keys the contexts passed on from a peer carry.
    """
    # The common case in one pass: no dtab, fields that fit, one frame.
    # Anything else goes through the message class, which raises the
    # precise error.
    if dtab or type(dst) is not bytes or len(dst) > MAX_SHORT or not 0 <= tag <= MAX_TAG or len(contexts) > MAX_SHORT:
        return encodeFrames(Tdispatch(tag, contexts, dst, dtab, body), window)
    pack = _short.pack
    if type(contexts) is EncodedContexts:
        encoded = contexts.encoded
        size = len(encoded) + 4 + len(dst) + len(body)
        if window is None or size <= window:
            header = _dispatchHeader.pack(size + 4, _DISPATCH_TYPE | tag)
            return b"".join((header, encoded, pack(len(dst)), dst, _NO_PAIRS, body))
    # The first part, the frame header, is known last.
    parts = [b"", pack(len(contexts))]
    size = 6 + len(dst) + len(body)
    if keys is None:
        keys = {}
    for k, v in contexts:
        # A client sends the same few keys on every call: each is encoded
        # once per session.  Saves ~0.7 us per call with Finagle's four
        # contexts (hotpath.py, mux-contexts, client: 8.0-8.4 vs 9.1 us).
        key = keys.get(k) if type(k) is bytes else None
        if key is None:
            if len(k) > MAX_SHORT:
                return encodeFrames(Tdispatch(tag, contexts, dst, dtab, body), window)
            key = pack(len(k)) + k
            if type(k) is bytes and len(k) <= KEY_SIZE_KEPT and len(keys) < KEYS_KEPT:
                keys[k] = key
        nv = len(v)
        if nv > MAX_SHORT:
            return encodeFrames(Tdispatch(tag, contexts, dst, dtab, body), window)
        parts += (key, pack(nv), v)
        size += len(key) + nv + 2
    parts += (pack(len(dst)), dst, _NO_PAIRS, body)
    if window is not None and size > window:
        return encodeFrames(Tdispatch(tag, contexts, dst, dtab, body), window)
    parts[0] = _dispatchHeader.pack(size + 4, _DISPATCH_TYPE | tag)
    return b"".join(parts)
