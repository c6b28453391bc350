"""
The baseline: a raw Twisted length-prefixed echo whose client matches
replies to calls by id, one Deferred per call.  It is the floor for any RPC
protocol on Twisted: framing, a tag map and a Deferred, nothing else.

Two versions of each side:

  - L{EchoServerProtocol} and L{EchoClientProtocol}, the baseline: Twisted's
    own length-prefixed framing (C{Int32StringReceiver}), one
    C{sendString} per message, as a Twisted protocol is usually written;
  - L{BatchedEchoServerProtocol} and L{BatchedEchoClientProtocol}, the same
    bytes with hand-written framing that parses a whole read in one loop
    and answers all of it in one write: how fast Twisted can go at all.

Request frame: C{length:4 id:4 holdMs:4 payload}; reply frame:
C{length:4 id:4 payload payload}.  The reply carries the payload twice, the
same bytes as the demo service's C{query(x) -> x + x}.  A non-zero
C{holdMs} makes the server hold the reply that long (the memory benchmark's
outstanding calls).
"""

from struct import Struct

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.basic import Int32StringReceiver

_length = Struct(">I")
_request = Struct(">III")
_reply = Struct(">II")
_idHold = Struct(">II")
_id = Struct(">I")


def _noDelay(transport):
    setTcpNoDelay = getattr(transport, "setTcpNoDelay", None)
    if setTcpNoDelay is not None:
        setTcpNoDelay(True)


class BatchedEchoServerProtocol(Protocol):
    """
    Answer each request with its payload twice; all the replies to one read
    go out in one write.
    """

    def __init__(self, clock):
        self._clock = clock
        self._buffer = b""

    def connectionMade(self):
        _noDelay(self.transport)

    def dataReceived(self, data):
        buf = self._buffer + data if self._buffer else data
        size = len(buf)
        offset = 0
        out = []
        while size - offset >= 4:
            end = offset + 4 + _length.unpack_from(buf, offset)[0]
            if end > size:
                break
            callId, holdMs = _idHold.unpack_from(buf, offset + 4)
            body = buf[offset + 12 : end]
            reply = _reply.pack(4 + 2 * len(body), callId) + body + body
            if holdMs:
                self._clock.callLater(holdMs / 1000.0, self._late, reply)
            else:
                out.append(reply)
            offset = end
        self._buffer = buf[offset:] if offset < size else b""
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _late(self, reply):
        if self.transport.connected:
            self.transport.write(reply)


class EchoServerProtocol(Int32StringReceiver):
    """
    Answer each request with its payload twice, one C{sendString} each.
    """

    MAX_LENGTH = 16 * 1024 * 1024

    def __init__(self, clock):
        self._clock = clock

    def connectionMade(self):
        _noDelay(self.transport)

    def stringReceived(self, frame):
        callId, holdMs = _idHold.unpack_from(frame)
        body = frame[8:]
        reply = _id.pack(callId) + body + body
        if holdMs:
            self._clock.callLater(holdMs / 1000.0, self._late, reply)
        else:
            self.sendString(reply)

    def _late(self, reply):
        if self.transport.connected:
            self.sendString(reply)


class EchoServerFactory(Factory):
    noisy = False

    def __init__(self, clock, batched=False):
        self._clock = clock
        self._protocol = BatchedEchoServerProtocol if batched else EchoServerProtocol

    def buildProtocol(self, addr):
        p = self._protocol(self._clock)
        p.factory = self
        return p


class BatchedEchoClientProtocol(Protocol):
    """
    Many calls outstanding on one connection; each reply fires the Deferred
    of the call with its id.
    """

    def __init__(self):
        self._buffer = b""
        self._next = 0
        self._calls = {}

    def connectionMade(self):
        _noDelay(self.transport)

    def call(self, payload, holdMs=0):
        """
        @return: a Deferred firing with the reply's payload (bytes).
        """
        callId = self._next = (self._next + 1) & 0xFFFFFFFF
        d = self._calls[callId] = Deferred()
        self.transport.write(_request.pack(8 + len(payload), callId, holdMs) + payload)
        return d

    def dataReceived(self, data):
        buf = self._buffer + data if self._buffer else data
        size = len(buf)
        offset = 0
        calls = self._calls
        while size - offset >= 4:
            end = offset + 4 + _length.unpack_from(buf, offset)[0]
            if end > size:
                break
            d = calls.pop(_length.unpack_from(buf, offset + 4)[0], None)
            body = buf[offset + 8 : end]
            offset = end
            if d is not None:
                d.callback(body)
        self._buffer = buf[offset:] if offset < size else b""

    def connectionLost(self, reason):
        calls, self._calls = self._calls, {}
        for d in calls.values():
            d.errback(reason)


class EchoClientProtocol(Int32StringReceiver):
    """
    Many calls outstanding on one connection, one C{sendString} per call;
    each reply fires the Deferred of the call with its id.
    """

    MAX_LENGTH = 16 * 1024 * 1024

    def __init__(self):
        self._next = 0
        self._calls = {}

    def connectionMade(self):
        _noDelay(self.transport)

    def call(self, payload, holdMs=0):
        """
        @return: a Deferred firing with the reply's payload (bytes).
        """
        callId = self._next = (self._next + 1) & 0xFFFFFFFF
        d = self._calls[callId] = Deferred()
        self.sendString(_idHold.pack(callId, holdMs) + payload)
        return d

    def stringReceived(self, frame):
        d = self._calls.pop(_id.unpack_from(frame)[0], None)
        if d is not None:
            d.callback(frame[4:])

    def connectionLost(self, reason):
        calls, self._calls = self._calls, {}
        for d in calls.values():
            d.errback(reason)
