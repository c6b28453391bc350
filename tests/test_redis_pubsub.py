"""
Tests for the Redis client's pub/sub over C{StringTransport} and
C{task.Clock}: subscribe mode in RESP2 and RESP3, shared channels,
reconnection with backoff, refusals, timeouts and sharding.
"""

from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txscales.errors import ClientClosedError, RequestTimeoutError
from txscales.redis import NoPermError, ServerDownError
from txscales.redis._node import HEALTHY_AFTER
from txscales.redis._resp import encodeCommand
from tests._redisfake import FakeServers


def bulk(value):
    return b"$%d\r\n%s\r\n" % (len(value), value)


def reply(kind, *parts, resp3=False):
    """
    @return: a pub/sub reply: a RESP2 array or a RESP3 push of C{kind}
        then C{parts} (bytes as bulk strings, ints as integers).
    """
    out = [b"%s%d\r\n" % (b">" if resp3 else b"*", len(parts) + 1), bulk(kind)]
    for part in parts:
        out.append(b":%d\r\n" % (part,) if isinstance(part, int) else bulk(part))
    return b"".join(out)


class _Base(SynchronousTestCase):
    resp3 = False

    def setUp(self):
        self.servers = FakeServers()
        self.clock = self.servers.clock
        self.messages = []

    def tearDown(self):
        self.successResultOf(self.client.close())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def makeClient(self, **options):
        options.setdefault("protocol", 3 if self.resp3 else 2)
        self.client = self.servers.client(**options)
        return self.client

    def connection(self):
        """
        @return: the last connection made, its RESP3 handshake answered.
        """
        connection = self.servers.connections[-1]
        if self.resp3 and connection.transport.value().startswith(encodeCommand(["HELLO", 3])):
            connection.written()
            connection.feed(b"%1\r\n+proto\r\n:3\r\n")
        return connection

    def reply(self, kind, *parts):
        return reply(kind, *parts, resp3=self.resp3)

    def subscribed(self, *channels):
        """
        Subscribe to C{channels} and confirm them.

        @return: the subscription and its connection.
        """
        d = self.client.subscribe(*channels, onMessage=lambda *m: self.messages.append(m))
        connection = self.connection()
        self.assertEqual(connection.written(), encodeCommand(["SUBSCRIBE"] + [c.encode() for c in channels]))
        for count, channel in enumerate(channels, 1):
            connection.feed(self.reply(b"subscribe", channel.encode(), count))
        return self.successResultOf(d), connection


