"""
Tests for the client stack's timeout filter: calls cancelled at their
timeout, with one timer per timeout value.
"""

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txscales._connection import DiscardedCall
from txscales.errors import RequestNackedError, RequestTimeoutError
from txscales.stack._retrybudget import RetryBudget
from txscales.stack._timeout import MAX_QUEUES, TimeoutFilter

from tests._stackhelpers import Request, oneNodeDispatcher


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
