"""
Tests for recovery: failure accrual settles every probe and counts
timeouts, the Mux failure detector reacts within a ping interval, unanswered
discards are bounded, and reconnections back off.
"""

from random import Random

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txscales._backoff import ReconnectBackoff, exponentialJittered
from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales.discovery._resolve import StaticDestination
from txscales.errors import ConnectError, ConnectionLostError, DiscardedTagsError
from txscales.interfaces import BUSY, OPEN
from txscales.mux._messages import Rdiscarded, Rping, Tdiscarded, Tdispatch, Tping
from txscales.mux.protocol import DiscardedCall, MuxServerFactory, MuxServerProtocol
from txscales.stack._accrual import ALIVE, DEAD, PROBE_CLOSED
from txscales.stack._clientstack import ClientStack
from txscales.testing import MemoryNetwork

from tests.test_mux_client import ClientHarness


class FakeEndpoint:
    """
    A server that answers C{"ok"}, loses its connection, refuses
    connections or never answers, as C{mode} says.

    @ivar mode: C{"up"}, C{"lost"}, C{"down"} or C{"frozen"}.
    @ivar received: calls that reached it.
    """

    status = OPEN

    def __init__(self, host, port):
        self.host = host
        self.port = port
        self.mode = "up"
        self.received = 0

    def getProtocol(self):
        if self.mode == "down":
            return fail(ConnectError("cannot connect to %s:%d" % (self.host, self.port)))
        return succeed(self)

    def __call__(self, request):
        if self.mode == "down":
            return self.getProtocol()
        self.received += 1
        if self.mode == "lost":
            return fail(ConnectionLostError("killed"))
        if self.mode == "frozen":
            return Deferred(lambda d: d.errback(DiscardedCall(True)))
        return succeed("ok")

    def close(self):
        return succeed(None)


class Request:
    """
    A request with a timeout.
    """

    decode = None

    def __init__(self, timeout=None):
        self.timeout = timeout

    def retried(self, n):
        return self


class AccrualRecoveryTests(SynchronousTestCase):
    """
    Of three servers behind p2c, one that died and came back, or froze and
    thawed, gets requests again.
    """

    def setUp(self):
        self.build()

    def build(self, **options):
        """
        Make the stack of three servers with C{options}.
        """
        self.clock = Clock()
        self.endpoints = [FakeEndpoint("10.0.0.%d" % (i,), 9090) for i in range(3)]
        byAddress = {(e.host, e.port): e for e in self.endpoints}
        destination = StaticDestination(list(byAddress))
        self.stack = ClientStack(self.clock, Random(3), destination, lambda h, p: byAddress[(h, p)], **options)
        self.victim = self.endpoints[1]
        self.node = self.stack.nodes[1]

    def tearDown(self):
        self.successResultOf(self.stack.close())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def calls(self, seconds, timeout=None, perSecond=20):
        """
        Make C{perSecond} calls a second for C{seconds}.
        """
        for _ in range(int(seconds * perSecond)):
            self.stack(Request(timeout)).addErrback(lambda f: None)
            self.clock.advance(1.0 / perSecond)

    def kill(self):
        """
        The victim loses its calls in flight, then refuses connections.
        """
        self.victim.mode = "lost"
        while self.node.accrual.state != DEAD:
            self.calls(0.05)
        self.victim.mode = "down"

    def test_probeConnectErrorThenRestart(self):
        """
        A probe failing with L{ConnectError} settles failure accrual, and the
        server, restarted, gets requests once fail-fast connects again.
        """
        self.kill()
        self.calls(10)
        self.assertNotEqual(self.node.accrual.state, PROBE_CLOSED)
        self.assertTrue(self.node.failFast.down)
        self.victim.mode = "up"
        before = self.victim.received
        self.calls(40)
        self.assertEqual(self.node.accrual.state, ALIVE)
        self.assertEqual(self.node.status, OPEN)
        self.assertGreater(self.victim.received - before, 100)

    def test_timeoutsMarkDead(self):
        """
        Five timeouts in a row mark a frozen server dead; a probe timing out
        marks it dead again, and one answered after it thaws revives it.
        """
        self.victim.mode = "frozen"
        self.calls(30, timeout=0.5)
        accrual = self.node.accrual
        self.assertGreaterEqual(accrual.removals, 2)
        self.assertNotEqual(accrual.state, PROBE_CLOSED)
        # Five to be marked dead, then one probe per backoff.
        self.assertLessEqual(self.victim.received, 5 + accrual.removals)
        self.victim.mode = "up"
        self.calls(320, perSecond=2)
        self.assertEqual(accrual.state, ALIVE)
        self.assertEqual(accrual.revivals, 1)

    def test_timeoutsNotCounted(self):
        """
        With C{countTimeouts=False}, timeouts leave accrual alive.
        """
        self.successResultOf(self.stack.close())
        self.build(failureAccrual={"countTimeouts": False})
        self.victim.mode = "frozen"
        self.calls(5, timeout=0.5)
        self.assertEqual(self.node.accrual.state, ALIVE)
        self.assertGreater(self.victim.received, 5)


