"""
Tests for the client stack's parts: retry budget, failure accrual,
fail-fast, requeues, and the whole stack over an in-memory network.
"""

import random

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales._connection import DiscardedCall
from txscales.errors import (
    ConnectError,
    DiscoveryError,
    NoEndpointsError,
    RequestNackedError,
    RequestTimeoutError,
    ServerError,
)
from txscales.interfaces import BUSY, CLOSED, OPEN
from txscales.stack._accrual import ALIVE, DEAD, PROBE_CLOSED, PROBE_OPEN, FailFast, FailureAccrual
from txscales.stack._dispatcher import Dispatcher
from txscales.stack._retrybudget import RetryBudget
from txscales.stack._timeout import MAX_QUEUES, TimeoutFilter
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


class Request:
    """
    A request whose requeues are recorded.
    """

    timeout = None
    decode = None

    def __init__(self):
        self.attempts = []

    def retried(self, n):
        self.attempts.append(n)
        return self


class OneNode:
    """
    A balancer of one node whose answers come from C{answer(request)}.
    """

    status = OPEN
    token = 0.5
    retiring = False

    def __init__(self, answer):
        self.answer = answer
        self.pending = 0

    def pick(self):
        self.pending += 1
        return self

    def release(self, node, latency):
        self.pending -= 1

    def send(self, request):
        return self.answer(request)

    def succeeded(self):
        pass

    def failed(self, failure, timedOut=False):
        pass


def oneNodeDispatcher(answer, budget, **options):
    """
    @return: a L{Dispatcher} over one node answering with C{answer}.
    """
    return Dispatcher(OneNode(answer), Clock(), budget, **options)


class RequeueTests(SynchronousTestCase):
    """
    Calls that never reached a server are sent again within the budget.
    """

    def test_requestWithoutDecode(self):
        """
        A request without a decode attribute is refused before a node is
        picked.
        """
        dispatcher = oneNodeDispatcher(lambda request: succeed("ok"), RetryBudget(Clock().seconds))
        self.assertRaises(AttributeError, dispatcher, object())
        self.assertEqual(dispatcher.balancer.pending, 0)

    def test_requeueNack(self):
        """
        A nack is requeued, with the retry count, and succeeds.
        """
        answers = [fail(RequestNackedError()), succeed("ok")]
        requeue = oneNodeDispatcher(lambda request: answers.pop(0), RetryBudget(Clock().seconds))
        request = Request()
        self.assertEqual(self.successResultOf(requeue(request)), "ok")
        self.assertEqual((request.attempts, requeue.requeues), ([1], 1))

    def test_mayHaveReachedNotRequeued(self):
        """
        A failure that may have reached the server is not requeued.
        """
        requeue = oneNodeDispatcher(lambda request: fail(ServerError("boom")), RetryBudget(Clock().seconds))
        self.failureResultOf(requeue(Request()), ServerError)
        self.assertEqual(requeue.requeues, 0)

    def test_budgetBounds(self):
        """
        With an empty budget nothing is requeued.
        """
        budget = RetryBudget(Clock().seconds, minRetriesPerSec=0)
        requeue = oneNodeDispatcher(lambda request: fail(RequestNackedError()), budget)
        self.failureResultOf(requeue(Request()), RequestNackedError)
        self.assertEqual(requeue.budgetExhausted, 1)

    def test_perRequestLimit(self):
        """
        One call is requeued at most ceil(20% of the balance) times.
        """
        budget = RetryBudget(Clock().seconds, minRetriesPerSec=1)
        requeue = oneNodeDispatcher(lambda request: fail(RequestNackedError()), budget)
        request = Request()
        self.failureResultOf(requeue(request), RequestNackedError)
        self.assertEqual(request.attempts, [1, 2])

    def test_policy(self):
        """
        A user policy retries failures that may have reached the server,
        drawing on the same budget.
        """
        answers = [fail(ServerError("flaky")), succeed("ok")]
        budget = RetryBudget(Clock().seconds)
        requeue = oneNodeDispatcher(lambda r: answers.pop(0), budget, policy=lambda f, n: f.check(ServerError) and n < 1)
        self.assertEqual(self.successResultOf(requeue(Request())), "ok")
        self.assertEqual(budget.balance(), 99)

    def test_cancelReachesAttempt(self):
        """
        Cancelling a requeued call cancels the attempt in flight.
        """
        cancelled = []
        attempts = [fail(RequestNackedError()), Deferred(lambda d: cancelled.append(d))]
        requeue = oneNodeDispatcher(lambda r: attempts.pop(0), RetryBudget(Clock().seconds))
        d = requeue(Request())
        d.cancel()
        self.assertEqual(len(cancelled), 1)
        self.failureResultOf(d)


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


