"""
Replay the client half of Finagle's own end-to-end capture against the demo
ThriftMux server and compare the replies with what the Finagle server sent.

Acceptance criterion: for every connection in the capture whose server
answered C{query(x)} with C{x + x}, replaying its client frames against the
demo server gets the same replies, modulo trace ids and timestamps.  The
server half of those connections carries no trace ids or timestamps
(Rdispatch echoes no contexts; TTwitter replies carry an empty
C{ResponseHeader}), so the frames are compared byte for byte.

The capture (C{tests/data/finagle-end-to-end.pcap}, 45 TCP connections)
predates the Mux handshake: every Mux session opens with C{Tping}.  Its
servers were shut down at the end of each test, so the server half of a Mux
session ends with C{Tdrain(1)}, which the replay reproduces by stopping the
demo server at that point; a framed Thrift or TTwitter connection has no
drain message and is simply closed by the server once idle.
"""

import struct

from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.protocol.TCompactProtocol import TCompactProtocol
from thrift.Thrift import TMessageType, TType
from thrift.transport.TTransport import TMemoryBuffer
from twisted.internet import reactor
from twisted.internet.defer import Deferred, TimeoutError, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase

from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales.thriftmux import ThriftMux

from tests._pcap import finagleConnections, splitFrames

TPING = bytes.fromhex("0000000441000001")
TDRAIN = bytes.fromhex("0000000440000001")
RDRAIN = bytes.fromhex("00000004c0000001")
UPGRADE_METHOD = "__can__finagle__trace__v3__"

# How long one step of a replay may wait for the server (seconds).
STEP_TIMEOUT = 5.0

# Connections (by client port) whose server answered query(x) with x + x on
# every call: replayed whole, up to the server closing the connection.
WHOLE = {
    # Mux, binary payload: Tping, Tdispatch query("ok"), Tdrain at shutdown.
    56236: "Mux query(ok)",
    56315: "Mux query(ok)",
    56316: "Mux query(ok)",
    56317: "Mux query(ok)",
    # Mux, compact-protocol payload.
    56319: "Mux compact query(ok)",
    56321: "Mux compact query(ok)",
    # TTwitter: the upgrade call, then query("ok") with a RequestHeader.
    56239: "TTwitter upgrade and 5 x query(ok)",
    56301: "TTwitter upgrade and query(ok)",
    56304: "TTwitter upgrade and query(ok)",
    56318: "TTwitter upgrade and query(ok)",
    # Framed Thrift, no upgrade.
    56307: "framed Thrift 5 x query(ok)",
    56308: "framed Thrift query(ok)",
    56313: "framed Thrift query(ok1) .. query(ok5)",
}

# Connections whose first call was answered with x + x, but whose later
# calls went to a different handler (one echoing a context or the dtab):
# only the server frames up to and including the first reply are compared.
FIRST_CALL = {
    56237: "Mux query(ok), then a MuxContext echo",
    56238: "Mux query(ok), then a dtab echo",
    56240: "TTwitter query(ok), then a context echo",
    56241: "TTwitter query(ok), then a dtab echo",
    56299: "TTwitter query(ok), then a context echo",
}

def captureConnections(testCase):
    """
    Read the Finagle capture once, failing C{testCase} if it is missing.

    @return: the capture's connections keyed by client port.
    """
    connections = finagleConnections(testCase)
    return {c.clientPort: c for c in connections}


# Decoding the capture, independently of txscales: enough of Mux, TTwitter
# and Thrift to tell which calls were query(x) and what the server answered.


class QueryCall:
    """
    One C{query} call seen in the capture.

    @ivar x: the argument.
    @ivar answer: the returned string, or L{None} if the server answered
        anything else (an exception, an error, a nack) or nothing.
    @ivar replyFrame: the index of the answer among the server's frames, or
        L{None} if it never answered.
    """

    def __init__(self, x):
        self.x = x
        self.answer = None
        self.replyFrame = None

    @property
    def doubled(self):
        """
        Whether the server answered C{x + x}.
        """
        return self.answer is not None and self.answer == self.x + self.x


