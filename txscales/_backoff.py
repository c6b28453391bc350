"""
Finagle's jittered backoffs: endless iterators of delays in seconds.
Randomness is a parameter.
"""

from random import Random
from typing import Iterator


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