class TimedRequest:
    """
    A request with a timeout.
    """

    decode = None

    def __init__(self, timeout):
        self.timeout = timeout


class TimeoutFilterTests(SynchronousTestCase):
    """
    Calls are cancelled at their timeout and fail with RequestTimeoutError;
    calls sharing a timeout share one timer.
    """

    def setUp(self):
        self.clock = Clock()
        self.sent = []

        def service(request):
            d = Deferred(lambda d: d.errback(DiscardedCall(written=True)))
            self.sent.append(d)
            return d

        self.timeouts = TimeoutFilter(service, self.clock)

    def test_expireInOrder(self):
        """
        Calls expire at their own deadlines under one timer; an answered
        call is not cancelled; no timer is left once all have ended.
        """
        first = self.timeouts(TimedRequest(1.0))
        self.clock.advance(0.25)
        second = self.timeouts(TimedRequest(1.0))
        answered = self.timeouts(TimedRequest(1.0))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0.75)
        error = self.failureResultOf(first, RequestTimeoutError).value
        self.assertTrue(error.mayHaveReachedServer)
        self.assertNoResult(second)
        self.sent[2].callback("ok")
        self.assertEqual(self.successResultOf(answered), "ok")
        self.clock.advance(0.25)
        self.failureResultOf(second, RequestTimeoutError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_answeredInTime(self):
        """
        Calls answered before their deadline succeed, and the timer goes
        with the last of them.
        """
        calls = [self.timeouts(TimedRequest(0.5)) for _ in range(3)]
        for d in self.sent:
            d.callback("ok")
        self.assertEqual([self.successResultOf(d) for d in calls], ["ok"] * 3)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(1)

    def test_callFromExpiry(self):
        """
        A call made by the callback of an expired call is bounded from when
        it was made.
        """
        later = []
        self.timeouts(TimedRequest(1.0)).addErrback(lambda f: later.append(self.timeouts(TimedRequest(1.0))))
        self.clock.advance(1.0)
        self.assertEqual(len(later), 1)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0.5)
        self.assertNoResult(later[0])
        self.clock.advance(0.5)
        self.failureResultOf(later[0], RequestTimeoutError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_manyTimeouts(self):
        """
        Beyond MAX_QUEUES distinct timeouts, calls get a timer each and
        still expire on time.
        """
        calls = [self.timeouts(TimedRequest(1.0 + i / 100.0)) for i in range(MAX_QUEUES + 4)]
        self.assertEqual(len(self.clock.getDelayedCalls()), MAX_QUEUES + 4)
        self.clock.advance(1.0 + (MAX_QUEUES + 2) / 100.0)
        for d in calls[: MAX_QUEUES + 3]:
            self.failureResultOf(d, RequestTimeoutError)
        self.assertNoResult(calls[-1])
        self.clock.advance(0.01)
        self.failureResultOf(calls[-1], RequestTimeoutError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_finishedCallsLeaveTheQueue(self):
        """
        With one call held outstanding, a thousand answered in time keep
        the queue within twice the calls outstanding.
        """
        held = self.timeouts(TimedRequest(10.0))
        for _ in range(1000):
            self.timeouts(TimedRequest(10.0))
            self.sent[-1].callback("ok")
        (queue,) = self.timeouts._queues.values()
        self.assertLessEqual(len(queue._order), 2 * len(queue._calls) + 65)
        self.clock.advance(10.0)
        self.failureResultOf(held, RequestTimeoutError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_requeuePendingIsBounded(self):
        """
        A call whose first attempt failed at once and whose requeue is
        pending is still cancelled at its timeout.
        """
        cancelled = []
        attempts = [fail(RequestNackedError()), Deferred(lambda d: cancelled.append(d))]
        timeouts = TimeoutFilter(oneNodeDispatcher(lambda request: attempts.pop(0), RetryBudget(self.clock.seconds)), self.clock)
        request = Request()
        request.timeout = 1.0
        d = timeouts(request)
        self.assertNoResult(d)
        self.clock.advance(1.0)
        self.assertEqual(len(cancelled), 1)
        self.failureResultOf(d, RequestTimeoutError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_compactWhileExpiring(self):
        """
        Calls made by an expiring call's callbacks, enough to compact the
        queue, are bounded too.
        """
        held = self.timeouts(TimedRequest(1.0))
        for _ in range(99):
            self.timeouts(TimedRequest(1.0))
        for d in self.sent[1:]:
            d.callback("ok")
        made = []

        def again(failure):
            made.append(self.timeouts(TimedRequest(1.0)))
            made.append(self.timeouts(TimedRequest(1.0)))
            self.sent[-2].callback("ok")

        held.addErrback(again)
        self.clock.advance(1.0)
        self.assertEqual(self.successResultOf(made[0]), "ok")
        self.assertNoResult(made[1])
        self.clock.advance(1.0)
        self.failureResultOf(made[1], RequestTimeoutError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_clockBack(self):
        """
        After the clock steps back, a new call expires at its own deadline,
        not behind the queue's later ones.
        """
        self.clock.advance(100)
        early = self.timeouts(TimedRequest(10.0))
        self.clock.rightNow = 50.0
        late = self.timeouts(TimedRequest(10.0))
        self.clock.advance(10.0)
        self.failureResultOf(late, RequestTimeoutError)
        self.assertNoResult(early)
        self.clock.advance(50.0)
        self.failureResultOf(early, RequestTimeoutError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancellerRaises(self):
        """
        A canceller that raises is logged, and the other calls of the batch
        still expire.
        """
        cancellers = [lambda d: 1 / 0, None]

        def service(request):
            d = Deferred(cancellers.pop(0))
            self.sent.append(d)
            return d

        timeouts = TimeoutFilter(service, self.clock)
        timeouts(TimedRequest(1.0))
        second = timeouts(TimedRequest(1.0))
        self.clock.advance(1.0)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.failureResultOf(second, RequestTimeoutError)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class RecordingStats:
    """
    Stats that record what they are told.
    """

    def __init__(self):
        self.events = []

    def started(self):
        self.events.append("started")

    def succeeded(self, latency):
        self.events.append("succeeded")

    def failed(self, error, latency):
        self.events.append(("failed", type(error).__name__))

    def requeued(self):
        self.events.append("requeued")

    def budgetExhausted(self):
        self.events.append("budgetExhausted")


class DispatcherStatsTests(SynchronousTestCase):
    """
    The Dispatcher counts each call once in the stats, whatever its
    requeues, and always releases what the balancer counted.
    """

    def dispatcher(self, answer):
        self.stats = RecordingStats()
        return Dispatcher(OneNode(answer), Clock(), RetryBudget(Clock().seconds), stats=self.stats)

    def test_success(self):
        """
        A successful call counts one start and one success.
        """
        dispatcher = self.dispatcher(lambda request: succeed("ok"))
        self.assertEqual(self.successResultOf(dispatcher(Request())), "ok")
        self.assertEqual((self.stats.events, dispatcher.balancer.pending), (["started", "succeeded"], 0))

    def test_requeuedThenSucceeded(self):
        """
        A requeued call counts one start, the requeue and one success.
        """
        answers = [fail(RequestNackedError()), succeed("ok")]
        dispatcher = self.dispatcher(lambda request: answers.pop(0))
        self.successResultOf(dispatcher(Request()))
        self.assertEqual(self.stats.events, ["started", "requeued", "succeeded"])
        self.assertEqual(dispatcher.balancer.pending, 0)

    def test_failure(self):
        """
        A failed call counts one start and one failure by its class.
        """
        dispatcher = self.dispatcher(lambda request: fail(ServerError("boom")))
        self.failureResultOf(dispatcher(Request()), ServerError)
        self.assertEqual(self.stats.events, ["started", ("failed", "ServerError")])
        self.assertEqual(dispatcher.balancer.pending, 0)

    def test_noNodes(self):
        """
        A call the balancer has no node for counts as a failure.
        """
        dispatcher = self.dispatcher(None)

        def pick():
            raise NoEndpointsError("the balancer has no nodes")

        dispatcher.balancer.pick = pick
        self.failureResultOf(dispatcher(Request()), NoEndpointsError)
        self.assertEqual(self.stats.events, ["started", ("failed", "NoEndpointsError")])

    def test_afterDiscoveryFailed(self):
        """
        A call waiting for discovery counts from when it was made, and
        fails with discovery's failure.
        """
        dispatcher = self.dispatcher(lambda request: succeed("ok"))
        ready = Deferred()
        d = dispatcher.after(ready, Request())
        self.assertEqual(self.stats.events, ["started"])
        ready.errback(DiscoveryError("no ZooKeeper"))
        self.failureResultOf(d, DiscoveryError)
        self.assertEqual(self.stats.events, ["started", ("failed", "DiscoveryError")])

    def test_afterReady(self):
        """
        A call waiting for discovery is sent once it answers, counted once.
        """
        dispatcher = self.dispatcher(lambda request: succeed("ok"))
        ready = Deferred()
        d = dispatcher.after(ready, Request())
        ready.callback(None)
        self.assertEqual(self.successResultOf(d), "ok")
        self.assertEqual(self.stats.events, ["started", "succeeded"])