def _readThrift(data, ttwitterHeader=False):
    """
    Read one Thrift message (binary or compact), keeping its string fields.

    @param ttwitterHeader: skip a TTwitter header struct before it.
    @return: C{(name, messageType, {fieldId: bytes or None})}.
    """
    if ttwitterHeader:
        data = data[_skipBinaryStruct(data, 0) :]
    buffer = TMemoryBuffer(data)
    if data[:1] == b"\x82":
        protocol = TCompactProtocol(buffer)
    else:
        protocol = TBinaryProtocol(buffer)
    name, messageType, _ = protocol.readMessageBegin()
    fields = {}
    protocol.readStructBegin()
    while True:
        _, fieldType, fieldId = protocol.readFieldBegin()
        if fieldType == TType.STOP:
            break
        if fieldType == TType.STRING:
            fields[fieldId] = protocol.readBinary()
        else:
            protocol.skip(fieldType)
            fields[fieldId] = None
        protocol.readFieldEnd()
    return name, messageType, fields


_FIXED_SIZES = {TType.BOOL: 1, TType.BYTE: 1, TType.DOUBLE: 8, TType.I16: 2, TType.I32: 4, TType.I64: 8}


def _skipBinary(data, offset, fieldType):
    """
    @return: the offset after a binary-protocol value of C{fieldType}
        (Apache Thrift's C{skip} would decode binary strings as UTF-8).
    """
    if fieldType in _FIXED_SIZES:
        return offset + _FIXED_SIZES[fieldType]
    if fieldType == TType.STRING:
        return offset + 4 + struct.unpack_from(">i", data, offset)[0]
    if fieldType == TType.STRUCT:
        return _skipBinaryStruct(data, offset)
    if fieldType == TType.MAP:
        keyType, valueType, count = struct.unpack_from(">bbi", data, offset)
        offset += 6
        for _ in range(count):
            offset = _skipBinary(data, _skipBinary(data, offset, keyType), valueType)
        return offset
    if fieldType in (TType.LIST, TType.SET):
        elementType, count = struct.unpack_from(">bi", data, offset)
        offset += 5
        for _ in range(count):
            offset = _skipBinary(data, offset, elementType)
        return offset
    raise ValueError("unknown Thrift type %d" % (fieldType,))


def _skipBinaryStruct(data, offset):
    """
    @return: the offset after a binary-protocol struct.
    """
    while data[offset] != TType.STOP:
        offset = _skipBinary(data, offset + 3, data[offset])
    return offset + 1


def _muxPayload(frame):
    """
    @return: C{(type byte, tag, Thrift payload or None)} of a Mux frame; the
        payload of a Tdispatch, or of an Rdispatch with status OK.
    """
    kind, tag = frame[4], int.from_bytes(frame[5:8], "big")
    if kind == 0x02:  # Tdispatch: contexts, dst, dtab, payload
        offset = 8
        (count,) = struct.unpack_from(">H", frame, offset)
        offset += 2
        for _ in range(2 * count):
            offset += 2 + struct.unpack_from(">H", frame, offset)[0]
        offset += 2 + struct.unpack_from(">H", frame, offset)[0]
        (count,) = struct.unpack_from(">H", frame, offset)
        offset += 2
        for _ in range(2 * count):
            offset += 2 + struct.unpack_from(">H", frame, offset)[0]
        return kind, tag, frame[offset:]
    if kind == 0xFE:  # Rdispatch: status, contexts, payload
        status, offset = frame[8], 9
        (count,) = struct.unpack_from(">H", frame, offset)
        offset += 2
        for _ in range(2 * count):
            offset += 2 + struct.unpack_from(">H", frame, offset)[0]
        return kind, tag, frame[offset:] if status == 0 else None
    return kind, tag, None


