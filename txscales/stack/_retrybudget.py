"""
Retry budgets, as Finagle defines them (MUX.md 3.3).  Plain Python; time
is a parameter.
"""

from typing import Callable, Optional

from txscales._moving import WindowedAdder


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
    @ivar now: that callable.
    """

    DEPOSIT = 1000
    """What one request deposits; a retry withdraws C{DEPOSIT / percentCanRetry}."""

    def __init__(
        self, now: Callable[[], float], ttl: float = 10.0, minRetriesPerSec: float = 10, percentCanRetry: float = 0.2
    ) -> None:
        if not 0.0 <= percentCanRetry <= 1.0:
            raise ValueError("percentCanRetry must be within [0, 1]")
        if minRetriesPerSec < 0 or ttl <= 0:
            raise ValueError("ttl must be positive and minRetriesPerSec not negative")
        self._withdraw = int(self.DEPOSIT / percentCanRetry) if percentCanRetry else None
        self._counter = WindowedAdder(ttl, 10, now)
        self.now = now
        perRetry = self._withdraw if self._withdraw else self.DEPOSIT
        self._reserve = int(minRetriesPerSec * ttl * perRetry)
        self._perRetry = perRetry
        self.ttl = ttl
        self.minRetriesPerSec = minRetriesPerSec
        self.percentCanRetry = percentCanRetry

    @property
    def deposits(self) -> Optional[WindowedAdder]:
        """
        The L{WindowedAdder} that L{deposit} adds to (in the time of the
        budget's C{now}), or None when deposits earn nothing.  One deposit
        is L{DEPOSIT} in it.
        """
        return self._counter if self._withdraw else None

    def deposit(self) -> None:
        """
        Record a request that may later earn a retry.
        """
        if self._withdraw:
            self._counter.add(self.DEPOSIT)

    def tryWithdraw(self) -> bool:
        """
        Take one retry from the budget.

        @return: whether a retry is allowed.
        """
        if self._counter.sum() + self._reserve >= self._perRetry:
            self._counter.add(-self._perRetry)
            return True
        return False

    def balance(self) -> int:
        """
        @return: how many retries the budget allows now.
        """
        return (self._counter.sum() + self._reserve) // self._perRetry


class NoRetryBudget:
    """
    A budget that never allows a retry.
    """

    def deposit(self) -> None:
        """
        Record nothing: no request earns a retry.
        """

    def tryWithdraw(self) -> bool:
        """
        @return: C{False}: no retry is allowed.
        """
        return False

    def balance(self) -> int:
        """
        @return: 0.
        """
        return 0
