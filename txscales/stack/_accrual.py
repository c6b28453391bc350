"""
Failure accrual and fail-fast, per endpoint (MUX.md 3.3).  Plain Python;
time and randomness are parameters.
"""

from typing import Any, Callable, Dict, Iterator, Optional

from twisted.internet.defer import Deferred

from txscales._backoff import equalJittered, exponentialJittered
from txscales._moving import WindowedAdder
from txscales.interfaces import BUSY, OPEN

ALIVE = "alive"
DEAD = "dead"
PROBE_OPEN = "probeOpen"
PROBE_CLOSED = "probeClosed"


class FailureAccrual:
    """
    Finagle's failure accrual: an endpoint is marked dead after
    C{consecutiveFailures} failures in a row, or when its success rate over
    the last C{window} seconds (with at least C{minRequests} requests) falls
    below C{successRate}.  It stays dead for an equal-jittered backoff
    (5 s doubling to 300 s), then admits one probe request: success revives
    it, failure marks it dead again for the next backoff.  Every outcome of
    the probe settles it: a timeout or a failed connection is a failure
    (timeouts count as failures at any time unless C{countTimeouts} is
    false), an outcome saying nothing about the endpoint (a nack, a
    cancellation) hands the probe's place to the next request, and an
    endpoint connected again after it could not be (L{reconnected}) is
    probed at once.

    @param clock: an C{IReactorTime}.
    @param onChange: called with no argument when the endpoint is marked
        dead and when its probe's place opens (it may take requests again),
        or None.
    @ivar state: L{ALIVE}, L{DEAD}, L{PROBE_OPEN} or L{PROBE_CLOSED}.
    @ivar successes: the L{WindowedAdder} of successes over the window.
    @ivar consecutive: the failures in a row counted towards marking the
        endpoint dead.
    @ivar removals: how many times it was marked dead.
    @ivar revivals: how many times a probe revived it.
    """

    def __init__(
        self,
        clock,
        random,
        consecutiveFailures=5,
        successRate=0.8,
        window=30.0,
        minRequests=5,
        markDeadFor=(5.0, 300.0),
        countTimeouts=True,
        onChange: Optional[Callable[[], object]] = None,
    ) -> None:
        self._clock = clock
        self._random = random
        self._limit = consecutiveFailures
        self._successRate = successRate
        self._minRequests = minRequests
        self._markDeadFor = markDeadFor
        self._countTimeouts = countTimeouts
        self._onChange = onChange
        self.successes = WindowedAdder(window, 10, clock.seconds)
        self._failures = WindowedAdder(window, 10, clock.seconds)
        self.consecutive = 0
        self._backoff: Optional[Iterator[float]] = None
        self._timer = None
        self.state = ALIVE
        self.removals = 0
        self.revivals = 0

    @property
    def status(self):
        """
        L{OPEN} while alive or ready for a probe, L{BUSY} otherwise.
        """
        return OPEN if self.state in (ALIVE, PROBE_OPEN) else BUSY

    def describe(self) -> Dict[str, Any]:
        """
        @return: the accrual for the admin page: its C{state}, the
            C{consecutiveFailures} counted towards marking it dead, and how
            many times it was marked dead (C{removals}) and revived
            (C{revivals}).
        """
        return {
            "state": self.state,
            "consecutiveFailures": self.consecutive,
            "removals": self.removals,
            "revivals": self.revivals,
        }

    def admit(self) -> None:
        """
        A request is about to go to the endpoint; a probe takes the one
        place a revived endpoint offers.
        """
        if self.state == PROBE_OPEN:
            self.state = PROBE_CLOSED

    def success(self) -> None:
        """
        A request succeeded.
        """
        self.successes.add(1)
        self.consecutive = 0
        if self.state == PROBE_CLOSED:
            self.state = ALIVE
            self.revivals += 1
            self._backoff = None

    def failure(self) -> None:
        """
        A request failed after it may have reached the endpoint.
        """
        self._failures.add(1)
        self.consecutive += 1
        if self.state == PROBE_CLOSED:
            self._markDead()
        elif self.state == ALIVE and self._shouldDie():
            self._markDead()

    def timedOut(self):
        """
        A request timed out: a failure, unless timeouts are not counted.
        """
        if self._countTimeouts:
            self.failure()
        else:
            self.ignored()

    def connectFailed(self):
        """
        The endpoint could not be connected to; fail-fast keeps it out, and
        a probe waiting on the connection failed.
        """
        if self.state == PROBE_CLOSED:
            self._failures.add(1)
            self._markDead()

    def ignored(self):
        """
        A request ended without saying anything of the endpoint's health
        (cancelled, nacked, never sent): a probe's place goes to the next
        request.
        """
        if self.state == PROBE_CLOSED:
            self.state = PROBE_OPEN

    def reconnected(self):
        """
        The endpoint is connected again after connections failed: probe it
        at once instead of waiting out its backoff.
        """
        if self.state in (DEAD, PROBE_CLOSED):
            self.stop()
            self._probe()

    def _shouldDie(self):
        if self._limit and self.consecutive >= self._limit:
            return True
        successes = self.successes.sum()
        requests = successes + self._failures.sum()
        return requests >= self._minRequests and successes < self._successRate * requests

    def _markDead(self) -> None:
        backoff = self._backoff
        if backoff is None:
            backoff = self._backoff = equalJittered(self._markDeadFor[0], self._markDeadFor[1], self._random)
        self.state = DEAD
        self.removals += 1
        self._timer = self._clock.callLater(next(backoff), self._probe)
        if self._onChange is not None:
            self._onChange()

    def _probe(self) -> None:
        self._timer = None
        self.state = PROBE_OPEN
        self.consecutive = 0
        if self._onChange is not None:
            self._onChange()

    def stop(self) -> None:
        """
        Cancel the pending revival timer.
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class FailFast:
    """
    Mark an endpoint down when connecting to it fails, and try again in the
    background after an exponential jittered backoff (1 s doubling to 32 s)
    until it succeeds.

    @param connect: a callable returning a Deferred that fires when a
        connection is made, or fails.
    @param onUp: called without arguments when a background attempt
        connected, or None.
    @ivar down: whether the endpoint is marked down.
    @ivar reason: while it is down, the exception its last connection
        attempt failed with (None if not known).
    @ivar attempts: background reconnection attempts made.
    """

    def __init__(self, clock, random, connect, start=1.0, maximum=32.0, onUp=None) -> None:
        self._clock = clock
        self._onUp = onUp
        self._random = random
        self._connect = connect
        self._start = start
        self._maximum = maximum
        self._backoff: Optional[Iterator[float]] = None
        self._timer = None
        self._attempt: Optional[Deferred[Any]] = None
        self.down = False
        self.reason: Optional[BaseException] = None
        self.attempts = 0

    def markDown(self, reason=None) -> None:
        """
        A connection attempt failed: mark the endpoint down and schedule a
        reconnection.

        @param reason: the exception the attempt failed with, if known.
        """
        if self.down:
            return
        self.down = True
        self.reason = reason
        self._backoff = exponentialJittered(self._start, self._maximum, self._random)
        self._schedule()

    def _schedule(self) -> None:
        assert self._backoff is not None, "scheduled while up"
        self._timer = self._clock.callLater(next(self._backoff), self._retry)

    def _retry(self) -> None:
        self._timer = None
        self.attempts += 1
        attempt = self._attempt = self._connect()
        attempt.addCallbacks(self._up, self._failed)

    def _up(self, _) -> None:
        self._attempt = None
        self.down = False
        self.reason = None
        self._backoff = None
        if self._onUp is not None:
            self._onUp()

    def _failed(self, failure) -> None:
        self._attempt = None
        if self.down:
            self.reason = failure.value
            self._schedule()

    def stop(self) -> None:
        """
        Stop trying.
        """
        self.down = False
        self.reason = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._attempt is not None:
            self._attempt.cancel()