class PubSubTestsMixin:
    """
    Pub/sub with the protocol of C{resp3}.
    """

    def test_subscribe(self):
        """
        SUBSCRIBE goes on a connection of its own; the Deferred fires once
        every channel is confirmed; messages reach onMessage as bytes.
        """
        client = self.makeClient()
        d = client.subscribe("a", b"b", "a", onMessage=lambda *m: self.messages.append(m))
        connection = self.connection()
        self.assertEqual(connection.written(), encodeCommand(["SUBSCRIBE", b"a", b"b"]))
        self.assertIsNone(client.nodes[0].connection)
        connection.feed(self.reply(b"subscribe", b"a", 1))
        self.assertNoResult(d)
        connection.feed(self.reply(b"subscribe", b"b", 2) + self.reply(b"message", b"a", b"hi"))
        subscription = self.successResultOf(d)
        self.assertTrue(subscription.active)
        self.assertEqual(self.messages, [(b"a", b"hi")])
        connection.feed(self.reply(b"message", b"other", b"x"))
        self.assertEqual(len(self.messages), 1)
        # Other commands go on the pipelined connection.
        client.get("k").addErrback(lambda f: f.trap(ClientClosedError))
        self.assertEqual(len(self.servers.connections), 2)

    def test_patterns(self):
        """
        PSUBSCRIBE, and pmessages as (pattern, channel, message).
        """
        client = self.makeClient()
        d = client.psubscribe("n.*", onMessage=lambda *m: self.messages.append(m))
        connection = self.connection()
        self.assertEqual(connection.written(), encodeCommand(["PSUBSCRIBE", b"n.*"]))
        connection.feed(self.reply(b"psubscribe", b"n.*", 1) + self.reply(b"pmessage", b"n.*", b"n.x", b"m"))
        self.assertEqual(self.successResultOf(d).patterns, ("n.*",))
        self.assertEqual(self.messages, [(b"n.*", b"n.x", b"m")])

    def test_sharedAndUnsubscribe(self):
        """
        A channel two subscriptions name is subscribed once and
        unsubscribed with the last of them; the unsubscribe Deferred fires
        on the server's confirmation, and the connection closes once
        nothing is subscribed.
        """
        client = self.makeClient()
        one, connection = self.subscribed("a", "b")
        other = []
        two = self.successResultOf(client.subscribe("a", onMessage=lambda *m: other.append(m)))
        self.assertEqual(connection.written(), b"")
        connection.feed(self.reply(b"message", b"a", b"1"))
        self.assertEqual((self.messages, other), ([(b"a", b"1")], [(b"a", b"1")]))
        closed = one.whenClosed()
        done = one.unsubscribe()
        self.assertEqual(connection.written(), encodeCommand(["UNSUBSCRIBE", b"b"]))
        self.assertNoResult(done)
        self.assertIsNone(self.successResultOf(closed))
        connection.feed(self.reply(b"message", b"a", b"2"))
        self.assertEqual((self.messages, other), ([(b"a", b"1")], [(b"a", b"1"), (b"a", b"2")]))
        connection.feed(self.reply(b"unsubscribe", b"b", 1))
        self.successResultOf(done)
        self.successResultOf(one.unsubscribe())
        done = two.unsubscribe()
        self.assertEqual(connection.written(), encodeCommand(["UNSUBSCRIBE", b"a"]))
        self.assertFalse(connection.transport.disconnecting)
        connection.feed(self.reply(b"unsubscribe", b"a", 0))
        self.successResultOf(done)
        self.assertTrue(connection.transport.disconnecting)

    def test_onMessageRaises(self):
        """
        An exception of onMessage is logged; the next message is delivered.
        """
        client = self.makeClient()
        received = []

        def onMessage(channel, message):
            received.append(message)
            raise ZeroDivisionError()

        d = client.subscribe("a", onMessage=onMessage)
        connection = self.connection()
        connection.feed(self.reply(b"subscribe", b"a", 1))
        connection.feed(self.reply(b"message", b"a", b"1") + self.reply(b"message", b"a", b"2"))
        self.assertTrue(self.successResultOf(d).active)
        self.assertEqual(received, [b"1", b"2"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    def test_reconnect(self):
        """
        After a lost connection the client connects again after the backoff
        (at once after a connection that lived HEALTHY_AFTER) and
        subscribes again to everything; the subscription stays active.
        """
        client = self.makeClient()
        subscription, connection = self.subscribed("a")
        p = self.successResultOf(self._psubscribe(client))
        connection.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(self.servers.connections), 1)
        self.clock.advance(1.0)
        connection = self.connection()
        self.assertEqual(connection.written(), encodeCommand(["SUBSCRIBE", b"a"]) + encodeCommand(
            ["PSUBSCRIBE", b"p*"]))
        self.assertTrue(subscription.active and p.active)
        connection.feed(self.reply(b"subscribe", b"a", 1) + self.reply(b"psubscribe", b"p*", 2))
        connection.feed(self.reply(b"message", b"a", b"back"))
        self.assertEqual(self.messages, [(b"a", b"back")])
        self.clock.advance(HEALTHY_AFTER)
        connection.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(self.servers.connections), 3)

    def _psubscribe(self, client):
        d = client.psubscribe("p*", onMessage=lambda *m: None)
        connection = self.connection()
        self.assertEqual(connection.written(), encodeCommand(["PSUBSCRIBE", b"p*"]))
        connection.feed(self.reply(b"psubscribe", b"p*", 2))
        return d

    def test_serverDown(self):
        """
        A connection attempt that fails fails the subscriptions not yet
        confirmed with ServerDownError; confirmed ones wait for the next
        attempt.
        """
        client = self.makeClient()
        subscription, connection = self.subscribed("a")
        self.servers.refuse[("h", 1)] = ConnectionRefusedError()
        connection.protocol.connectionLost(Failure(ConnectionDone()))
        self.clock.advance(1.0)
        self.failureResultOf(client.subscribe("b", onMessage=lambda *m: None), ServerDownError)
        self.assertTrue(subscription.active)
        del self.servers.refuse[("h", 1)]
        self.clock.advance(2.0)
        self.assertEqual(self.connection().written(), encodeCommand(["SUBSCRIBE", b"a"]))

    def test_refused(self):
        """
        An error reply to SUBSCRIBE fails that subscription with the typed
        error; the others go on.
        """
        client = self.makeClient()
        subscription, connection = self.subscribed("a")
        d = client.subscribe("b", "c", onMessage=lambda *m: None)
        self.assertEqual(connection.written(), encodeCommand(["SUBSCRIBE", b"b", b"c"]))
        connection.feed(b"-NOPERM this user has no permissions to access one of the channels\r\n")
        self.failureResultOf(d, NoPermError)
        self.assertTrue(subscription.active)
        connection.feed(self.reply(b"message", b"a", b"still"))
        self.assertEqual(self.messages, [(b"a", b"still")])

    def test_timeout(self):
        """
        A subscription not confirmed within the client's timeout fails with
        RequestTimeoutError and is unsubscribed.
        """
        client = self.makeClient(timeout=2.0)
        d = client.subscribe("a", onMessage=lambda *m: None)
        connection = self.connection()
        connection.written()
        self.clock.advance(2.0)
        self.failureResultOf(d, RequestTimeoutError)
        self.assertEqual(connection.written(), encodeCommand(["UNSUBSCRIBE", b"a"]))

    def test_close(self):
        """
        Closing the client ends confirmed subscriptions (whenClosed fires
        with None) and fails pending ones with ClientClosedError.
        """
        client = self.makeClient()
        subscription, connection = self.subscribed("a")
        closed = subscription.whenClosed()
        pending = client.subscribe("b", onMessage=lambda *m: None)
        self.successResultOf(client.close())
        self.assertIsNone(self.successResultOf(closed))
        self.failureResultOf(pending, ClientClosedError)
        self.assertFalse(subscription.active)
        self.assertTrue(connection.transport.disconnecting)
        self.failureResultOf(client.subscribe("c", onMessage=lambda *m: None), ClientClosedError)

    def test_decodeResponses(self):
        """
        With decodeResponses, messages are str; one that does not decode is
        dropped.
        """
        client = self.makeClient(encoding="utf-8")
        d = client.subscribe("é", onMessage=lambda *m: self.messages.append(m))
        connection = self.connection()
        connection.feed(self.reply(b"subscribe", "é".encode(), 1))
        self.successResultOf(d)
        connection.feed(self.reply(b"message", "é".encode(), b"\xff") + self.reply(b"message", "é".encode(), b"ok"))
        self.assertEqual(self.messages, [("é", "ok")])

    def test_badArguments(self):
        """
        No channel, a channel neither bytes nor str, or an onMessage that is
        not callable, raise TypeError.
        """
        client = self.makeClient()
        self.assertRaises(TypeError, client.subscribe, onMessage=print)
        self.assertRaises(TypeError, client.psubscribe, 1, onMessage=print)
        self.assertRaises(TypeError, client.subscribe, "a", onMessage=None)


