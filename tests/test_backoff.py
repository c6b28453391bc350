"""
Tests for Finagle's jittered backoffs.
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from txscales._backoff import equalJittered, exponentialJittered


class BackoffTests(SynchronousTestCase):
    """
    Backoffs grow with jitter within their bounds.
    """

    def test_exponentialJittered(self):
        """
        The n-th delay lies in [start, start * 2**n], capped at the maximum.
        """
        delays = exponentialJittered(1.0, 32.0, random.Random(1))
        for n in range(10):
            delay = next(delays)
            self.assertTrue(1.0 <= delay <= min(32.0, 2.0**n), (n, delay))

    def test_equalJittered(self):
        """
        Each delay lies between half and all of a doubling step, then the
        maximum.
        """
        delays = equalJittered(5.0, 300.0, random.Random(1))
        step = 5.0
        for _ in range(6):
            delay = next(delays)
            self.assertTrue(step / 2 <= delay <= step, (step, delay))
            step *= 2
        self.assertEqual(next(delays), 300.0)
