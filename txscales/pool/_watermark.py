"""
The watermark pool.
"""

from collections import deque
from typing import Any, Callable, Deque

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.python.failure import Failure

from txscales.errors import ClientClosedError, PoolExhaustedError


class WatermarkPool:
    """
    Connections for a protocol that carries one request at a time: up to
    C{low} idle connections are kept for reuse; more are opened on demand up
    to C{high}; beyond that, callers wait in a queue of at most
    C{maxWaiters}, and further callers fail at once with
    L{PoolExhaustedError}.

    @param connect: a callable returning a Deferred of a new connection;
        a connection has C{close()} returning a Deferred.
    @ivar size: connections open or being opened.
    @ivar idle: how many connections wait unused.
    """

    def __init__(
        self, connect: Callable[[], "Deferred[Any]"], low: int = 1, high: int = 2**31, maxWaiters: int = 2**31
    ) -> None:
        if not 0 <= low <= high or high < 1:
            raise ValueError("need 0 <= low <= high and high >= 1")
        self._connect = connect
        self._low = low
        self._high = high
        self._maxWaiters = maxWaiters
        self._idle: Deque[Any] = deque()
        self._waiters: Deque[Deferred[Any]] = deque()
        self._closed = False
        self.size = 0

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def waiting(self) -> int:
        """
        How many callers wait for a connection.
        """
        return len(self._waiters)

    def acquire(self) -> "Deferred[Any]":
        """
        @return: a Deferred firing with a connection for one request (give
            it back with L{release}); cancelling it leaves the queue.
        """
        if self._closed:
            return fail(ClientClosedError("the pool is closed"))
        if self._idle:
            return succeed(self._idle.popleft())
        if self.size < self._high:
            self.size += 1
            d = self._connect()
            d.addErrback(self._connectFailed)
            return d
        if len(self._waiters) >= self._maxWaiters:
            return fail(PoolExhaustedError("%d connections busy and %d callers waiting" % (self.size, len(self._waiters))))
        waiter: Deferred[Any] = Deferred(self._cancelWaiter)
        self._waiters.append(waiter)
        return waiter

    def takeIdle(self) -> Any:
        """
        Take an idle connection at once, if there is one: a cheaper
        L{acquire} for callers that can do without one.

        @return: the connection (give it back with L{release}), or None.
        """
        if self._idle and not self._closed:
            return self._idle.popleft()
        return None

    def _cancelWaiter(self, waiter: "Deferred[Any]") -> None:
        # A waiter still queued leaves the queue; one for which a
        # connection is being opened gives it back to the pool when ready.
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def _connectFailed(self, failure: Failure) -> Failure:
        self.size -= 1
        self._openForWaiter()
        return failure

    def _openForWaiter(self) -> None:
        # A place freed up: open a connection for the first waiter.
        if self._waiters and self.size < self._high and not self._closed:
            waiter = self._waiters.popleft()
            self.size += 1
            d = self._connect()
            d.addErrback(self._connectFailed)
            args = (waiter,)
            d.addCallbacks(self._openedForWaiter, self._openFailedForWaiter, args, errbackArgs=args)

    def _openedForWaiter(self, connection: Any, waiter: "Deferred[Any]") -> None:
        if waiter.called:
            # The waiter was cancelled meanwhile: the pool keeps it.
            self.release(connection)
        else:
            waiter.callback(connection)

    def _openFailedForWaiter(self, failure: Failure, waiter: "Deferred[Any]") -> None:
        if not waiter.called:
            waiter.errback(failure)

    def release(self, connection: Any, reusable: bool = True) -> "Deferred[Any]":
        """
        Give back a connection.

        @param reusable: False when the connection must not carry another
            request (it failed, or a timed-out answer may still arrive on
            it); it is closed.
        @return: a Deferred firing when the connection is closed, if it is.
        """
        if reusable and not self._closed:
            if self._waiters:
                self._waiters.popleft().callback(connection)
                return succeed(None)
            if len(self._idle) < self._low:
                self._idle.append(connection)
                return succeed(None)
        self.size -= 1
        d = connection.close()
        self._openForWaiter()
        return d

    def close(self) -> "Deferred[Any]":
        """
        Close the idle connections and fail the waiters; connections in use
        are closed when released.

        @return: a Deferred firing when the idle connections are closed.
        """
        self._closed = True
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            waiter.errback(ClientClosedError("the pool is closed"))
        idle, self._idle = self._idle, deque()
        self.size -= len(idle)
        return DeferredList([c.close() for c in idle], consumeErrors=True)
