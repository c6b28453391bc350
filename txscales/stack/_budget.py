"""
Retry budgets and backoffs, as Finagle defines them (MUX.md 3.3, 3.4).
Plain Python; time and randomness are parameters.
"""

import math


class WindowedAdder:
    """
    A sum over a sliding window of C{window} seconds, kept in C{slices}
    buckets: what was added more than C{window} seconds ago no longer counts.

    @param now: a callable returning the current time in seconds.
    """

    def __init__(self, window, slices, now):
        self._slice = window / slices
        self._buckets = [0] * slices
        self._now = now
        self._moveTo(int(now() / self._slice))

    def _moveTo(self, current):
        self._current = current
        self._index = current % len(self._buckets)
        # Until then, now() is in the current slice: no need to divide.
        self._until = (current + 1) * self._slice

    def _expire(self):
        now = self._now()
        if now < self._until:
            return
        current = int(now / self._slice)
        gap = current - self._current
        if gap > 0:
            n = len(self._buckets)
            for i in range(1, min(gap, n) + 1):
                self._buckets[(self._current + i) % n] = 0
            self._moveTo(current)

    def add(self, value):
        """
        Add C{value} now.
        """
        if self._now() >= self._until:
            self._expire()
        self._buckets[self._index] += value

    def sum(self):
        """
        @return: the sum over the window.
        """
        self._expire()
        return sum(self._buckets)


class RetryBudget:
    """
    Finagle's default retry budget: retries may add C{percentCanRetry} of
    the successful requests of the last C{ttl} seconds, plus a reserve of
    C{minRetriesPerSec} per second.

    Internally a leaky token bucket: each deposit adds 1000 tokens, each
    retry withdraws C{1000 / percentCanRetry}, the reserve is
    C{minRetriesPerSec * ttl} retries' worth, and what was added or taken
    more than C{ttl} seconds ago no longer counts.

    @param now: a callable returning the current time in seconds.
    """

    _DEPOSIT = 1000

    def __init__(self, now, ttl=10.0, minRetriesPerSec=10, percentCanRetry=0.2):
        if not 0.0 <= percentCanRetry <= 1.0:
            raise ValueError("percentCanRetry must be within [0, 1]")
        if minRetriesPerSec < 0 or ttl <= 0:
            raise ValueError("ttl must be positive and minRetriesPerSec not negative")
        self._withdraw = int(self._DEPOSIT / percentCanRetry) if percentCanRetry else None
        self._counter = WindowedAdder(ttl, 10, now)
        perRetry = self._withdraw if self._withdraw else self._DEPOSIT
        self._reserve = int(minRetriesPerSec * ttl * perRetry)
        self._perRetry = perRetry
        self.ttl = ttl
        self.minRetriesPerSec = minRetriesPerSec
        self.percentCanRetry = percentCanRetry

    def deposit(self):
        """
        Record a request that may later earn a retry.
        """
        if self._withdraw:
            self._counter.add(self._DEPOSIT)

    def tryWithdraw(self):
        """
        Take one retry from the budget.

        @return: whether a retry is allowed.
        """
        if self._counter.sum() + self._reserve >= self._perRetry:
            self._counter.add(-self._perRetry)
            return True
        return False

    def balance(self):
        """
        @return: how many retries the budget allows now.
        """
        return (self._counter.sum() + self._reserve) // self._perRetry


class NoRetryBudget:
    """
    A budget that never allows a retry.
    """

    def deposit(self):
        pass

    def tryWithdraw(self):
        return False

    def balance(self):
        return 0


def exponentialJittered(start, maximum, random):
    """
    Finagle's C{Backoff.exponentialJittered}: the n-th delay is uniform in
    C{[start, start * 2**n]}, capped at C{maximum}.

    @return: an endless iterator of delays in seconds.
    """
    n = 0
    while True:
        upper = min(maximum, start * 2**n)
        yield start + random.random() * (upper - start) if upper > start else start
        if upper < maximum:
            n += 1


def equalJittered(start, maximum, random):
    """
    Finagle's C{Backoff.equalJittered}: half of a doubling delay plus a
    random part of the other half, then C{maximum}.

    @return: an endless iterator of delays in seconds.
    """
    half = start / 2.0
    while True:
        if half * 2 >= maximum:
            yield maximum
            continue
        yield half + random.random() * half
        half *= 2


class Ema:
    """
    An exponential moving average over time: C{w = exp(-dt / window)},
    C{value = sample * (1 - w) + value * w}.

    @param now: a callable returning the current time in seconds.
    """

    def __init__(self, window, now):
        self._window = window
        self._now = now
        self._time = None
        self.value = 0.0

    def update(self, sample):
        """
        Fold in C{sample} taken now.

        @return: the new average.
        """
        t = self._now()
        if self._time is None:
            self.value = float(sample)
        else:
            w = math.exp(-(t - self._time) / self._window) if t > self._time else 1.0
            self.value = sample * (1.0 - w) + self.value * w
        self._time = t
        return self.value