class PingDetectorTests(SynchronousTestCase):
    """
    The Mux failure detector notices a frozen server within a ping interval.
    """

    def test_closesWithinOneInterval(self):
        """
        A discarded call sends a ping at once: the session is busy once the
        ping is late and closed within one ping interval of the freeze.
        """
        h = ClientHarness(pingInterval=5.0, pingTimeout=4.0)
        h.negotiate()
        h.clock.advance(0)
        h.receive(Rping(1))
        h.written()
        d = h.protocol.dispatch(b"a")
        h.clock.advance(0.5)
        d.cancel()
        self.failureResultOf(d, DiscardedCall)
        h.clock.advance(0)
        self.assertEqual(h.written(), [Tdispatch(2, [], b"", [], b"a"), Tdiscarded(2, b"call cancelled by the client"), Tping(1)])
        self.assertEqual(h.protocol.status, OPEN)
        h.clock.advance(0.1)
        self.assertEqual(h.protocol.status, BUSY)
        h.clock.advance(3.9)
        self.assertTrue(h.transport.disconnected)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_threshold(self):
        """
        A ping is late after C{pingThreshold} times the longest recent round
        trip; its answer makes the session open again.
        """
        h = ClientHarness(pingInterval=5.0, pingTimeout=4.0, pingThreshold=3.0)
        h.negotiate()
        h.clock.advance(0)
        h.clock.advance(0.1)
        h.receive(Rping(1))
        h.clock.advance(5.0)
        self.assertEqual(h.written(), [Tping(1), Tping(1)])
        h.clock.advance(0.29)
        self.assertEqual(h.protocol.status, OPEN)
        h.clock.advance(0.02)
        self.assertEqual(h.protocol.status, BUSY)
        h.receive(Rping(1))
        self.assertEqual(h.protocol.status, OPEN)
        h.protocol.close()
        self.assertEqual(h.clock.getDelayedCalls(), [])


class LatePingEndpointTests(SynchronousTestCase):
    """
    A session that is busy because its ping is late still takes the calls
    a balancer sends it anyway.
    """

    def test_callsGoThrough(self):
        """
        A call made while the ping is late is answered.
        """
        network = MemoryNetwork()
        network.serveThriftMux(TestService.Iface, TestServiceHandler(network.clock))
        client = network.thriftMuxClient(TestService.Iface, "tcp://127.0.0.1:9090", stats=False, pingInterval=5.0)
        self.assertEqual(self.successResultOf(client.query("a")), "aa")
        network.clock.advance(0)
        protocol = client.stack.nodes[0].endpoint.protocol
        protocol._pingSentAt = network.clock.seconds()
        network.clock.advance(0.1)
        self.assertEqual(protocol.status, BUSY)
        self.assertEqual(self.successResultOf(client.query("b")), "bb")
        self.successResultOf(client.stack.close())
        self.assertEqual(network.clock.getDelayedCalls(), [])


