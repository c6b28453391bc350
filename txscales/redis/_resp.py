"""
RESP, Redis' wire format: commands out, replies in.  Plain Python, no
Twisted.

A command is a RESP array of bulk strings (L{encodeCommand}); Redis speaks
it in both RESP2 and RESP3.  Replies are parsed by hiredis' C reader
(L{ReplyReader}), which knows both versions::

    reader = ReplyReader(maxReplyBytes=512 * 1024 * 1024)
    for reply in reader.feed(data):   # complete replies, in order
        ...

An error reply comes out as an instance of its L{RedisReplyError} class,
not raised: it fails the one command it answers.  A RESP3 push (pub/sub
messages, invalidations) comes out as a C{hiredis.PushNotification}, a
list, so that a connection can tell it from a reply.  Bytes that are not
RESP raise L{RedisProtocolError}, and so does every later call: the
connection is done.

What the reader can be made to hold is bounded: once more than
C{maxReplyBytes} were fed since the last call that completed a reply, it
raises L{ReplyTooLargeError}.  A large bulk string is refused that way
before more of it is buffered.  An aggregate's header (C{*100000000}) makes
hiredis allocate its element array at once but lazily (C{calloc}), so its
memory grows only with the elements that arrive, each of at least 3 bytes
fed; a header whose array cannot even be reserved gives
L{ReplyTooLargeError} too.

Not supported, because hiredis 3 does not tell them apart or does not parse
them: RESP3 attributes (C{|}, which Redis sends only after C{DEBUG PROTOCOL
attrib}) come out as a separate list before their reply, and blob errors
(C{!}, which Redis does not send) are a protocol error.
"""

from typing import Any, List, Optional, Sequence, Union

import hiredis
from hiredis import pack_command as _pack

from txscales.redis._errors import (
    RedisEncodeError,
    RedisError,
    RedisProtocolError,
    ReplyTooLargeError,
    errorFromReply,
)

CommandArgument = Union[bytes, bytearray, memoryview, str, int, float]
"""
What a command's argument may be: bytes as they are, C{str} in UTF-8,
C{int} and C{float} in decimal (a float as Python's C{repr}, which Redis
reads back to the same value).
"""

DEFAULT_MAX_REPLY_BYTES = 512 * 1024 * 1024
"""
The default bound of L{ReplyReader}: Redis' own largest bulk string
(C{proto-max-bulk-len}, 512 MiB).
"""

_NOT_ENOUGH_DATA = object()

_PIECE = 8192
"""
Bytes fed to hiredis at once.  After each reply, once past its buffer's
first KiB, hiredis moves the rest of its buffer to the front: a large read
fed whole costs time in the square of its length (100 replies of 1 KiB in
one read: 4 times as long as fed in pieces).
"""


class ReplyDecodeError(RedisError):
    """
    A reply (the command ran) had bytes that do not decode with the reader's
    encoding (C{decodeResponses=True} and a value that is not UTF-8); it
    fails that command only.

    @ivar reason: the C{UnicodeDecodeError}.
    """

    def __init__(self, reason: UnicodeDecodeError) -> None:
        """
        @param reason: what the decoder said.
        """
        RedisError.__init__(self, "a reply does not decode: %s" % (reason,))
        self.reason = reason


def _argument(argument: Any) -> bytes:
    kind = type(argument)
    if kind is bytes:
        return argument
    if kind is str:
        return argument.encode("utf-8")
    if kind is int:
        return b"%d" % (argument,)
    if kind is float:
        if argument != argument:
            raise RedisEncodeError("NaN is not a value Redis accepts")
        return repr(argument).encode("ascii")
    if kind is bytearray or kind is memoryview:
        return bytes(argument)
    if isinstance(argument, bool) or argument is None:
        raise RedisEncodeError("a command argument cannot be %r: send b'1'/b'0' or b'' explicitly" % (argument,))
    # Subclasses of the accepted types (an IntEnum, a str subclass).
    if isinstance(argument, str):
        return str(argument).encode("utf-8")
    if isinstance(argument, int):
        return b"%d" % (int(argument),)
    if isinstance(argument, float):
        return _argument(float(argument))
    if isinstance(argument, (bytes, bytearray, memoryview)):
        return bytes(argument)
    raise RedisEncodeError(
        "a command argument must be bytes, str, int or float, not %s" % (kind.__name__,)
    )


_PACKED = frozenset([bytes, str, int])
"""
The argument types hiredis' C{pack_command} encodes exactly as
L{encodeCommand} does (a float goes the long way: C{pack_command} would
take NaN, and a subclass's C{repr}).
"""


