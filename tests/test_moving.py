"""
Tests for sums and averages over a moving window of time.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txscales._moving import Ema, WindowedAdder


class WindowedAdderTests(SynchronousTestCase):
    """
    The windowed adder that retry budgets and failure accrual count with.
    """

    def test_windowedAdder(self):
        """
        What was added more than the window ago no longer counts.
        """
        clock = Clock()
        adder = WindowedAdder(10.0, 10, clock.seconds)
        adder.add(5)
        clock.advance(5)
        adder.add(3)
        self.assertEqual(adder.sum(), 8)
        clock.advance(5)
        self.assertEqual(adder.sum(), 3)
        clock.advance(100)
        self.assertEqual(adder.sum(), 0)

    def test_tally(self):
        """
        What a caller counts into C{tally} before C{until} counts in the
        current slice: in the sum, and gone with that slice.
        """
        clock = Clock()
        adder = WindowedAdder(10.0, 10, clock.seconds)
        clock.advance(0.5)
        self.assertLess(clock.seconds(), adder.until)
        adder.tally += 4
        clock.advance(9.4)
        adder.add(1)
        self.assertEqual((adder.sum(), adder.tally), (5, 0))
        clock.advance(0.2)
        self.assertEqual(adder.sum(), 1)


class EmaTests(SynchronousTestCase):
    """
    The exponential moving average that aperture sizes its window with.
    """

    def test_ema(self):
        """
        The moving average follows samples with weight exp(-dt / window).
        """
        clock = Clock()
        ema = Ema(10.0, clock.seconds)
        self.assertEqual(ema.update(4.0), 4.0)
        clock.advance(10.0)
        self.assertAlmostEqual(ema.update(0.0), 4.0 * 0.36787944, places=5)