class MaxDiscardedTests(SynchronousTestCase):
    """
    Discarded calls the server never answers are bounded per session.
    """

    def test_closesPastBound(self):
        """
        Past C{maxDiscarded} unanswered discards, the session closes with
        L{DiscardedTagsError} and its other calls fail.
        """
        h = ClientHarness(pingInterval=None, maxDiscarded=3)
        h.negotiate()
        calls = [h.protocol.dispatch(b"x") for _ in range(5)]
        for d in calls[:3]:
            d.cancel()
            self.failureResultOf(d, DiscardedCall)
        self.assertFalse(h.transport.disconnected)
        calls[3].cancel()
        self.failureResultOf(calls[3], DiscardedCall)
        self.assertTrue(h.transport.disconnected)
        error = self.failureResultOf(calls[4], ConnectionLostError).value
        self.assertIsInstance(error.reason, DiscardedTagsError)

    def test_answeredDiscardsFreed(self):
        """
        Discards the server answers do not count.
        """
        h = ClientHarness(pingInterval=None, maxDiscarded=3)
        h.negotiate()
        for _ in range(10):
            d = h.protocol.dispatch(b"x")
            d.cancel()
            self.failureResultOf(d, DiscardedCall)
            h.receive(Rdiscarded(2))
        self.assertFalse(h.transport.disconnected)


class ReconnectBackoffTests(SynchronousTestCase):
    """
    Sessions dying young delay the next connection by a growing jittered
    backoff, reset by a session living C{healthyAfter}.
    """

    def test_growsAndResets(self):
        """
        The delays follow Finagle's exponential jittered law from the
        random given, and reset after a healthy session.
        """
        clock = Clock()
        backoff = ReconnectBackoff(clock, Random(7), (1.0, 32.0), healthyAfter=5.0)
        expected = exponentialJittered(1.0, 32.0, Random(7))
        self.assertEqual(backoff.delay(), 0.0)
        delays = []
        for _ in range(6):
            backoff.connected()
            clock.advance(0.1)
            backoff.lost()
            delays.append(backoff.delay())
            clock.advance(backoff.delay())
        for delay in delays:
            self.assertAlmostEqual(delay, next(expected))
        self.assertEqual(delays[0], 1.0)
        self.assertGreater(max(delays[3:]), 4.0)
        backoff.connected()
        clock.advance(5.0)
        backoff.lost()
        self.assertEqual(backoff.delay(), 0.0)
        backoff.connected()
        backoff.lost()
        self.assertEqual(backoff.delay(), 1.0)


class BreakingServerProtocol(MuxServerProtocol):
    """
    A Mux server that closes every session once it is negotiated.
    """

    def dataReceived(self, data):
        MuxServerProtocol.dataReceived(self, data)
        if self.session is not None and self.session.negotiated:
            self.transport.loseConnection()


class BreakingServerFactory(MuxServerFactory):
    """
    Make L{BreakingServerProtocol}s.
    """

    def buildProtocol(self, addr):
        p = BreakingServerProtocol(lambda request: b"", self._clock)
        p.factory = self
        return p


class ReconnectStormTests(SynchronousTestCase):
    """
    A server breaking every session does not get a storm of connections.
    """

    def test_fewConnections(self):
        """
        Ten calls a second for 20 s make a handful of connections.
        """
        network = MemoryNetwork()
        network.listen(BreakingServerFactory(None, network.clock), 9090)
        client = network.thriftMuxClient(TestService.Iface, "tcp://127.0.0.1:9090", random=Random(1), stats=False)
        for _ in range(200):
            client.query("x").addErrback(lambda f: None)
            network.clock.advance(0.1)
        self.assertLessEqual(network.connections, 8)
        self.assertGreaterEqual(network.connections, 3)
        self.successResultOf(client.stack.close())
        network.clock.advance(60)
        self.assertEqual(network.clock.getDelayedCalls(), [])
