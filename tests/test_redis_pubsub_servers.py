"""
Tests for the Redis client's pub/sub against real redis-server processes
(C{tests._redis}).
"""

from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, DeferredQueue, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from txscales.redis import NoPermError, Redis, ServerDownError
from txscales.redis._hashing import KetamaRing, ketamaName
from tests._redis import RedisServer


class _Base:
    timeout = 30
    protocol = 2

    @inlineCallbacks
    def setUp(self):
        self.server = RedisServer(reactor, self.addCleanup)
        yield self.server.start()

    def client(self, dest=None, **options):
        options.setdefault("registry", CollectorRegistry())
        options.setdefault("protocol", self.protocol)
        options.setdefault("backoff", (0.05, 0.2))
        options.setdefault("timeout", 5.0)
        client = Redis.newClient(dest or self.server.dest, reactor=reactor, **options)
        self.addCleanup(client.close)
        return client

    @inlineCallbacks
    def subscribers(self, channel, server=None):
        """
        @return: a Deferred of the server's count of C{channel}'s
            subscribers.
        """
        reply = yield (server or self.server).execute("PUBSUB", "NUMSUB", channel)
        return reply[1]

    @inlineCallbacks
    def clientCount(self):
        """
        @return: a Deferred of how many connections the server has, this
            question's own excluded.
        """
        listing = yield self.server.execute("CLIENT", "LIST")
        return len(listing.splitlines()) - 1


class PubSubTestsMixin(_Base):
    """
    Subscriptions against a real server, with the protocol of C{protocol}.
    """

    @inlineCallbacks
    def test_subscribe(self):
        """
        Messages of the subscribed channels reach onMessage in order as
        (channel, message) bytes, on a connection of their own; others
        commands go on meanwhile.
        """
        c = self.client()
        messages = DeferredQueue()
        subscription = yield c.subscribe("a", b"b", onMessage=lambda *m: messages.put(m))
        self.assertTrue(subscription.active)
        self.assertEqual(subscription.channels, ("a", b"b"))
        self.assertEqual((yield c.publish("a", "one")), 1)
        self.assertEqual((yield c.publish("b", b"two\x00")), 1)
        self.assertEqual((yield c.publish("c", "none")), 0)
        yield c.set("k", "v")
        self.assertEqual((yield c.get("k")), b"v")
        self.assertEqual((yield messages.get()), (b"a", b"one"))
        self.assertEqual((yield messages.get()), (b"b", b"two\x00"))
        # The pipelined connection and the pub/sub one.
        self.assertEqual((yield self.clientCount()), 2)

    @inlineCallbacks
    def test_decodeResponses(self):
        """
        With decodeResponses, onMessage gets str.
        """
        c = self.client(decodeResponses=True)
        messages = DeferredQueue()
        yield c.subscribe("é", onMessage=lambda *m: messages.put(m))
        yield c.psubscribe("p*", onMessage=lambda *m: messages.put(m))
        yield c.publish("é", "ü")
        yield c.publish("px", "y")
        self.assertEqual((yield messages.get()), ("é", "ü"))
        self.assertEqual((yield messages.get()), ("p*", "px", "y"))

    @inlineCallbacks
    def test_patterns(self):
        """
        A pattern subscription gets (pattern, channel, message) for every
        matching channel.
        """
        c = self.client()
        messages = DeferredQueue()
        subscription = yield c.psubscribe("news.*", "x?", onMessage=lambda *m: messages.put(m))
        self.assertEqual(subscription.patterns, ("news.*", "x?"))
        self.assertEqual((yield self.server.execute("PUBSUB", "NUMPAT")), 2)
        yield c.publish("news.art", "1")
        yield c.publish("other", "2")
        yield c.publish("xy", "3")
        self.assertEqual((yield messages.get()), (b"news.*", b"news.art", b"1"))
        self.assertEqual((yield messages.get()), (b"x?", b"xy", b"3"))
        yield subscription.unsubscribe()
        self.assertEqual((yield self.server.execute("PUBSUB", "NUMPAT")), 0)

    @inlineCallbacks
    def test_unsubscribe(self):
        """
        Subscriptions sharing a channel share its server-side subscription:
        unsubscribing one leaves the other's; once both are gone, the
        channel is unsubscribed, whenClosed fires, onMessage is not called
        again and the connection is closed.
        """
        c = self.client()
        first, second = [], DeferredQueue()
        one = yield c.subscribe("a", "b", onMessage=lambda *m: first.append(m))
        two = yield c.subscribe("a", onMessage=lambda *m: second.put(m))
        closed = one.whenClosed()
        self.assertEqual((yield c.publish("a", "1")), 1)
        self.assertEqual((yield second.get()), (b"a", b"1"))
        self.assertEqual(first, [(b"a", b"1")])
        yield one.unsubscribe()
        self.assertIsNone((yield closed))
        self.assertFalse(one.active)
        self.assertEqual((yield self.subscribers("a")), 1)
        self.assertEqual((yield self.subscribers("b")), 0)
        yield c.publish("a", "2")
        self.assertEqual((yield second.get()), (b"a", b"2"))
        self.assertEqual(first, [(b"a", b"1")])
        yield two.unsubscribe()
        self.assertEqual((yield self.subscribers("a")), 0)
        self.assertEqual((yield c.publish("a", "3")), 0)
        # The pub/sub connection closes; the pipelined one stays.
        for _ in range(100):
            if (yield self.clientCount()) == 1:
                break
            yield deferLater(reactor, 0.02, lambda: None)
        self.assertEqual((yield self.clientCount()), 1)
        yield one.unsubscribe()

    @inlineCallbacks
    def test_onMessageRaises(self):
        """
        An onMessage that raises is logged and the subscription goes on.
        """
        c = self.client()
        messages = DeferredQueue()

        def onMessage(channel, message):
            if message == b"bad":
                raise ZeroDivisionError("bad")
            messages.put(message)

        yield c.subscribe("a", onMessage=onMessage)
        yield c.publish("a", "bad")
        yield c.publish("a", "good")
        self.assertEqual((yield messages.get()), b"good")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    @inlineCallbacks
    def test_reconnect(self):
        """
        After kill -9 and a restart of the server on the same port, the
        client subscribes again on its own: messages published then
        arrive, the subscription stayed active throughout (the client's
        commands may fail fast with ServerDownError until its own
        reconnection backoff ends).
        """
        c = self.client()
        messages = DeferredQueue()
        subscription = yield c.subscribe("a", onMessage=lambda *m: messages.put(m))
        psubscription = yield c.psubscribe("p.*", onMessage=lambda *m: messages.put(m))
        yield c.publish("a", "before")
        self.assertEqual((yield messages.get()), (b"a", b"before"))
        yield self.server.kill()
        yield self.server.start()
        for _ in range(200):
            if (yield self.subscribers("a")) == 1 and (yield self.server.execute("PUBSUB", "NUMPAT")) == 1:
                break
            yield deferLater(reactor, 0.02, lambda: None)
        self.assertTrue(subscription.active)
        self.assertTrue(psubscription.active)
        for _ in range(500):
            try:
                received = yield c.publish("a", "after")
            except ServerDownError:
                yield deferLater(reactor, 0.02, lambda: None)
            else:
                break
        self.assertEqual(received, 1)
        self.assertEqual((yield c.publish("p.x", "pattern")), 1)
        self.assertEqual((yield messages.get()), (b"a", b"after"))
        self.assertEqual((yield messages.get()), (b"p.*", b"p.x", b"pattern"))

    @inlineCallbacks
    def test_serverDown(self):
        """
        Subscribing to a server that is down fails with ServerDownError.
        """
        yield self.server.kill()
        c = self.client()
        error = yield self.assertFailure(c.subscribe("a", onMessage=lambda *m: None), ServerDownError)
        self.assertFalse(error.mayHaveReachedServer)

    @inlineCallbacks
    def test_refused(self):
        """
        A channel the ACL user may not use fails the subscription with the
        server's NoPermError; the user's other subscriptions go on.
        """
        yield self.server.execute("ACL", "SETUSER", "bob", "on", ">pw", "resetchannels", "&ok*", "+@all", "~*")
        c = self.client(username="bob", password="pw")
        messages = DeferredQueue()
        yield c.subscribe("ok1", onMessage=lambda *m: messages.put(m))
        yield self.assertFailure(c.subscribe("ok2", "no", onMessage=lambda *m: None), NoPermError)
        self.assertEqual((yield self.subscribers("ok2")), 0)
        yield c.publish("ok1", "x")
        self.assertEqual((yield messages.get()), (b"ok1", b"x"))