def queryCalls(connection):
    """
    Find the C{query} calls of a captured connection and their answers.

    @return: a L{list} of L{QueryCall}, in call order.
    """
    clientFrames = splitFrames(connection.clientBytes)[0]
    serverFrames = splitFrames(connection.serverBytes)[0]
    calls = []
    if not clientFrames:
        return calls
    if clientFrames[0] == TPING:  # Mux (pre-handshake)
        pending = {}
        for frame in clientFrames:
            kind, tag, payload = _muxPayload(frame)
            if kind == 0x02:
                name, messageType, fields = _readThrift(payload)
                if name == "query" and messageType == TMessageType.CALL:
                    pending.setdefault(tag, []).append(QueryCall(fields[1].decode("utf-8")))
                    calls.append(pending[tag][-1])
        for index, frame in enumerate(serverFrames):
            kind, tag, payload = _muxPayload(frame)
            if kind == 0xFE and pending.get(tag):
                call = pending[tag].pop(0)
                call.replyFrame = index
                if payload is not None:
                    _answer(call, *_readThrift(payload))
        return calls
    # Framed Thrift, possibly upgraded to TTwitter; answers come in order.
    ttwitter = _readThrift(clientFrames[0][4:])[0] == UPGRADE_METHOD
    if ttwitter:
        clientFrames, serverFrames = clientFrames[1:], serverFrames[1:]
    for frame in clientFrames:
        name, messageType, fields = _readThrift(frame[4:], ttwitter)
        if name == "query" and messageType == TMessageType.CALL:
            calls.append(QueryCall(fields[1].decode("utf-8")))
    for index, (call, frame) in enumerate(zip(calls, serverFrames)):
        call.replyFrame = index + 1 if ttwitter else index
        _answer(call, *_readThrift(frame[4:], ttwitter))
    return calls


def _answer(call, name, messageType, fields):
    """
    Record the string a REPLY to C{query} returned, if it returned one.
    """
    if name == "query" and messageType == TMessageType.REPLY and fields.get(0) is not None:
        call.answer = fields[0].decode("utf-8")


class ReplayClient(Protocol):
    """
    A raw client connection collecting the server's length-prefixed frames.

    @ivar frames: every whole frame received, in order.
    @ivar closed: fires with None when the connection is gone.
    @ivar lost: whether the connection is gone.
    """

    def __init__(self):
        self._buffer = b""
        self._waiting = []
        self.frames = []
        self.lost = False
        self.closed = Deferred()

    def dataReceived(self, data):
        frames, self._buffer = splitFrames(self._buffer + data)
        self.frames.extend(frames)
        self._wake()

    def connectionLost(self, reason):
        self.lost = True
        self._wake()
        self.closed.callback(None)

    def _wake(self):
        for entry in list(self._waiting):
            count, d = entry
            if len(self.frames) >= count or self.lost:
                self._waiting.remove(entry)
                d.callback(len(self.frames))

    def waitForFrames(self, count):
        """
        @return: a Deferred firing once C{count} frames have arrived in all
            (or the connection is gone), failing with L{TimeoutError} after
            L{STEP_TIMEOUT} seconds.
        """
        d = Deferred()
        entry = (count, d)
        self._waiting.append(entry)
        self._wake()

        def timedOut(failure):
            if entry in self._waiting:
                self._waiting.remove(entry)
            return failure

        return d.addTimeout(STEP_TIMEOUT, reactor).addErrback(timedOut)

    def waitForClose(self):
        """
        @return: a Deferred firing when the connection is gone, failing with
            L{TimeoutError} after L{STEP_TIMEOUT} seconds.
        """
        d = Deferred()

        def gone(result):
            if not d.called:
                d.callback(None)
            return result

        self.closed.addCallback(gone)
        return d.addTimeout(STEP_TIMEOUT, reactor)


class Replay:
    """
    What a replay of one captured connection produced.

    @ivar expected: the captured server frames that were compared.
    @ivar received: the server frames the demo server sent in their place.
    @ivar closedByServer: whether the server closed the connection (before
        the client did).
    @ivar unsent: captured client segments that could not be sent because
        the server had already closed the connection.
    """

    def __init__(self):
        self.expected = []
        self.received = []
        self.closedByServer = False
        self.unsent = []


def _hex(frames):
    return [frame.hex() for frame in frames]


class _Exclaiming(TestServiceHandler):
    """
    A wrong demo handler: C{query(x)} answers C{x + x + "!"}.
    """

    def query(self, x):
        return x + x + "!"


