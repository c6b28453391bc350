"""
Tests for the client stack's parts: retry budget, failure accrual,
fail-fast, and the whole stack over an in-memory network.
"""

import random

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales.errors import ConnectError
from txscales.interfaces import BUSY, CLOSED, OPEN
from txscales.stack._accrual import ALIVE, DEAD, PROBE_CLOSED, PROBE_OPEN, FailFast, FailureAccrual
from txscales.stack._retrybudget import RetryBudget
from txscales.testing import MemoryNetwork


class BudgetTests(SynchronousTestCase):
    """
    Finagle's retry budget: 20% of recent successes plus 10 per second.
    """

    def test_reserve(self):
        """
        With no traffic the budget allows the reserve: 10 per second over
        10 seconds.
        """
        budget = RetryBudget(Clock().seconds)
        self.assertEqual(budget.balance(), 100)
        allowed = sum(budget.tryWithdraw() for _ in range(150))
        self.assertEqual(allowed, 100)

    def test_percentOfDeposits(self):
        """
        Each deposit adds a fifth of a retry.
        """
        budget = RetryBudget(Clock().seconds, minRetriesPerSec=0)
        self.assertFalse(budget.tryWithdraw())
        for _ in range(50):
            budget.deposit()
        self.assertEqual(budget.balance(), 10)
        self.assertEqual(sum(budget.tryWithdraw() for _ in range(20)), 10)

    def test_refillsAfterTtl(self):
        """
        Withdrawals leak out of the window, so the reserve comes back.
        """
        clock = Clock()
        budget = RetryBudget(clock.seconds)
        while budget.tryWithdraw():
            pass
        clock.advance(10.0)
        self.assertEqual(budget.balance(), 100)

    def test_badParameters(self):
        """
        Out-of-range parameters raise ValueError.
        """
        self.assertRaises(ValueError, RetryBudget, Clock().seconds, percentCanRetry=1.5)
        self.assertRaises(ValueError, RetryBudget, Clock().seconds, ttl=0)


class AccrualTests(SynchronousTestCase):
    """
    Failure accrual marks an endpoint dead, probes it and revives it.
    """

    def setUp(self):
        self.clock = Clock()
        self.accrual = FailureAccrual(self.clock, random.Random(0))

    def test_consecutiveFailures(self):
        """
        Five failures in a row mark the endpoint dead (busy).
        """
        for _ in range(20):
            self.accrual.success()
        for _ in range(4):
            self.accrual.failure()
        self.assertEqual(self.accrual.state, ALIVE)
        self.accrual.failure()
        self.assertEqual((self.accrual.state, self.accrual.status), (DEAD, BUSY))
        self.accrual.stop()

    def test_successRate(self):
        """
        A success rate under 80% over the window marks it dead, though
        failures never come five in a row.
        """
        for _ in range(10):
            self.accrual.success()
            self.accrual.failure()
            if self.accrual.state == DEAD:
                break
        self.assertEqual(self.accrual.state, DEAD)
        self.accrual.stop()

    def test_probeRevives(self):
        """
        After the mark-dead backoff one probe is admitted; its success
        revives the endpoint.
        """
        for _ in range(5):
            self.accrual.failure()
        self.clock.advance(5.0)
        self.assertEqual((self.accrual.state, self.accrual.status), (PROBE_OPEN, OPEN))
        self.accrual.admit()
        self.assertEqual((self.accrual.state, self.accrual.status), (PROBE_CLOSED, BUSY))
        self.accrual.success()
        self.assertEqual(self.accrual.state, ALIVE)
        self.assertEqual((self.accrual.removals, self.accrual.revivals), (1, 1))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_probeFailureBacksOffLonger(self):
        """
        A failed probe marks it dead again for a longer time.
        """
        for _ in range(5):
            self.accrual.failure()
        self.clock.advance(5.0)
        self.accrual.admit()
        self.accrual.failure()
        self.assertEqual(self.accrual.state, DEAD)
        [call] = self.clock.getDelayedCalls()
        self.assertTrue(5.0 <= call.getTime() - self.clock.seconds() <= 10.0)
        self.accrual.stop()


class FailFastTests(SynchronousTestCase):
    """
    An endpoint that cannot be connected to reconnects in the background.
    """

    def test_reconnectWithBackoff(self):
        """
        Marked down, it retries after growing delays until a connection
        succeeds.
        """
        clock = Clock()
        outcomes = [fail(ConnectError("refused")), fail(ConnectError("refused")), succeed(None)]
        failFast = FailFast(clock, random.Random(2), lambda: outcomes.pop(0))
        failFast.markDown()
        self.assertTrue(failFast.down)
        clock.advance(1.0)
        self.assertEqual(failFast.attempts, 1)
        self.assertTrue(failFast.down)
        clock.advance(2.0)
        clock.advance(4.0)
        self.assertEqual(failFast.attempts, 3)
        self.assertFalse(failFast.down)
        self.assertEqual(clock.getDelayedCalls(), [])