class PubSubResp2Tests(PubSubTestsMixin, _Base):
    """
    Pub/sub in RESP2 subscribe mode.
    """


class PubSubResp3Tests(PubSubTestsMixin, _Base):
    """
    Pub/sub with RESP3 pushes.
    """

    resp3 = True


class ShardedPubSubTests(_Base):
    """
    Pub/sub on a client sharded over two servers.
    """

    def test_placement(self):
        """
        A channel is subscribed on its server on the ring (that of
        publish), a pattern on every server.
        """
        client = self.makeClient(addresses=[("h", 1), ("h", 2)])
        channels = ["c%d" % i for i in range(20)]
        client.subscribe(*channels, onMessage=lambda *m: None).addErrback(lambda f: f.trap(ClientClosedError))
        written = {c.address: c.written() for c in self.servers.connections}
        for address in [("h", 1), ("h", 2)]:
            mine = [c.encode() for c in channels if client.nodeFor(c).address == address]
            self.assertTrue(mine)
            self.assertEqual(written[address], encodeCommand(["SUBSCRIBE"] + mine))
        client.psubscribe("p*", onMessage=lambda *m: None).addErrback(lambda f: f.trap(ClientClosedError))
        for connection in self.servers.connections:
            self.assertEqual(connection.written(), encodeCommand(["PSUBSCRIBE", b"p*"]))
        client.publish("c0", "m").addErrback(lambda f: f.trap(ClientClosedError))
        published = self.servers.connections[-1]
        self.assertEqual(published.address, client.nodeFor("c0").address)
        self.assertEqual(published.written(), encodeCommand(["PUBLISH", "c0", "m"]))

    def test_serversChange(self):
        """
        When a server goes, its channels move to the server they map to
        now, and its connection closes; the subscription stays active.
        """
        client = self.makeClient(addresses=[("h", 1), ("h", 2)])
        channels = ["c%d" % i for i in range(20)]
        placed = {c: client.nodeFor(c).address for c in channels}
        d = client.subscribe(*channels, onMessage=lambda *m: self.messages.append(m))
        connections = {}
        for connection in self.servers.connections:
            connections[connection.address] = connection
            connection.written()
            mine = [c for c in channels if placed[c] == connection.address]
            for count, channel in enumerate(mine, 1):
                connection.feed(reply(b"subscribe", channel.encode(), count))
        subscription = self.successResultOf(d)
        client._setServers([("h", 1)])
        self.assertTrue(connections[("h", 2)].transport.disconnecting)
        moved = [c.encode() for c in channels if placed[c] == ("h", 2)]
        self.assertEqual(connections[("h", 1)].written(), encodeCommand(["SUBSCRIBE"] + moved))
        self.assertTrue(subscription.active)
        connections[("h", 1)].feed(reply(b"message", moved[0], b"m"))
        self.assertEqual(self.messages, [(moved[0], b"m")])


class DownThenIdleTests(_Base):
    """
    A server that was down, once nothing is subscribed there.
    """

    def test_triesAgain(self):
        """
        After the subscriptions waiting on a server that is down failed, the
        next subscription tries to connect at once instead of failing.
        """
        client = self.makeClient()
        self.servers.refuse[("h", 1)] = ConnectionRefusedError()
        self.failureResultOf(client.subscribe("a", onMessage=lambda *m: None), ServerDownError)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        del self.servers.refuse[("h", 1)]
        d = client.subscribe("a", onMessage=lambda *m: None)
        connection = self.connection()
        connection.feed(reply(b"subscribe", b"a", 1))
        self.assertTrue(self.successResultOf(d).active)
