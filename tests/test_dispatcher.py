"""
Tests for the client stack's dispatcher: requeues of calls that never
reached a server, within the retry budget, and the stats it keeps.
"""

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txscales.errors import DiscoveryError, NoEndpointsError, RequestNackedError, ServerError
from txscales.stack._dispatcher import Dispatcher
from txscales.stack._retrybudget import RetryBudget

from tests._stackhelpers import OneNode, Request, oneNodeDispatcher


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


class SuccessAccountingTests(SynchronousTestCase):
    """
    A success reaches the node's failure accrual and the retry budget, in
    the window's slice of the moment it was answered.
    """

    def setUp(self):
        from random import Random

        from txscales.stack._accrual import FailureAccrual

        self.clock = Clock()
        self.node = OneNode(lambda request: succeed("ok"))
        self.node.accrual = FailureAccrual(self.clock, Random(0), window=10.0)
        self.budget = RetryBudget(self.clock.seconds, ttl=10.0, minRetriesPerSec=0)
        self.dispatcher = Dispatcher(self.node, self.clock, self.budget)

    def test_countedInTheirSlice(self):
        """
        Successes count in the accrual's window and the budget's deposits,
        clear the accrual's failures in a row, and leave both windows when
        their slice does.
        """
        self.node.accrual.failure()
        for _ in range(3):
            self.successResultOf(self.dispatcher(Request()))
        self.clock.advance(5)
        for _ in range(2):
            self.successResultOf(self.dispatcher(Request()))
        self.assertEqual((self.node.accrual.successes.sum(), self.node.accrual.consecutive), (5, 0))
        self.assertEqual(self.budget.balance(), 1)
        self.clock.advance(5)
        self.assertEqual((self.node.accrual.successes.sum(), self.budget.deposits.sum()), (2, 2000))

    def test_otherClock(self):
        """
        A budget keeping another clock's time is deposited in with its own
        reading of it.
        """
        other = Clock()
        budget = RetryBudget(other.seconds, ttl=10.0, minRetriesPerSec=0)
        dispatcher = Dispatcher(self.node, self.clock, budget)
        self.clock.advance(100)
        for _ in range(5):
            self.successResultOf(dispatcher(Request()))
        other.advance(5)
        self.assertEqual(budget.deposits.sum(), 5000)
        other.advance(5)
        self.assertEqual(budget.deposits.sum(), 0)
