"""
Tests for L{txscales.redis._connection.RedisConnection}, over a
C{StringTransport} and a C{task.Clock}.
"""

from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txscales.errors import ClientClosedError, ConnectionLostError, RequestTimeoutError
from txscales.redis import _errors as errors
from txscales.redis._connection import RedisConnection
from txscales.redis._resp import ReplyDecodeError, encodeCommand


class RedisConnectionTests(SynchronousTestCase):
    """
    Tests for L{RedisConnection}.
    """

    def setUp(self):
        self.clock = Clock()
        self.transport = StringTransport()
        self.connection = RedisConnection(self.clock, maxPending=4)
        self.connection.makeConnection(self.transport)

    def tearDown(self):
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_pipelined(self):
        """
        Commands are written at once, before any reply, and their replies
        are matched in order, even when they arrive in one chunk or byte by
        byte.
        """
        first = self.connection.execute(b"SET", b"k", b"v")
        second = self.connection.execute("GET", "k")
        self.assertEqual(
            self.transport.value(), encodeCommand((b"SET", b"k", b"v")) + encodeCommand((b"GET", b"k"))
        )
        self.assertNoResult(first)
        for byte in b"+OK\r\n$1\r\nv":
            self.connection.dataReceived(bytes([byte]))
        self.assertEqual(self.successResultOf(first), b"OK")
        self.assertNoResult(second)
        self.connection.dataReceived(b"\r\n")
        self.assertEqual(self.successResultOf(second), b"v")
        self.assertEqual(self.connection.pendingCount, 0)

    def test_executeMany(self):
        """
        L{RedisConnection.executeMany} writes its commands in one write and
        returns a Deferred per command.
        """
        writes = []
        self.transport.write = writes.append
        ds = self.connection.executeMany([(b"INCR", b"a"), (b"INCR", b"b")])
        self.assertEqual(writes, [encodeCommand((b"INCR", b"a")) + encodeCommand((b"INCR", b"b"))])
        self.connection.dataReceived(b":1\r\n:7\r\n")
        self.assertEqual([self.successResultOf(d) for d in ds], [1, 7])

    def test_errorReply(self):
        """
        An error reply fails its own command with its typed error; the
        connection goes on.
        """
        first = self.connection.execute(b"LPUSH", b"s", b"x")
        second = self.connection.execute(b"GET", b"s")
        self.connection.dataReceived(b"-WRONGTYPE Operation against a key\r\n$1\r\nx\r\n")
        self.failureResultOf(first, errors.WrongTypeError)
        self.assertEqual(self.successResultOf(second), b"x")
        self.assertFalse(self.transport.disconnecting)

    def test_decodeError(self):
        """
        With an encoding, a reply that does not decode fails its own command.
        """
        connection = RedisConnection(self.clock, encoding="utf-8")
        connection.makeConnection(StringTransport())
        first = connection.execute(b"GET", b"a")
        second = connection.execute(b"GET", b"b")
        connection.dataReceived(b"$1\r\n\xff\r\n$2\r\n\xc3\xa9\r\n")
        self.failureResultOf(first, ReplyDecodeError)
        self.assertEqual(self.successResultOf(second), "\u00e9")

    def test_timeoutKeepsItsPlace(self):
        """
        A command that timed out fails with L{RequestTimeoutError}; its late
        reply is dropped, and the next command gets its own reply.
        """
        late = self.connection.execute(b"GET", b"slow", timeout=0.001)
        next_ = self.connection.execute(b"GET", b"fast")
        self.clock.advance(0.001)
        failure = self.failureResultOf(late, RequestTimeoutError)
        self.assertTrue(failure.value.mayHaveReachedServer)
        self.assertEqual(self.connection.pendingCount, 2)
        self.connection.dataReceived(b"$4\r\nslow\r\n")
        self.assertNoResult(next_)
        self.assertEqual(self.connection.droppedReplies, 1)
        self.connection.dataReceived(b"$4\r\nfast\r\n")
        self.assertEqual(self.successResultOf(next_), b"fast")

    def test_defaultTimeout(self):
        """
        The connection's C{timeout} applies to commands that give none, and
        a reply in time cancels the timer.
        """
        self.connection.timeout = 2.0
        timed = self.connection.execute(b"PING")
        untimed = self.connection.execute(b"PING", timeout=None)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(2.0)
        self.failureResultOf(timed, RequestTimeoutError)
        answered = self.connection.execute(b"PING")
        self.connection.dataReceived(b"+PONG\r\n+PONG\r\n+PONG\r\n")
        self.assertEqual(self.successResultOf(untimed), b"PONG")
        self.assertEqual(self.successResultOf(answered), b"PONG")

    def test_cancelKeepsItsPlace(self):
        """
        A cancelled command fails with C{CancelledError} and its timer
        stops; its reply is dropped when it comes.
        """
        cancelled = self.connection.execute(b"GET", b"a", timeout=5.0)
        other = self.connection.execute(b"GET", b"b")
        cancelled.cancel()
        self.failureResultOf(cancelled, CancelledError)
        self.connection.dataReceived(b"$1\r\na\r\n$1\r\nb\r\n")
        self.assertEqual(self.successResultOf(other), b"b")
        self.assertEqual(self.connection.droppedReplies, 1)

    def test_maxPending(self):
        """
        Past C{maxPending} waiting commands (timed-out ones included), a
        command fails with L{TooManyPendingCommandsError} without being
        sent; once replies arrive, commands go again.
        """
        ds = [self.connection.execute(b"PING", timeout=1.0) for _ in range(4)]
        self.clock.advance(1.0)
        for d in ds:
            self.failureResultOf(d, RequestTimeoutError)
        written = self.transport.value()
        refused = self.connection.execute(b"PING")
        failure = self.failureResultOf(refused, errors.TooManyPendingCommandsError)
        self.assertFalse(failure.value.mayHaveReachedServer)
        self.assertTrue(failure.value.retryable)
        many = self.connection.executeMany([(b"PING",)] * 5)
        for d in many:
            self.failureResultOf(d, errors.TooManyPendingCommandsError)
        self.assertEqual(self.transport.value(), written)
        self.connection.dataReceived(b"+PONG\r\n")
        again = self.connection.execute(b"PING")
        self.connection.dataReceived(b"+PONG\r\n" * 4)
        self.assertEqual(self.successResultOf(again), b"PONG")
        self.assertEqual(self.connection.droppedReplies, 4)

    def test_encodeError(self):
        """
        A command that cannot be encoded fails with L{RedisEncodeError} and
        nothing is written, for any command of a pipeline.
        """
        self.failureResultOf(self.connection.execute(b"SET", b"k", None), errors.RedisEncodeError)
        for d in self.connection.executeMany([(b"PING",), (b"SET", True)]):
            self.failureResultOf(d, errors.RedisEncodeError)
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.connection.pendingCount, 0)

    def test_connectionLost(self):
        """
        When the connection is lost, every waiting command fails with
        L{ConnectionLostError} (it may have run) and its timer stops; later
        commands fail with L{ClientClosedError} at once.
        """
        ds = [self.connection.execute(b"PING", timeout=1.0), self.connection.execute(b"PING")]
        self.connection.connectionLost(Failure(ConnectionDone()))
        for d in ds:
            failure = self.failureResultOf(d, ConnectionLostError)
            self.assertTrue(failure.value.mayHaveReachedServer)
        self.failureResultOf(self.connection.execute(b"PING"), ClientClosedError)

    def test_close(self):
        """
        L{RedisConnection.close} fails the waiting commands with
        L{ClientClosedError} and closes the transport.
        """
        d = self.connection.execute(b"PING", timeout=1.0)
        self.connection.close()
        self.failureResultOf(d, ClientClosedError)
        self.assertTrue(self.transport.disconnecting)
        self.connection.connectionLost(Failure(ConnectionDone()))
        self.connection.close()

    def test_protocolError(self):
        """
        Bytes that are not RESP close the connection; the waiting commands
        fail with L{ConnectionLostError} whose reason is the
        L{RedisProtocolError}.
        """
        ds = [self.connection.execute(b"PING"), self.connection.execute(b"PING", timeout=1.0)]
        self.connection.dataReceived(b"+PONG\r\n?garbage\r\n")
        self.assertEqual(self.successResultOf(ds[0]), b"PONG")
        failure = self.failureResultOf(ds[1], ConnectionLostError)
        self.assertIsInstance(failure.value.reason, errors.RedisProtocolError)
        self.assertTrue(self.transport.disconnecting)
        self.failureResultOf(self.connection.execute(b"PING"), ClientClosedError)

    def test_replyTooLarge(self):
        """
        A reply past C{maxReplyBytes} closes the connection.
        """
        connection = RedisConnection(self.clock, maxReplyBytes=100)
        transport = StringTransport()
        connection.makeConnection(transport)
        d = connection.execute(b"GET", b"big")
        connection.dataReceived(b"$1000\r\n" + b"x" * 200)
        failure = self.failureResultOf(d, ConnectionLostError)
        self.assertIsInstance(failure.value.reason, errors.ReplyTooLargeError)
        self.assertTrue(transport.disconnecting)

    def test_unexpectedReply(self):
        """
        A reply while no command waits closes the connection with
        L{UnexpectedReplyError}.
        """
        ds = [self.connection.execute(b"PING"), self.connection.execute(b"PING", timeout=1.0)]
        closed = []
        self.connection._fail = closed.append
        self.connection.dataReceived(b"+PONG\r\n+PONG\r\n+OK\r\n")
        self.assertEqual([self.successResultOf(d) for d in ds], [b"PONG", b"PONG"])
        self.assertTrue(self.transport.disconnecting)
        [reason] = closed
        self.assertIsInstance(reason.reason, errors.UnexpectedReplyError)
        self.failureResultOf(self.connection.execute(b"PING"), ClientClosedError)

    def test_push(self):
        """
        A RESP3 push goes to C{onPush} and takes no command's place.
        """
        pushes = []
        self.connection.onPush = pushes.append
        d = self.connection.execute(b"GET", b"k")
        self.connection.dataReceived(b">3\r\n+message\r\n+ch\r\n+hi\r\n$1\r\nv\r\n")
        self.assertEqual(self.successResultOf(d), b"v")
        self.assertEqual(pushes, [[b"message", b"ch", b"hi"]])

    def test_notConnected(self):
        """
        A command before the connection is made fails with
        L{ClientClosedError}.
        """
        self.failureResultOf(RedisConnection(self.clock).execute(b"PING"), ClientClosedError)


