"""
Tests for the watermark pool.
"""

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from txscales.errors import ClientClosedError, ConnectError, PoolExhaustedError
from txscales.pool import WatermarkPool


class Connection:
    """
    A fake connection that records being closed.
    """

    def __init__(self, n):
        self.n = n
        self.closed = False

    def close(self):
        self.closed = True
        return succeed(None)


class Connector:
    """
    Makes numbered fake connections, or fails while C{failing}.
    """

    def __init__(self):
        self.made = []
        self.failing = False

    def __call__(self):
        if self.failing:
            return fail(ConnectError("refused"))
        c = Connection(len(self.made))
        self.made.append(c)
        return succeed(c)


class PendingConnector:
    """
    Opens connections that wait until the test fires them: each attempt's
    Deferred is appended to C{pending}.
    """

    def __init__(self, pending):
        self.pending = pending

    def __call__(self):
        d = Deferred()
        self.pending.append(d)
        return d


class WatermarkPoolTests(SynchronousTestCase):
    """
    Low and high watermarks and the bounded wait queue.
    """

    def setUp(self):
        self.connect = Connector()
        self.pool = WatermarkPool(self.connect, low=1, high=2, maxWaiters=1)

    def test_reuseUpToLow(self):
        """
        Up to C{low} released connections are kept and reused; more are
        closed.
        """
        a = self.successResultOf(self.pool.acquire())
        b = self.successResultOf(self.pool.acquire())
        self.pool.release(a)
        self.pool.release(b)
        self.assertEqual((a.closed, b.closed, self.pool.idle, self.pool.size), (False, True, 1, 1))
        self.assertIs(self.successResultOf(self.pool.acquire()), a)

    def test_takeIdle(self):
        """
        C{takeIdle} takes an idle connection at once, and None when there is
        none (opening none) or the pool is closed.
        """
        self.assertIsNone(self.pool.takeIdle())
        self.assertEqual((self.pool.size, self.connect.made), (0, []))
        a = self.successResultOf(self.pool.acquire())
        self.pool.release(a)
        self.assertIs(self.pool.takeIdle(), a)
        self.assertEqual((self.pool.idle, self.pool.size), (0, 1))
        self.pool.release(a)
        self.pool.close()
        self.assertIsNone(self.pool.takeIdle())

    def test_waitAtHigh(self):
        """
        At C{high}, callers wait for a released connection; past the queue
        bound they fail at once with a retryable error that did not reach the
        server.
        """
        a = self.successResultOf(self.pool.acquire())
        self.successResultOf(self.pool.acquire())
        waiting = self.pool.acquire()
        self.assertNoResult(waiting)
        e = self.failureResultOf(self.pool.acquire(), PoolExhaustedError).value
        self.assertFalse(e.mayHaveReachedServer)
        self.pool.release(a)
        self.assertIs(self.successResultOf(waiting), a)
        self.assertEqual(len(self.connect.made), 2)

    def test_unusableReleaseOpensForWaiter(self):
        """
        A connection released as unusable is closed, and a waiter gets a new
        one.
        """
        a = self.successResultOf(self.pool.acquire())
        self.successResultOf(self.pool.acquire())
        waiting = self.pool.acquire()
        self.pool.release(a, reusable=False)
        self.assertTrue(a.closed)
        self.assertEqual(self.successResultOf(waiting).n, 2)
        self.assertEqual(self.pool.size, 2)

    def test_cancelLeavesQueue(self):
        """
        Cancelling a wait leaves the queue.
        """
        self.successResultOf(self.pool.acquire())
        self.successResultOf(self.pool.acquire())
        waiting = self.pool.acquire()
        waiting.cancel()
        self.failureResultOf(waiting)
        self.assertEqual(self.pool.waiting, 0)

    def test_cancelWhileOpeningForWaiter(self):
        """
        Cancelling a wait for which a connection is being opened fails only
        that wait; the connection, once open, goes to the pool.
        """
        pending = []
        connect = PendingConnector(pending)
        pool = WatermarkPool(connect, low=1, high=1)
        first = pool.acquire()
        pending.pop().callback(Connection(0))
        a = self.successResultOf(first)
        waiting = pool.acquire()
        pool.release(a, reusable=False)
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        b = Connection(1)
        pending.pop().callback(b)
        self.assertEqual((pool.size, pool.idle), (1, 1))
        self.assertIs(self.successResultOf(pool.acquire()), b)

    def test_connectFailureForCancelledWaiter(self):
        """
        A failed connection opened for a wait that was cancelled meanwhile
        frees its place and is not reported anywhere.
        """
        pending = []
        connect = PendingConnector(pending)
        pool = WatermarkPool(connect, low=1, high=1)
        first = pool.acquire()
        pending.pop().callback(Connection(0))
        waiting = pool.acquire()
        pool.release(self.successResultOf(first), reusable=False)
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        pending.pop().errback(ConnectError("refused"))
        self.assertEqual(pool.size, 0)

    def test_connectFailureFreesPlace(self):
        """
        A failed connection attempt fails its caller and frees its place.
        """
        self.connect.failing = True
        self.failureResultOf(self.pool.acquire(), ConnectError)
        self.assertEqual(self.pool.size, 0)
        self.connect.failing = False
        self.successResultOf(self.pool.acquire())

    def test_close(self):
        """
        Closing closes idle connections and fails waiters and later callers;
        connections in use close when released.
        """
        a = self.successResultOf(self.pool.acquire())
        b = self.successResultOf(self.pool.acquire())
        self.pool.release(a)
        waiting = Deferred()
        self.pool._waiters.append(waiting)
        self.successResultOf(self.pool.close())
        self.assertTrue(a.closed)
        self.failureResultOf(waiting, ClientClosedError)
        self.failureResultOf(self.pool.acquire(), ClientClosedError)
        self.pool.release(b)
        self.assertTrue(b.closed)
        self.assertEqual(self.pool.size, 0)

    def test_badWatermarks(self):
        """
        Inconsistent watermarks raise ValueError.
        """
        self.assertRaises(ValueError, WatermarkPool, self.connect, low=3, high=2)
