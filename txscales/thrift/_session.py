"""
Plain Thrift connections, sans-IO: the client side (one call at a time, or
several pipelined; sequence ids checked, replies in call order) and the
server side (calls pipelined, answered in order).  Plain Python, no Twisted::

    session = ClientSession(FRAMED, BINARY)
    transport.write(session.call(method, argsBytes))
    for reply in session.receiveData(received):   # Reply events
        ...
"""

from collections import deque
from struct import Struct
from typing import Deque, Dict, List, Tuple

from thrift.Thrift import TMessageType

from txscales.errors import BadMessageError, ProtocolError, UnexpectedMessageError
from txscales.thrift._codec import BINARY, PROTOCOLS, Method, decodeReply, encodeArgs, readMessageBegin
from txscales.thrift._framing import DEFAULT_MAX_MESSAGE_SIZE, FRAMED, encodeFrame, makeDecoder, messageType


_seqidBytes = Struct(">i").pack


def callHeader(method, seqid, protocol):
    """
    @return: the message header of a call (or one-way call) of C{method}
        with C{seqid}, in C{protocol} (L{BINARY} or L{COMPACT}).
    """
    return method.callHeader(seqid, protocol)


def checkOptions(transport, protocol):
    """
    @raise ValueError: for an unknown transport or protocol name.
    """
    makeDecoder(transport, 1)
    if protocol not in PROTOCOLS:
        raise ValueError("unknown Thrift protocol %r (expected %s)" % (protocol, " or ".join(PROTOCOLS)))


class Reply:
    """
    The answer to a call.

    @ivar method: the L{txscales.thrift._codec.Method} called.
    @ivar value: the returned value (None for void methods and failures).
    @ivar error: the declared exception or L{txscales.errors.ApplicationError}
        the server answered with, or None.
    """

    __slots__ = ("method", "value", "error")

    def __init__(self, method, value=None, error=None) -> None:
        self.method = method
        self.value = value
        self.error = error

    def result(self):
        """
        @return: the value.
        @raise Exception: the error, as itself.
        """
        if self.error is not None:
            raise self.error
        return self.value

    def __repr__(self) -> str:
        return "<Reply %s value=%r error=%r>" % (self.method.name, self.value, self.error)


class ClientSession:
    """
    The client side of one plain Thrift connection: at most
    C{maxOutstanding} calls wait for their replies (1 unless pipelined),
    which must come in call order.  Sequence ids count up from 1 on each
    connection; a reply must carry the seqid and method name of the oldest
    call waiting.

    Any L{ProtocolError} (an undecodable, oversized, unexpected,
    out-of-order or mismatched reply) closes the session: the connection
    must be closed and every call waiting failed with that error (each was
    written, so each may have reached the server).

    @ivar state: C{"open"} or C{"closed"}.
    @ivar maxOutstanding: how many calls may wait for their reply at once.
    """

    def __init__(
        self, transport=FRAMED, protocol=BINARY, maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE, maxOutstanding=1
    ) -> None:
        checkOptions(transport, protocol)
        if maxOutstanding < 1:
            raise ValueError("maxOutstanding must be at least 1, not %r" % (maxOutstanding,))
        self._decoder = makeDecoder(transport, maxMessageSize)
        self._framed = transport == FRAMED
        self._protocol = protocol
        self._binary = protocol == BINARY
        self._seqid = 0
        # (seqid, method) of each call waiting, oldest first.
        self._expected: Deque[Tuple[int, Method]] = deque()
        self.maxOutstanding = maxOutstanding
        self.state = "open"

    @property
    def waiting(self):
        """
        The method whose reply comes next, or None.
        """
        return self._expected[0][1] if self._expected else None

    @property
    def outstanding(self):
        """
        How many calls wait for their reply.
        """
        return len(self._expected)

    def call(self, method, argsBytes):
        """
        Start a call of C{method}, whose encoded args struct is
        C{argsBytes} (see L{encodeArgs}).

        @return: the bytes to write.  A one-way call expects no reply.
        @raise RuntimeError: when C{maxOutstanding} calls wait or the
            session is closed.
        """
        if len(self._expected) >= self.maxOutstanding or self.state != "open":
            raise RuntimeError("this plain Thrift connection has no room for another call")
        self._seqid = seqid = (self._seqid % 0x7FFFFFFF) + 1
        message = method.callHeader(seqid, self._protocol) + argsBytes
        if not method.oneway:
            self._expected.append((seqid, method))
        return encodeFrame(message) if self._framed else message

    def receive(self, data):
        """
        Handle bytes from the server.

        @return: (the L{Reply}s, in call order; the L{ProtocolError} that
            closed the session after them, or None).
        """
        replies = []
        try:
            for message in self._decoder.feed(data):
                replies.append(self._reply(message))
        except ProtocolError as e:
            self.connectionLost()
            return replies, e
        return replies, None

    def receiveData(self, data):
        """
        Handle bytes from the server.

        @return: a list of L{Reply}, in call order.
        @raise ProtocolError: see the class docstring.
        """
        replies, error = self.receive(data)
        if error is not None:
            raise error
        return replies

    def _reply(self, message):
        if not self._expected:
            raise UnexpectedMessageError("a Thrift message arrived while no call waits for a reply")
        expected, method = self._expected[0]
        header = method.replyHeader
        if self._binary and message.startswith(header) and message[len(header) : len(header) + 4] == _seqidBytes(expected):
            # The common reply: binary, strict, to the call expected.
            self._expected.popleft()
        else:
            protocol, name, kind, seqid, _ = readMessageBegin(message)
            if protocol != self._protocol:
                raise BadMessageError("a %s reply to a %s call of %s" % (protocol, self._protocol, method.name))
            if seqid != expected or name != method.name:
                raise UnexpectedMessageError(
                    "reply %r seqid %d does not answer the call %r seqid %d, the oldest waiting"
                    % (name, seqid, method.name, expected)
                )
            self._expected.popleft()
        try:
            return Reply(method, decodeReply(method, message))
        except ProtocolError:
            raise
        except Exception as e:
            # A declared exception or an ApplicationError: the connection
            # is still in step.
            return Reply(method, error=e)

    def connectionLost(self) -> None:
        """
        The connection is gone: no call waits any more.
        """
        self.state = "closed"
        self._expected.clear()


