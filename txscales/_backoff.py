"""
Finagle's jittered backoffs: endless iterators of delays in seconds, and
when to reconnect after a session died young.
Randomness is a parameter.
"""

from random import Random
from typing import Any, Iterator, Optional, Tuple


def exponentialJittered(start: float, maximum: float, random: Random) -> Iterator[float]:
    """
    Finagle's C{Backoff.exponentialJittered}: the n-th delay is uniform in
    C{[start, start * 2**n]}, capped at C{maximum}.

    @param random: where the jitter comes from (its C{random()} is used).
    @return: an endless iterator of delays in seconds.
    """
    n = 0
    while True:
        upper = min(maximum, start * 2**n)
        yield start + random.random() * (upper - start) if upper > start else start
        if upper < maximum:
            n += 1


def equalJittered(start: float, maximum: float, random: Random) -> Iterator[float]:
    """
    Finagle's C{Backoff.equalJittered}: half of a doubling delay plus a
    random part of the other half, then C{maximum}.

    @param random: where the jitter comes from (its C{random()} is used).
    @return: an endless iterator of delays in seconds.
    """
    half = start / 2.0
    while True:
        if half * 2 >= maximum:
            yield maximum
            continue
        yield half + random.random() * half
        half *= 2


class ReconnectBackoff:
    """
    When a client may connect to a server again after a session ended:
    at once after a session that lived C{healthyAfter} seconds, and after
    an exponential jittered backoff (L{exponentialJittered}) from the end
    of each session that died younger, so that a server breaking every
    session does not get a storm of connections.  A session that lives
    C{healthyAfter} seconds resets the backoff.

    @param clock: an C{IReactorTime} (its C{seconds()} is used).
    @param random: where the jitter comes from.
    @param backoff: C{(start, maximum)} delays in seconds.
    """

    def __init__(
        self, clock: Any, random: Random, backoff: Tuple[float, float] = (1.0, 32.0), healthyAfter: float = 5.0
    ) -> None:
        self._clock = clock
        self._random = random
        self._start, self._maximum = backoff
        self._healthyAfter = healthyAfter
        self._delays: Optional[Iterator[float]] = None
        self._since: Optional[float] = None
        self._notBefore = 0.0

    def connected(self) -> None:
        """
        A session started.
        """
        self._since = self._clock.seconds()

    def lost(self) -> None:
        """
        The session started last ended, not by a drain: the next connection
        waits if it was young.
        """
        if self._since is None:
            return
        now = self._clock.seconds()
        lived, self._since = now - self._since, None
        if lived >= self._healthyAfter:
            self._delays = None
            return
        if self._delays is None:
            self._delays = exponentialJittered(self._start, self._maximum, self._random)
        self._notBefore = now + next(self._delays)

    def delay(self) -> float:
        """
        @return: how many seconds the next connection must wait.
        """
        return max(0.0, self._notBefore - self._clock.seconds())
