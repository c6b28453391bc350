"""
Tests for L{txscales.redis._resp} (RESP commands and replies) and
L{txscales.redis._errors} (error replies as typed errors).
"""

import math

import hiredis
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txscales.errors import EncodeError, FrameTooLargeError, ProtocolError, TxScalesError
from txscales.redis import _errors as errors
from txscales.redis._resp import (
    DEFAULT_MAX_REPLY_BYTES,
    ReplyDecodeError,
    ReplyReader,
    encodeCommand,
    _PIECE,
    _encode,
    encodeCommands,
)

# (command, its exact bytes)
COMMANDS = [
    ((b"PING",), b"*1\r\n$4\r\nPING\r\n"),
    ((b"SET", b"k", b"v"), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"),
    (("GET", "cl\u00e9"), b"*2\r\n$3\r\nGET\r\n$4\r\ncl\xc3\xa9\r\n"),
    ((b"SET", b"", b"\r\n"), b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$2\r\n\r\n\r\n"),
    ((b"INCRBY", b"n", -12), b"*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$3\r\n-12\r\n"),
    ((b"X", 2**70), b"*2\r\n$1\r\nX\r\n$22\r\n1180591620717411303424\r\n"),
    ((b"INCRBYFLOAT", b"f", 1.5), b"*3\r\n$11\r\nINCRBYFLOAT\r\n$1\r\nf\r\n$3\r\n1.5\r\n"),
    ((b"ZADD", b"z", 1e100, b"m"), b"*4\r\n$4\r\nZADD\r\n$1\r\nz\r\n$6\r\n1e+100\r\n$1\r\nm\r\n"),
    ((b"ZADD", b"z", float("-inf"), b"m"), b"*4\r\n$4\r\nZADD\r\n$1\r\nz\r\n$4\r\n-inf\r\n$1\r\nm\r\n"),
    ((b"ZADD", b"z", 0.1, b"m"), b"*4\r\n$4\r\nZADD\r\n$1\r\nz\r\n$3\r\n0.1\r\n$1\r\nm\r\n"),
    ((b"SET", bytearray(b"k"), memoryview(b"v")), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"),
]

# (the bytes of one reply, what it parses to)
REPLIES = [
    (b"+OK\r\n", b"OK"),
    (b"+\r\n", b""),
    (b":42\r\n", 42),
    (b":-1\r\n", -1),
    (b":9223372036854775807\r\n", 2**63 - 1),
    (b"$5\r\nhello\r\n", b"hello"),
    (b"$0\r\n\r\n", b""),
    (b"$4\r\n\r\n\r\n\r\n", b"\r\n\r\n"),
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"*3\r\n$1\r\na\r\n:1\r\n$-1\r\n", [b"a", 1, None]),
    (b"*2\r\n*1\r\n+x\r\n*0\r\n", [[b"x"], []]),
    # RESP3
    (b"_\r\n", None),
    (b",1.5\r\n", 1.5),
    (b",-0.25\r\n", -0.25),
    (b",inf\r\n", math.inf),
    (b",-inf\r\n", -math.inf),
    (b"#t\r\n", True),
    (b"#f\r\n", False),
    (b"(3492890328409238509324850943850943825024385\r\n", b"3492890328409238509324850943850943825024385"),
    (b"=15\r\ntxt:Some string\r\n", b"Some string"),
    (b"%2\r\n+a\r\n:1\r\n$1\r\nb\r\n*1\r\n:2\r\n", {b"a": 1, b"b": [2]}),
    (b"%0\r\n", {}),
    (b"~2\r\n:1\r\n+x\r\n", [1, b"x"]),
]


def feedWhole(reader, data):
    return reader.feed(data)


def feedBytes(reader, data):
    replies = []
    for i in range(len(data)):
        replies.extend(reader.feed(data[i : i + 1]))
    return replies


class EncodeTests(SynchronousTestCase):
    """
    Tests for L{encodeCommand}.
    """

    def test_table(self):
        """
        Each command encodes to its exact bytes.
        """
        for command, data in COMMANDS:
            self.assertEqual(encodeCommand(command), data, command)

    def test_commands(self):
        """
        L{encodeCommands} writes commands one after the other.
        """
        self.assertEqual(
            encodeCommands([command for command, _ in COMMANDS]), b"".join(data for _, data in COMMANDS)
        )
        self.assertEqual(encodeCommands([]), b"")

    def test_badArguments(self):
        """
        An empty command, C{None}, a bool, NaN or any other type is refused
        with L{RedisEncodeError}, an L{EncodeError} that did not reach a
        server.
        """
        for command in [(), (b"SET", None), (b"SET", True), (b"X", float("nan")), (b"X", [1]), (b"X", object())]:
            e = self.assertRaises(errors.RedisEncodeError, encodeCommand, command)
            self.assertIsInstance(e, EncodeError)
            self.assertFalse(e.mayHaveReachedServer)
        self.assertRaises(errors.RedisEncodeError, encodeCommands, [(b"PING",), (b"X", None)])

    def test_subclasses(self):
        """
        Subclasses of the accepted types encode as their value.
        """
        import enum

        class Level(enum.IntEnum):
            HIGH = 3

        class Name(str):
            pass

        self.assertEqual(encodeCommand((Name("GET"), Level.HIGH)), b"*2\r\n$3\r\nGET\r\n$1\r\n3\r\n")

    @settings(max_examples=300)
    @given(
        st.lists(
            st.one_of(
                st.binary(max_size=40),
                st.text(max_size=20),
                st.integers(),
                st.floats(allow_nan=False),
            ),
            min_size=1,
            max_size=8,
        )
    )
    def test_sameAsHiredis(self, command):
        """
        Any command encodes as hiredis' own C{pack_command} encodes it.
        """
        self.assertEqual(encodeCommand(command), hiredis.pack_command(tuple(command)))

    @settings(max_examples=200)
    @given(st.lists(st.one_of(st.binary(max_size=40), st.text(max_size=20), st.integers()), min_size=1, max_size=8))
    def test_fastPathSame(self, command):
        """
        Commands of bytes, str and int, which hiredis encodes, encode as
        the Python encoder does, as a list or a tuple.
        """
        self.assertEqual(encodeCommand(command), _encode(command))
        self.assertEqual(encodeCommand(tuple(command)), _encode(command))

    def test_floatSubclass(self):
        """
        A float subclass with a C{repr} of its own (as numpy's) encodes as
        its value.
        """

        class Score(float):
            def __repr__(self):
                return "Score(%s)" % (float.__repr__(self),)

        self.assertEqual(encodeCommand((b"ZADD", b"z", Score(1.5), b"m")), encodeCommand((b"ZADD", b"z", 1.5, b"m")))

    @given(st.lists(st.binary(max_size=40), min_size=1, max_size=8))
    def test_readsBack(self, command):
        """
        Any command of bytes reads back as the list of its arguments.
        """
        self.assertEqual(ReplyReader().feed(encodeCommand(command)), [command])

    @given(st.floats(allow_nan=False))
    def test_floatsRoundTrip(self, value):
        """
        A float is written as a decimal that reads back as the same float.
        """
        data = encodeCommand((value,))
        self.assertEqual(float(data.split(b"\r\n")[2]), value)


class ReaderTests(SynchronousTestCase):
    """
    Tests for L{ReplyReader}.
    """

    def test_largeReadInPieces(self):
        """
        A large read is fed to hiredis in pieces of at most C{_PIECE} bytes
        (hiredis' time grows with the square of what it holds), with the
        same replies, some across two pieces, and an error after them still
        gives them.
        """
        replies = [b"v" * (i * 37 % 3000) for i in range(300)]
        data = b"".join(b"$%d\r\n%s\r\n" % (len(r), r) for r in replies)
        self.assertGreater(len(data), 20 * _PIECE)
        reader = ReplyReader()
        fed = []
        hiredisReader = reader._reader
        reader._reader = type("Recording", (), {
            "feed": lambda self, *args: (fed.append(args[2] if len(args) > 1 else len(args[0])),
                                         hiredisReader.feed(*args)),
            "gets": lambda self: hiredisReader.gets(),
        })()
        self.assertEqual(reader.feed(data), replies)
        self.assertEqual(sum(fed), len(data))
        self.assertLessEqual(max(fed), _PIECE)
        e = self.assertRaises(errors.RedisProtocolError, ReplyReader().feed, data + b"?bad\r\n" + data)
        self.assertEqual(e.replies, replies)

    def test_table(self):
        """
        Each reply parses to its value, fed whole or one byte at a time.
        """
        for feed in (feedWhole, feedBytes):
            for data, value in REPLIES:
                replies = feed(ReplyReader(), data)
                self.assertEqual(replies, [value], (feed.__name__, data))
                self.assertIs(type(replies[0]), type(value), data)

    def test_all(self):
        """
        All the replies fed at once, or byte by byte, come out in order;
        C{#f} (False) does not stop the reading.
        """
        data = b"".join(d for d, _ in REPLIES)
        expected = [v for _, v in REPLIES]
        self.assertEqual(feedWhole(ReplyReader(), data), expected)
        self.assertEqual(feedBytes(ReplyReader(), data), expected)

    def test_trailingBytes(self):
        """
        Bytes after a reply (the start of the next) give nothing until that
        reply is complete.
        """
        for data, value in REPLIES:
            reader = ReplyReader()
            self.assertEqual(reader.feed(data + b"$5\r\nhel"), [value], data)
            self.assertEqual(reader.feed(b"lo"), [])
            self.assertEqual(reader.feed(b"\r\n"), [b"hello"])

    def test_push(self):
        """
        A RESP3 push comes out as a C{hiredis.PushNotification}, which a
        reply never is.
        """
        replies = ReplyReader().feed(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n*1\r\n+x\r\n")
        self.assertEqual(replies, [[b"message", b"ch", b"hi"], [b"x"]])
        self.assertIsInstance(replies[0], hiredis.PushNotification)
        self.assertNotIsInstance(replies[1], hiredis.PushNotification)

    def test_errorReplies(self):
        """
        An error reply comes out as its typed error, in its place, and the
        reading goes on.
        """
        replies = ReplyReader().feed(
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
            b"+OK\r\n"
            b"*2\r\n-ERR inside\r\n:1\r\n"
            b"-MOVED 3999 127.0.0.1:6381\r\n"
        )
        self.assertEqual(len(replies), 4)
        self.assertIsInstance(replies[0], errors.WrongTypeError)
        self.assertEqual(replies[0].message, "WRONGTYPE Operation against a key holding the wrong kind of value")
        self.assertEqual(replies[1], b"OK")
        self.assertIsInstance(replies[2][0], errors.RedisReplyError)
        self.assertEqual(replies[2][1], 1)
        self.assertIsInstance(replies[3], errors.MovedError)
        self.assertEqual((replies[3].slot, replies[3].host, replies[3].port), (3999, "127.0.0.1", 6381))

    def test_decode(self):
        """
        With an encoding, strings come out as C{str}; a reply that does not
        decode (even deep in an aggregate) comes out as a
        L{ReplyDecodeError} in its place, and the next reply is read.
        """
        data = b"+OK\r\n*3\r\n$1\r\n\xff\r\n*1\r\n$1\r\n\xfe\r\n:1\r\n$2\r\n\xc3\xa9\r\n-ERR \xff\r\n"
        for feed in (feedWhole, feedBytes):
            replies = feed(ReplyReader(encoding="utf-8"), data)
            self.assertEqual(len(replies), 4, feed.__name__)
            self.assertEqual(replies[0], "OK")
            self.assertIsInstance(replies[1], ReplyDecodeError)
            self.assertIsInstance(replies[1].reason, UnicodeDecodeError)
            self.assertEqual(replies[2], "\u00e9")
            self.assertIsInstance(replies[3], errors.RedisReplyError)
            self.assertEqual(replies[3].message, "ERR \ufffd")

    def test_protocolError(self):
        """
        Bytes that are not RESP raise L{RedisProtocolError}, a
        L{ProtocolError}, and so does every later call.
        """
        for data in [b"?what\r\n", b"!3\r\nbad\r\n", b"*4294967296\r\n", b":1\r\n$x\r\n"]:
            reader = ReplyReader()
            e = self.assertRaises(errors.RedisProtocolError, reader.feed, data)
            self.assertIsInstance(e, ProtocolError)
            self.assertEqual(e.replies, [1] if data.startswith(b":1") else [])
            self.assertIs(self.assertRaises(errors.RedisProtocolError, reader.feed, b"+OK\r\n"), e)
            self.assertEqual(e.replies, [])

    def test_maxReplyBytes(self):
        """
        A reply still incomplete after more than C{maxReplyBytes} raises
        L{ReplyTooLargeError} (a L{FrameTooLargeError}) at the call that
        passes the bound, and at every later call.
        """
        reader = ReplyReader(maxReplyBytes=100)
        self.assertEqual(reader.feed(b"$1000\r\n"), [])
        fed = 7
        while True:
            try:
                reader.feed(b"x" * 10)
            except errors.ReplyTooLargeError as e:
                error = e
                break
            fed += 10
        self.assertEqual(fed, 97)
        self.assertIsInstance(error, FrameTooLargeError)
        self.assertIsInstance(error, errors.RedisProtocolError)
        self.assertIs(self.assertRaises(errors.ReplyTooLargeError, reader.feed, b"x"), error)

    def test_largeAggregate(self):
        """
        The bound counts the bytes of an aggregate's elements too.
        """
        reader = ReplyReader(maxReplyBytes=1000)
        self.assertEqual(reader.feed(b"*100000000\r\n"), [])
        self.assertRaises(errors.ReplyTooLargeError, feedBytes, reader, b":1\r\n" * 300)

    def test_manySmallReplies(self):
        """
        Any number of bytes of complete replies passes the bound: it counts
        only what was fed since a reply last completed.
        """
        reader = ReplyReader(maxReplyBytes=10)
        data = b"$3\r\nabc\r\n" * 1000
        self.assertEqual(feedWhole(reader, data), [b"abc"] * 1000)
        self.assertEqual(feedBytes(reader, data), [b"abc"] * 1000)

    def test_replyAtTheBound(self):
        """
        A reply of C{maxReplyBytes}, fed in pieces, is read.
        """
        reader = ReplyReader(maxReplyBytes=60)
        data = b"$50\r\n" + b"y" * 50 + b"\r\n"
        self.assertEqual(len(data), 57)
        self.assertEqual(feedBytes(reader, data), [b"y" * 50])

    def test_badBound(self):
        """
        The bound must be positive; its default is Redis' largest bulk
        string.
        """
        self.assertRaises(ValueError, ReplyReader, maxReplyBytes=0)
        self.assertEqual(ReplyReader().maxReplyBytes, DEFAULT_MAX_REPLY_BYTES)
        self.assertEqual(DEFAULT_MAX_REPLY_BYTES, 512 * 1024 * 1024)

    @settings(max_examples=100)
    @given(st.lists(st.sampled_from(REPLIES), max_size=20), st.data())
    def test_anySplit(self, replies, data):
        """
        Replies come out the same however the bytes are cut.
        """
        stream = b"".join(d for d, _ in replies)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
        reader = ReplyReader()
        out = []
        start = 0
        for cut in cuts + [len(stream)]:
            out.extend(reader.feed(stream[start:cut]))
            start = cut
        self.assertEqual(out, [v for _, v in replies])


# (error reply, class, retryable, mayHaveReachedServer)
ERRORS = [
    ("ERR unknown command 'FOO'", errors.RedisReplyError, False, True),
    ("WRONGTYPE Operation against a key holding the wrong kind of value", errors.WrongTypeError, False, False),
    ("NOAUTH Authentication required.", errors.NoAuthError, False, False),
    ("WRONGPASS invalid username-password pair or user is disabled.", errors.WrongPassError, False, False),
    ("NOPERM this user has no permissions to run the 'get' command", errors.NoPermError, False, False),
    ("NOSCRIPT No matching script. Please use EVAL.", errors.NoScriptError, False, False),
    ("EXECABORT Transaction discarded because of previous errors.", errors.ExecAbortError, False, False),
    ("CROSSSLOT Keys in request don't hash to the same slot", errors.CrossSlotError, False, False),
    ("BUSYKEY Target key name already exists.", errors.BusyKeyError, False, False),
    ("BUSYGROUP Consumer Group name already exists", errors.BusyGroupError, False, False),
    ("OOM command not allowed when used memory > 'maxmemory'.", errors.OutOfMemoryError, False, False),
    ("MISCONF Redis is configured to save RDB snapshots", errors.MisconfError, False, False),
    ("NOREPLICAS Not enough good replicas to write.", errors.NoReplicasError, False, False),
    ("BUSY Redis is busy running a script.", errors.BusyError, True, False),
    ("LOADING Redis is loading the dataset in memory", errors.LoadingError, True, False),
    ("READONLY You can't write against a read only replica.", errors.ReadOnlyError, True, False),
    ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
     errors.MasterDownError, True, False),
    ("CLUSTERDOWN The cluster is down", errors.ClusterDownError, True, False),
    ("TRYAGAIN Multiple keys request during rehashing of slot", errors.TryAgainError, True, False),
    ("MOVED 3999 127.0.0.1:6381", errors.MovedError, True, False),
    ("ASK 3999 127.0.0.1:6381", errors.AskError, True, False),
    ("SOMETHINGNEW a prefix Redis may add", errors.RedisReplyError, False, True),
]


class ErrorTests(SynchronousTestCase):
    """
    Tests for the typed error replies.
    """

    def test_table(self):
        """
        Each error reply gives its class, which says whether a retry is
        sensible and whether the command may have run.
        """
        for message, cls, retryable, reached in ERRORS:
            [error] = ReplyReader().feed(b"-" + message.encode("ascii") + b"\r\n")
            self.assertIs(type(error), cls, message)
            self.assertIsInstance(error, errors.RedisReplyError)
            self.assertIsInstance(error, errors.RedisError)
            self.assertIsInstance(error, TxScalesError)
            self.assertEqual((error.retryable, error.mayHaveReachedServer), (retryable, reached), message)
            self.assertEqual(error.message, message)
            self.assertEqual(error.code, message.split(" ")[0])
            self.assertEqual(str(error), message)

    def test_everyClassInTheTable(self):
        """
        Every prefix with a class of its own is in the table above.
        """
        self.assertEqual(
            set(errors.ERROR_CLASSES.values()), {cls for _, cls, _, _ in ERRORS} - {errors.RedisReplyError}
        )

    def test_redirects(self):
        """
        MOVED and ASK carry the slot and the node; an empty host (Redis 7's
        unknown endpoint) stays empty, and a reply that does not parse
        leaves them unknown.
        """
        moved = errors.errorFromReply("MOVED 12182 :7001")
        self.assertEqual((moved.slot, moved.host, moved.port), (12182, "", 7001))
        ask = errors.errorFromReply("ASK 1 [::1]:7002")
        self.assertEqual((ask.slot, ask.host, ask.port), (1, "[::1]", 7002))
        bad = errors.errorFromReply("MOVED elsewhere")
        self.assertEqual((bad.slot, bad.host, bad.port), (None, "", None))

    def test_protocolErrors(self):
        """
        The wire code's own errors sit under txscales' protocol and encode
        errors.
        """
        self.assertTrue(issubclass(errors.ReplyTooLargeError, FrameTooLargeError))
        self.assertTrue(issubclass(errors.RedisProtocolError, ProtocolError))
        self.assertTrue(issubclass(errors.RedisEncodeError, EncodeError))
        self.assertTrue(issubclass(ReplyDecodeError, errors.RedisError))