class Call:
    """
    A call the server received.

    @ivar requestId: its number on the connection, for L{ServerSession.reply}.
    @ivar message: the Thrift message bytes (unframed).
    @ivar oneway: whether the client waits for no reply.
    """

    __slots__ = ("requestId", "message", "oneway")

    def __init__(self, requestId, message, oneway) -> None:
        self.requestId = requestId
        self.message = message
        self.oneway = oneway

    def __repr__(self) -> str:
        return "<Call %d oneway=%r %r>" % (self.requestId, self.oneway, self.message[:32])


class InOrderReplies:
    """
    The reply order of a server session whose replies go out in call
    order: calls are numbered as they arrive, may be answered in any order,
    and their answers are written in call order.  A one-way call holds no
    place in the order.

    @ivar state: C{"open"}, C{"draining"} (close once every reply is
        written) or C{"closed"}.
    """

    def __init__(self) -> None:
        self._queue: Deque[int] = deque()
        self._answers: Dict[int, bytes] = {}
        self._out: List[bytes] = []
        self._nextId = 0
        self.state = "open"

    @property
    def pendingCount(self):
        """
        How many calls wait for their reply to be written.
        """
        return len(self._queue)

    def _received(self, oneway):
        """
        Number a call that arrived.

        @return: its id.
        """
        self._nextId += 1
        if not oneway:
            self._queue.append(self._nextId)
        return self._nextId

    def _answered(self, requestId, data):
        """
        Take C{data}, the bytes answering call C{requestId} (C{b""} writes
        nothing), and queue every answer now in order.

        @return: whether bytes are now ready to send.
        """
        if self.state == "closed" or requestId not in self._queue:
            return False
        self._answers[requestId] = data
        queue = self._queue
        ready = False
        while queue and queue[0] in self._answers:
            answer = self._answers.pop(queue.popleft())
            if answer:
                self._out.append(answer)
                ready = True
        return ready

    def drain(self) -> None:
        """
        Close once the calls received are answered; plain Thrift has no way
        to ask the client to stop sending.
        """
        if self.state == "open":
            self.state = "draining"

    def dataToSend(self):
        """
        @return: the bytes to write now.
        """
        out, self._out = self._out, []
        return b"".join(out)

    def connectionLost(self) -> None:
        """
        The connection is gone.
        """
        self.state = "closed"
        self._queue.clear()
        self._answers.clear()


class ServerSession(InOrderReplies):
    """
    The server side of one plain Thrift connection: calls are read as they
    arrive (pipelined) and may complete in any order; replies are written in
    call order (L{InOrderReplies}).
    """

    def __init__(self, transport=FRAMED, maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE) -> None:
        InOrderReplies.__init__(self)
        self._decoder = makeDecoder(transport, maxMessageSize)
        self._framed = transport == FRAMED

    def receiveData(self, data):
        """
        Handle bytes from a client.

        @return: a list of L{Call}.
        @raise ProtocolError: for an oversized or undecodable message; the
            connection must be closed.
        """
        calls = []
        for message in self._decoder.feed(data):
            kind = messageType(message)
            if kind not in (TMessageType.CALL, TMessageType.ONEWAY):
                raise BadMessageError("a Thrift server received message type %r" % (kind,))
            oneway = kind == TMessageType.ONEWAY
            calls.append(Call(self._received(oneway), message, oneway))
        return calls

    def bufferedSize(self):
        """
        @return: how many received bytes wait for the rest of their message.
        """
        return self._decoder.pending

    def reply(self, requestId, message):
        """
        Answer call C{requestId} with C{message} (unframed; C{b""} writes
        nothing, as for a one-way method called with a CALL message).

        @return: whether bytes are now ready to send.
        """
        if message and self._framed:
            message = encodeFrame(message)
        return self._answered(requestId, message)

    def readyToClose(self):
        """
        @return: whether a draining connection may close now.
        """
        return self.state == "draining" and not self._queue and not self._out
