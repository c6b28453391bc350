"""
The trace sampling rate the process's clients share: the share of new root
traces (calls made outside any request) that are recorded.  A call made
while handling a request follows its caller's decision instead.

The admin page (C{/admin/tracing}) reads and changes L{SAMPLER}'s rate
while the process runs.
"""

DEFAULT_RATE = 0.001
"""Finagle's default: one root trace in a thousand."""


class Sampler:
    """
    The share of new root traces that are sampled.

    @ivar rate: that share, from 0.0 (none) to 1.0 (all).
    """

    __slots__ = ("_rate",)

    def __init__(self, rate: float = DEFAULT_RATE) -> None:
        self._rate = 0.0
        self.rate = rate

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, rate: float) -> None:
        rate = float(rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError("a sample rate is between 0.0 and 1.0, not %r" % (rate,))
        self._rate = rate

    def sample(self, draw: float) -> bool:
        """
        @param draw: a random number in [0.0, 1.0), drawn by the caller
            (from the C{random.Random} it was given).
        @return: whether a new root trace with this draw is sampled.
        """
        return draw < self._rate


SAMPLER = Sampler()
"""The sampler every client uses for its root traces."""
