"""
The client stack's timeouts: each call bounded by its request's C{timeout}.
"""

from collections import deque
from typing import Any, Deque, Dict, Tuple

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from txscales.errors import RequestTimeoutError

_log = Logger()

MAX_QUEUES = 16
"""Distinct timeouts given a queue each; calls with others get a timer each."""

_EARLY = 1e-6
"""How early (seconds) a deadline may be taken as passed: timers re-armed for
a deadline may fire a rounding error before it."""


class TimeoutFilter:
    """
    Bound each call by its C{timeout} (seconds, on the request): on expiry
    the call is cancelled (Mux sends Tdiscarded) and fails with
    L{RequestTimeoutError}.

    Calls with the same timeout expire in the order they were made, so each
    timeout value keeps its calls in a first-in first-out queue under one
    reactor timer, armed for the earliest: a call costs an append and a
    dictionary entry instead of a C{DelayedCall} of its own (the reactor
    keeps those in a heap ordered by Python comparisons).  A call gets a
    timer of its own beyond L{MAX_QUEUES} distinct values at once
    (deadlines propagated from a request vary), and when the clock has
    stepped back so that its deadline comes before the queue's last.
    """

    def __init__(self, service, clock) -> None:
        self._service = service
        self._clock = clock
        self._queues: Dict[float, _Expiry] = {}

    def __call__(self, request):
        timeout = request.timeout
        d = self._service(request)
        if timeout is None or (d.called and not isinstance(d.result, Deferred)):
            # Done already; a call waiting on a requeue (its result another
            # Deferred) is not, and is bounded like any other.
            return d
        queue = self._queues.get(timeout)
        if queue is None:
            if len(self._queues) >= MAX_QUEUES:
                return _ownTimer(self._clock, d, timeout)
            queue = self._queues[timeout] = _Expiry(self._clock, timeout, self._queues)
        return queue.add(d)


def _ownTimer(clock, d, timeout):
    """
    Bound C{d} by a timer of its own.
    """
    timer = clock.callLater(timeout, d.cancel)
    return d.addBoth(_timedOut, timer, timeout)


def _timedOut(result, timer, timeout):
    if timer.active():
        timer.cancel()
        return result
    return _timeoutError(result, timeout)


def _timeoutError(result, timeout):
    """
    @return: C{result} of a call cancelled on expiry, as the caller sees it.
    @raise RequestTimeoutError: when the cancellation ended the call.
    """
    if isinstance(result, Failure) and result.check(CancelledError):
        raise RequestTimeoutError(timeout, written=bool(getattr(result.value, "written", False)))
    return result


class _Expiry:
    """
    The calls outstanding with one timeout, in the order they were made,
    and the one timer that expires them.  It removes itself from C{owner}
    (a dict by timeout) once no call is left.
    """

    def __init__(self, clock, timeout, owner) -> None:
        self._clock = clock
        self._timeout = timeout
        self._owner = owner
        self._order: Deque[Tuple[float, int]] = deque()
        self._calls: Dict[int, Deferred[Any]] = {}
        self._next = 0
        self._timer = None
        self._expiring = False

    def add(self, d):
        """
        Bound C{d} by the timeout from now.

        @return: C{d}, failing with L{RequestTimeoutError} on expiry.
        """
        deadline = self._clock.seconds() + self._timeout
        order = self._order
        if order and deadline < order[-1][0]:
            # The clock stepped back: this call would wait behind later
            # deadlines.
            return _ownTimer(self._clock, d, self._timeout)
        key = self._next
        self._next = key + 1
        order.append((deadline, key))
        self._calls[key] = d
        if self._timer is None and not self._expiring:
            self._timer = self._clock.callLater(self._timeout, self._expire)
        elif len(order) > 2 * len(self._calls) + 64:
            # Finished calls leave their place in the queue until their
            # deadline; keep the queue within twice the calls outstanding.
            # In place: an expiry in progress holds this deque.
            calls = self._calls
            live = [entry for entry in order if entry[1] in calls]
            order.clear()
            order.extend(live)
        return d.addBoth(self._settled, key)

    def _settled(self, result, key):
        if self._calls.pop(key, None) is None:
            # Expired: this is the outcome of its cancellation.
            return _timeoutError(result, self._timeout)
        if not self._calls:
            self._stop()
        return result

    def _expire(self) -> None:
        self._timer = None
        now = self._clock.seconds() + _EARLY
        order, calls = self._order, self._calls
        # Cancelling runs callbacks, which may make calls with this timeout:
        # they join the queue, and the timer is armed once, below.
        self._expiring = True
        try:
            while order and order[0][0] <= now:
                d = calls.pop(order.popleft()[1], None)
                if d is not None:
                    try:
                        d.cancel()
                    except Exception:
                        _log.failure("cancelling a timed-out call")
        finally:
            self._expiring = False
            if not calls:
                self._stop()
            else:
                while order[0][1] not in calls:
                    order.popleft()
                self._timer = self._clock.callLater(max(0.0, order[0][0] - self._clock.seconds()), self._expire)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._order.clear()
        if self._owner.get(self._timeout) is self:
            del self._owner[self._timeout]