class CaptureReplayTests(TestCase):
    """
    Replay the capture's x + x connections against the demo server; the
    C{test_port*} methods are generated, one per connection.
    """

    timeout = 30

    @inlineCallbacks
    def startServer(self, handler=None):
        """
        Start a demo server on an ephemeral port of 127.0.0.1.
        """
        if handler is None:
            handler = TestServiceHandler(reactor)
        self.server = ThriftMux.newServer(
            TestService.Iface,
            handler,
            "tcp:0:interface=127.0.0.1",
            reactor=reactor,
            drainTimeout=STEP_TIMEOUT,
        )
        self._stopped = None
        self.server.startService()
        self.addCleanup(self.stopServer)
        port = yield self.server.listening
        self.port = port.getHost().port

    def stopServer(self):
        """
        Stop the server (once): stop listening and drain every session.

        @return: a Deferred firing when every session is closed.
        """
        if self._stopped is None:
            self._stopped = Deferred()
            self.server.stopService().chainDeferred(self._stopped)
        d = Deferred()

        def stopped(result):
            d.callback(None)
            return result

        self._stopped.addBoth(stopped)
        return d

    @inlineCallbacks
    def replay(self, connection, serverFrames=None):
        """
        Replay the client half of C{connection} against the server.

        Each captured client segment is sent as captured (pipelined frames
        stay in one write); before the next one, the replay waits for as
        many server frames as the capture shows in between, and checks that
        the frames so far equal the captured ones.  A captured C{Tdrain}
        from the server marks the Finagle server's shutdown: the demo server
        is stopped at that point.  When the whole connection is replayed and
        the capture shows the server closing it, the demo server is stopped
        after the last reply (framed Thrift and TTwitter have no drain
        message) and the replay waits for the server to close.

        @param serverFrames: compare only this many server frames (and send
            only the client segments before the last of them); L{None} for
            the whole connection.
        @return: a Deferred firing with a L{Replay}, or failing with
            C{self.failureException} at the first difference.
        """
        result = Replay()
        client = ReplayClient()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port, timeout=STEP_TIMEOUT)
        yield connectProtocol(endpoint, client)
        self.addCleanup(self._closeClient, client)

        def enough():
            return serverFrames is not None and len(result.expected) >= serverFrames

        try:
            for side, data in connection.exchanges:
                if enough():
                    break
                if side == "c":
                    if client.lost:
                        result.unsent.append(data)
                    else:
                        client.transport.write(data)
                    continue
                frames, rest = splitFrames(data)
                self.assertEqual(rest, b"", "the capture cuts a server frame short")
                for frame in frames:
                    if enough():
                        break
                    if frame == TDRAIN:
                        self.stopServer()
                    result.expected.append(frame)
                    yield client.waitForFrames(len(result.expected))
                    self.assertEqual(
                        _hex(client.frames[: len(result.expected)]),
                        _hex(result.expected),
                        "port %d: the server's frames differ from the capture" % (connection.clientPort,),
                    )
            if serverFrames is None and connection.closedBy == "s":
                self.stopServer()
                yield client.waitForClose()
                result.closedByServer = True
        except TimeoutError:
            self.fail(
                "port %d: timed out; expected server frames %s, received %s"
                % (connection.clientPort, _hex(result.expected), _hex(client.frames))
            )
        finally:
            result.received = list(client.frames)
        return result

    def _closeClient(self, client):
        if client.lost:
            return None
        client.transport.loseConnection()
        return client.closed

    def assertSameReplies(self, connection, result):
        """
        Assert that the demo server sent exactly the captured frames.
        """
        self.assertEqual(
            _hex(result.received),
            _hex(result.expected),
            "port %d: the demo server's replies differ from Finagle's" % (connection.clientPort,),
        )

    @inlineCallbacks
    def checkWhole(self, clientPort):
        """
        Replay a whole x + x connection and compare every server frame.
        """
        connection = captureConnections(self)[clientPort]
        yield self.startServer()
        result = yield self.replay(connection)
        self.assertSameReplies(connection, result)
        self.assertEqual(len(result.expected), len(splitFrames(connection.serverBytes)[0]))
        self.assertTrue(result.closedByServer, "port %d: the server did not close" % (clientPort,))
        if TDRAIN in result.expected:
            # Tdrain was the last server frame and the captured client
            # answered it with Rdrain (sent, or refused by a closed socket).
            self.assertEqual(result.expected[-1], TDRAIN)
            self.assertEqual(connection.exchanges[-1], ("c", RDRAIN))

    @inlineCallbacks
    def checkFirstCall(self, clientPort):
        """
        Replay a connection up to its first reply and compare the frames.
        """
        connection = captureConnections(self)[clientPort]
        first = queryCalls(connection)[0]
        self.assertTrue(first.doubled)
        yield self.startServer()
        result = yield self.replay(connection, first.replyFrame + 1)
        self.assertEqual(len(result.expected), first.replyFrame + 1)
        self.assertSameReplies(connection, result)

    def test_replayedConnectionsAreTheDoublingOnes(self):
        """
        The replayed connections are exactly those of the capture whose
        server answered query(x) with x + x, on every call or on the first.
        """
        connections = captureConnections(self)
        self.assertEqual(len(connections), 45)
        whole, first = set(), set()
        for clientPort, connection in connections.items():
            calls = queryCalls(connection)
            if calls and all(call.doubled for call in calls):
                whole.add(clientPort)
            elif calls and calls[0].doubled:
                first.add(clientPort)
        self.assertEqual(sorted(whole), sorted(WHOLE))
        self.assertEqual(sorted(first), sorted(FIRST_CALL))

    def test_decoderSeesOtherAnswers(self):
        """
        The capture decoder tells x + x from other answers: 56324 answered
        "done", 56312 a declared exception and 56300 an internal error.
        """
        connections = captureConnections(self)
        self.assertEqual([(c.x, c.answer) for c in queryCalls(connections[56324])], [("ok", "done")])
        self.assertEqual([(c.x, c.answer) for c in queryCalls(connections[56312])], [("hi", None)])
        self.assertEqual([(c.x, c.answer) for c in queryCalls(connections[56300])], [("ok", None)])
        calls = queryCalls(connections[56313])
        self.assertEqual([(c.x, c.answer) for c in calls], [("ok%d" % i, "ok%dok%d" % (i, i)) for i in range(1, 6)])

    @inlineCallbacks
    def test_wrongAnswerIsCaught(self):
        """
        A server answering query(x) with x + x + "!" fails the comparison on
        Mux connection 56236, naming both frames.
        """
        connection = captureConnections(self)[56236]
        captured = splitFrames(connection.serverBytes)[0][1]
        yield self.startServer(_Exclaiming(reactor))
        error = yield self.assertFailure(self.replay(connection), self.failureException)
        self.assertIn("port 56236", str(error))
        self.assertIn(captured.hex(), str(error))
        self.assertIn(b"okok!\x00".hex(), str(error))

    @inlineCallbacks
    def test_wrongAnswerOnTTwitterIsCaught(self):
        """
        A server answering query(x) with x + x + "!" fails the comparison on
        TTwitter connection 56239 too.
        """
        connection = captureConnections(self)[56239]
        yield self.startServer(_Exclaiming(reactor))
        error = yield self.assertFailure(self.replay(connection), self.failureException)
        self.assertIn(b"okok!\x00".hex(), str(error))

    @inlineCallbacks
    def test_nackWhileDraining(self):
        """
        Connection 56328 (Tdrain while idle, then a crossing Tdispatch) gets
        Finagle's RdispatchNack before the server closes.
        """
        connection = captureConnections(self)[56328]
        yield self.startServer()
        result = yield self.replay(connection)
        self.assertSameReplies(connection, result)


def _addTests():
    """
    Add one test method per replayed connection, named after its port.
    """

    def whole(clientPort, description):
        def test(self):
            return self.checkWhole(clientPort)

        test.__doc__ = "Connection %d (%s) gets Finagle's replies, byte for byte." % (clientPort, description)
        return test

    def firstCall(clientPort, description):
        def test(self):
            return self.checkFirstCall(clientPort)

        test.__doc__ = "Connection %d (%s) gets Finagle's first reply, byte for byte." % (clientPort, description)
        return test

    tests = [("test_port%d" % (port,), whole(port, text)) for port, text in WHOLE.items()]
    tests += [("test_port%dFirstCall" % (port,), firstCall(port, text)) for port, text in FIRST_CALL.items()]
    for name, test in tests:
        test.__name__ = test.__qualname__ = name
        setattr(CaptureReplayTests, name, test)


_addTests()