def encodeCommand(args: Sequence[CommandArgument]) -> bytes:
    """
    Encode one command.

    @param args: the command's name and arguments
        (C{(b"SET", "k", 1)}); see L{CommandArgument}.
    @return: the RESP array of bulk strings
        (C{*3\\r\\n$3\\r\\nSET\\r\\n$1\\r\\nk\\r\\n$1\\r\\n1\\r\\n}).
    @raise RedisEncodeError: for an empty command or an argument of another
        type.
    """
    if args:
        # The common case, in C: every argument bytes, str or int.
        for argument in args:
            if type(argument) not in _PACKED:
                break
        else:
            return _pack(args if type(args) is tuple else tuple(args))  # type: ignore[arg-type]
    return _encode(args)


def _encode(args: Sequence[CommandArgument]) -> bytes:
    if not args:
        raise RedisEncodeError("a command needs at least its name")
    parts = [b"*%d\r\n" % (len(args),)]
    append = parts.append
    for argument in args:
        # The common types first, without a call.
        kind = type(argument)
        data: bytes
        if kind is bytes:
            data = argument  # type: ignore[assignment]
        elif kind is str:
            data = argument.encode("utf-8")  # type: ignore[union-attr]
        else:
            data = _argument(argument)
        append(b"$%d\r\n" % (len(data),))
        append(data)
        append(b"\r\n")
    return b"".join(parts)


def encodeCommands(commands: Sequence[Sequence[CommandArgument]]) -> bytes:
    """
    Encode commands to send together (a pipeline).

    @param commands: each a sequence as for L{encodeCommand}.
    @return: their encodings, one after the other.
    @raise RedisEncodeError: as L{encodeCommand}, for any of them; then
        nothing is returned.
    """
    return b"".join([encodeCommand(command) for command in commands])


class ReplyReader:
    """
    Replies parsed from the bytes a server sends, by hiredis.

    @ivar maxReplyBytes: the bound on the bytes fed while no reply
        completes.
    """

    def __init__(
        self,
        maxReplyBytes: int = DEFAULT_MAX_REPLY_BYTES,
        encoding: Optional[str] = None,
    ) -> None:
        """
        @param maxReplyBytes: raise L{ReplyTooLargeError} once more than
            this many bytes were fed since the last call that completed a
            reply (so the reader holds at most this plus one call's bytes).
        @param encoding: decode bulk and simple strings with this codec
            (C{"utf-8"} for C{decodeResponses=True}); None leaves them
            bytes.  A reply that does not decode comes out as a
            L{ReplyDecodeError}.
        """
        if maxReplyBytes < 1:
            raise ValueError("maxReplyBytes must be positive, not %r" % (maxReplyBytes,))
        self.maxReplyBytes = maxReplyBytes
        self._reader = hiredis.Reader(
            protocolError=RedisProtocolError,
            replyError=errorFromReply,
            encoding=encoding,
            notEnoughData=_NOT_ENOUGH_DATA,
        )
        self._pending = 0
        self._failure: Optional[RedisProtocolError] = None

    def feed(self, data: bytes) -> List[Any]:
        """
        Parse bytes received.

        @param data: the next bytes from the server.
        @return: the replies they complete, in order: values (bytes, int,
            list, dict, None, ...; C{hiredis.PushNotification} for a RESP3
            push), L{RedisReplyError} instances for error replies,
            L{ReplyDecodeError} instances for replies that do not decode.
        @raise RedisProtocolError: when the bytes are not RESP, and on every
            call after that.  Its C{replies} are the complete replies that
            came before the bad bytes in this call (none in later calls).
        @raise ReplyTooLargeError: when more than C{maxReplyBytes} were fed
            without a reply completing, and on every call after that.
        """
        if self._failure is not None:
            self._failure.replies = []
            raise self._failure
        reader = self._reader
        replies: List[Any] = []
        size = len(data)
        offset = 0
        try:
            while True:
                if size > _PIECE:
                    reader.feed(data, offset, min(_PIECE, size - offset))
                else:
                    reader.feed(data)
                offset += _PIECE
                while True:
                    try:
                        reply = reader.gets()
                    except UnicodeDecodeError as e:
                        reply = ReplyDecodeError(e)
                    if reply is _NOT_ENOUGH_DATA:
                        break
                    replies.append(reply)
                if offset >= size:
                    break
        except RedisProtocolError as e:
            raise self._fail(e, replies)
        except MemoryError:
            raise self._fail(
                ReplyTooLargeError("a reply's aggregate header asks for more memory than there is"), replies
            )
        if replies:
            self._pending = 0
        else:
            self._pending += len(data)
            if self._pending > self.maxReplyBytes:
                raise self._fail(
                    ReplyTooLargeError(
                        "%d bytes received without a complete reply (maxReplyBytes %d)"
                        % (self._pending, self.maxReplyBytes)
                    ),
                    replies,
                )
        return replies

    def _fail(self, error: RedisProtocolError, replies: List[Any]) -> RedisProtocolError:
        error.replies = replies
        self._failure = error
        # Let go of what hiredis buffered.
        self._reader = hiredis.Reader()
        return error