class HotPathTests(SynchronousTestCase):
    """
    Tests for what keeps L{RedisConnection}'s command path cheap: one timer
    per connection, and the commands sent by reply callbacks written
    together.
    """

    def setUp(self):
        self.clock = Clock()
        self.writes = []
        self.transport = StringTransport()
        self.transport.write = self.writes.append
        self.connection = RedisConnection(self.clock, timeout=1.0)
        self.connection.makeConnection(self.transport)

    def tearDown(self):
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_oneTimer(self):
        """
        Commands with the same timeout share one timer, set for the
        earliest deadline; each times out at its own deadline, and the
        timer stops once no command has a deadline.
        """
        first = [self.connection.execute(b"PING") for _ in range(100)]
        self.clock.advance(0.5)
        second = [self.connection.execute(b"PING") for _ in range(100)]
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0.5)
        for d in first:
            self.failureResultOf(d, RequestTimeoutError)
        for d in second:
            self.assertNoResult(d)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0.499)
        for d in second:
            self.assertNoResult(d)
        self.connection.dataReceived(b"+PONG\r\n" * 150)
        self.assertEqual([self.successResultOf(d) for d in second[:50]], [b"PONG"] * 50)
        self.assertEqual(self.connection.droppedReplies, 100)
        self.clock.advance(0.001)
        for d in second[50:]:
            self.failureResultOf(d, RequestTimeoutError)
        self.connection.dataReceived(b"+PONG\r\n" * 50)
        self.assertEqual(self.connection.pendingCount, 0)

    def test_shorterTimeout(self):
        """
        A command whose deadline comes before that of a command sent
        earlier gets a timer of its own: it times out in time, and its
        timer stops when it is answered or cancelled.
        """
        long = self.connection.execute(b"GET", b"a", timeout=5.0)
        short = self.connection.execute(b"GET", b"b", timeout=0.5)
        cancelled = self.connection.execute(b"GET", b"c", timeout=0.25)
        answered = self.connection.execute(b"GET", b"d", timeout=0.75)
        self.assertEqual(len(self.clock.getDelayedCalls()), 4)
        cancelled.cancel()
        self.failureResultOf(cancelled, CancelledError)
        self.assertEqual(len(self.clock.getDelayedCalls()), 3)
        self.clock.advance(0.5)
        self.assertEqual(self.failureResultOf(short, RequestTimeoutError).value.timeout, 0.5)
        self.assertNoResult(long)
        self.connection.dataReceived(b"$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n")
        self.assertEqual((self.successResultOf(long), self.successResultOf(answered)), (b"a", b"d"))
        self.assertEqual(self.connection.droppedReplies, 2)

    def test_timeoutCallbacks(self):
        """
        A command sent by the callback of one that timed out does not time
        out with it; a callback that closes the connection fails the rest
        with L{ClientClosedError}.
        """
        sent, failures = [], []
        first = self.connection.execute(b"PING")
        first.addErrback(lambda f: (failures.append(f.value), sent.append(self.connection.execute(b"PING"))))
        closing = self.connection.execute(b"PING")
        closing.addErrback(lambda f: (failures.append(f.value), self.connection.close()))
        last = self.connection.execute(b"PING")
        self.clock.advance(1.0)
        self.assertEqual([type(e) for e in failures], [RequestTimeoutError, RequestTimeoutError])
        self.failureResultOf(last, ClientClosedError)
        self.failureResultOf(sent[0], ClientClosedError)

    def test_writesHeldWhileDelivering(self):
        """
        Commands sent by the callbacks of replies go out in one write once
        the replies are delivered, after the commands sent before.
        """
        self.connection.timeout = None
        for name in (b"a", b"b", b"c"):
            self.connection.execute(b"GET", name).addCallback(lambda value: self.connection.execute(b"GET", value + b"2"))
        self.assertEqual(len(self.writes), 3)
        self.connection.dataReceived(b"$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n")
        self.assertEqual(self.writes[3:], [b"".join(encodeCommand((b"GET", name + b"2")) for name in (b"a", b"b", b"c"))])
        self.assertEqual(self.connection.pendingCount, 3)

    def test_closedWhileDelivering(self):
        """
        When a reply's callback closes the connection, the commands sent by
        the callbacks before are not written, and fail with
        L{ClientClosedError}.
        """
        self.connection.timeout = None
        held = []
        self.connection.execute(b"GET", b"a").addCallback(lambda _: held.append(self.connection.execute(b"PING")))
        self.connection.execute(b"GET", b"b").addCallback(lambda _: self.connection.close())
        self.connection.dataReceived(b"$1\r\na\r\n$1\r\nb\r\n")
        self.assertEqual(len(self.writes), 2)
        self.failureResultOf(held[0], ClientClosedError)
