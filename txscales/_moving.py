"""
Sums and averages over a moving window of time, as Finagle keeps them for
retry budgets, failure accrual and aperture sizing.  Plain Python; time is
a parameter.
"""

import math
from typing import Callable, List, Optional


class WindowedAdder:
    """
    A sum over a sliding window of C{window} seconds, kept in C{slices}
    buckets: what was added more than C{window} seconds ago no longer counts.

    A caller that has just read the adder's clock may count into the
    current slice without a call: while that reading is before C{until}, it
    adds to C{tally}, a plain integer that the adder folds into the slice
    before it moves on or is read.

    @param now: a callable returning the current time in seconds.
    @ivar until: when the current slice ends, in C{now}'s time.
    @ivar tally: what callers counted into the current slice without a
        call, not yet folded into it.
    """

    def __init__(self, window: float, slices: int, now: Callable[[], float]) -> None:
        self._slice = window / slices
        self._buckets: List[int] = [0] * slices
        self._now = now
        self.tally = 0
        self._moveTo(int(now() / self._slice))

    def _moveTo(self, current) -> None:
        self._current = current
        self._index = current % len(self._buckets)
        # Until then, now() is in the current slice: no need to divide.
        self.until = (current + 1) * self._slice

    def _expire(self) -> None:
        if self.tally:
            # It was counted before until: it belongs to the current slice.
            self._buckets[self._index] += self.tally
            self.tally = 0
        now = self._now()
        if now < self.until:
            return
        current = int(now / self._slice)
        gap = current - self._current
        if gap > 0:
            n = len(self._buckets)
            for i in range(1, min(gap, n) + 1):
                self._buckets[(self._current + i) % n] = 0
            self._moveTo(current)

    def add(self, value: int) -> None:
        """
        Add C{value} now.
        """
        if self._now() >= self.until:
            self._expire()
        self._buckets[self._index] += value

    def sum(self) -> int:
        """
        @return: the sum over the window.
        """
        self._expire()
        return sum(self._buckets)


class Ema:
    """
    An exponential moving average over time: C{w = exp(-dt / window)},
    C{value = sample * (1 - w) + value * w}.

    @param now: a callable returning the current time in seconds.
    @ivar value: the current average.
    """

    def __init__(self, window: float, now: Callable[[], float]) -> None:
        self._window = window
        self._now = now
        self._time: Optional[float] = None
        self.value = 0.0

    def update(self, sample: float) -> float:
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