class StackTests(SynchronousTestCase):
    """
    The whole stack over three in-memory servers.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.handlers = []
        for port in (9001, 9002, 9003):
            handler = TestServiceHandler(self.network.clock)
            self.handlers.append(handler)
            self.network.serveThriftMux(TestService.Iface, handler, port=port)
        self.client = self.network.thriftMuxClient(
            TestService.Iface, "tcp://127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003", random=random.Random(5), stats=False
        )

    def tearDown(self):
        self.successResultOf(self.client.close())
        self.assertEqual(self.network.clock.getDelayedCalls(), [])

    def served(self):
        return [node.endpoint.port for node in self.client.stack.nodes]

    def test_spread(self):
        """
        Held calls spread over all three servers.
        """
        calls = [self.client.delayedQuery("x", 100) for _ in range(30)]
        pending = [node.pending for node in self.client.stack.nodes]
        self.assertEqual(sum(pending), 30)
        self.assertTrue(min(pending) >= 8, pending)
        self.network.clock.advance(0.1)
        self.assertEqual([self.successResultOf(d) for d in calls], ["xx"] * 30)

    def test_downServerRequeued(self):
        """
        Calls picked for a server nobody listens on are requeued to the
        others; no caller sees a failure, and the server is marked closed.
        """
        self.network.stopListening(9002)
        results = [self.client.query("q%d" % i) for i in range(30)]
        self.assertEqual([self.successResultOf(d) for d in results], ["q%dq%d" % (i, i) for i in range(30)])
        statuses = {node.endpoint.port: node.status for node in self.client.stack.nodes}
        self.assertEqual(statuses[9002], CLOSED)
        self.assertGreater(self.client.stack.dispatcher.requeues, 0)
        self.network.serveThriftMux(TestService.Iface, self.handlers[1], port=9002)
        self.network.clock.advance(1.0)
        self.assertEqual(self.client.stack.nodes[1].status, OPEN)
        before = len(self.handlers[1].messages)
        self.successResultOf(self.client.withOptions().query("after"))
        self.assertEqual(len(self.handlers[1].messages), before)

    def test_drainedServerNoFailures(self):
        """
        A server draining its sessions causes no failed call: new calls go
        to the other servers.
        """
        first = [self.client.delayedQuery("a%d" % i, 50) for i in range(30)]
        factory = self.network._servers[("127.0.0.1", 9002)]
        self.network.stopListening(9002)
        factory.drainAll()
        second = [self.client.query("b%d" % i) for i in range(30)]
        self.network.clock.advance(0.05)
        self.assertEqual([self.successResultOf(d) for d in first], ["a%da%d" % (i, i) for i in range(30)])
        self.assertEqual([self.successResultOf(d) for d in second], ["b%db%d" % (i, i) for i in range(30)])


class UpdateAndDeadlineTests(SynchronousTestCase):
    """
    Endpoint set changes, deadline propagation and the Retries context.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.clock = self.network.clock

    def test_updateKeepsInFlight(self):
        """
        Removing an endpoint lets its calls in flight finish, then closes
        its session; new calls go to the remaining endpoints.
        """
        from txscales.mux._client import MuxEndpoint

        for port in (9001, 9002):
            self.network.serveThriftMux(TestService.Iface, TestServiceHandler(self.clock), port=port)
        client = self.network.thriftMuxClient(TestService.Iface, "tcp://127.0.0.1:9001,127.0.0.1:9002", stats=False)
        stack = client.stack
        held = [client.delayedQuery("h%d" % i, 100) for i in range(10)]
        old = stack.nodes[1]
        self.assertGreater(old.pending, 0)
        stack.update([stack.nodes[0].endpoint])
        self.assertTrue(old.retiring)
        self.assertIsNotNone(old.endpoint.protocol)
        self.assertEqual(self.successResultOf(client.query("n")), "nn")
        self.clock.advance(0.1)
        self.assertEqual([self.successResultOf(d) for d in held], ["h%dh%d" % (i, i) for i in range(10)])
        self.assertEqual(old.endpoint.status, CLOSED)
        stack.update([stack.nodes[0].endpoint, MuxEndpoint(self.clock, "127.0.0.1", 9002, endpointFactory=self.network.endpoint)])
        self.assertEqual(len(stack.nodes), 2)
        self.successResultOf(client.close())

    def test_incomingDeadlineBoundsCalls(self):
        """
        A handler's downstream call is cut off at the deadline of the request
        it serves, and discarded downstream.
        """
        downstreamHandler = TestServiceHandler(self.clock)
        self.network.serveThriftMux(TestService.Iface, downstreamHandler, port=9002)
        downstream = self.network.thriftMuxClient(TestService.Iface, "tcp://127.0.0.1:9002", stats=False)

        class Forwarding(TestServiceHandler):
            def query(self, x):
                return downstream.delayedQuery(x, 5000)

        self.network.serveThriftMux(TestService.Iface, Forwarding(self.clock), port=9001)
        client = self.network.thriftMuxClient(TestService.Iface, "tcp://127.0.0.1:9001", timeout=0.25, stats=False)
        from txscales.errors import ApplicationError, RequestTimeoutError

        d = client.query("x")
        self.clock.advance(0.2499)
        self.assertNoResult(d)
        self.clock.advance(0.0001)
        # The downstream call ends at the same instant as the caller's own
        # timeout, so either may be seen first.
        self.failureResultOf(d, RequestTimeoutError, ApplicationError)
        self.flushLoggedErrors(RequestTimeoutError)
        protocol = downstream.stack.nodes[0].endpoint.protocol
        self.assertEqual(protocol.pending, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.successResultOf(client.close())
        self.successResultOf(downstream.close())

    def test_retriesContext(self):
        """
        A requeued Mux request carries the requeue count in its Retries
        context.
        """
        from txscales.mux._client import RETRIES_KEY, MuxRequest

        request = MuxRequest(b"", [(b"a", b"1"), (RETRIES_KEY, b"\x00\x00\x00\x00")])
        retried = request.retried(2)
        self.assertEqual(retried.contexts, [(b"a", b"1"), (RETRIES_KEY, b"\x00\x00\x00\x02")])
        self.assertEqual(request.contexts[1], (RETRIES_KEY, b"\x00\x00\x00\x00"))