class PubSubResp2Tests(PubSubTestsMixin, TestCase):
    """
    Pub/sub over RESP2 (subscribe mode).
    """


class PubSubResp3Tests(PubSubTestsMixin, TestCase):
    """
    Pub/sub over RESP3 (push messages).
    """

    protocol = 3


class ShardedPubSubTests(TestCase):
    """
    Pub/sub on a client sharded over 3 servers.
    """

    timeout = 60

    @inlineCallbacks
    def test_channelsOnTheirServers(self):
        """
        A channel is subscribed on the server its name maps to, the server
        publish sends it to; a pattern on every server.
        """
        servers = [RedisServer(reactor, self.addCleanup) for _ in range(3)]
        yield DeferredList([s.start() for s in servers], fireOnOneErrback=True, consumeErrors=True)
        client = Redis.newClient("tcp://" + ",".join(s.address for s in servers), reactor=reactor,
                                 registry=CollectorRegistry(), timeout=5.0)
        self.addCleanup(client.close)
        ring = KetamaRing([(ketamaName("127.0.0.1", s.port), 1, s) for s in servers])
        channels = ["chan:%d" % i for i in range(30)]
        messages = DeferredQueue()
        yield client.subscribe(*channels, onMessage=lambda *m: messages.put(m))
        yield client.psubscribe("chan:1*", onMessage=lambda *m: messages.put(m))
        for server in servers:
            listed = yield server.execute("PUBSUB", "CHANNELS")
            self.assertEqual(sorted(listed), sorted(c.encode() for c in channels if ring.nodeFor(c) is server))
            self.assertTrue(listed)
            self.assertEqual((yield server.execute("PUBSUB", "NUMPAT")), 1)
        for channel in channels:
            self.assertEqual((yield client.publish(channel, "m")), 2 if channel.startswith("chan:1") else 1)
        received = []
        for _ in range(30 + 11):
            received.append((yield messages.get()))
        self.assertEqual(sorted(m for m in received if len(m) == 2), sorted((c.encode(), b"m") for c in channels))
        self.assertEqual(len([m for m in received if len(m) == 3]), 11)
