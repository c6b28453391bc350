"""
Tests for L{txscales._deferreds}: the Deferreds of the hot paths keep
their attributes inline however many are made before one fires.
"""

import gc
from typing import Any, List

from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import SynchronousTestCase

from txscales._deferreds import CallDeferred, leanDeferred
from txscales.mux._clientprotocol import _Call
from txscales.redis._connection import _Command


def hasOwnDict(instance: object) -> bool:
    """
    @return: whether the garbage collector sees C{instance}'s attributes
        in a dict of their own (rather than kept inline).
    """
    return any(type(referent) is dict for referent in gc.get_referents(instance))


class _Plain:
    """
    An object whose attributes are all set by its constructor: what the
    running Python does with attributes that need no dict.
    """

    def __init__(self) -> None:
        self.a = self.b = self.c = self.d = self.e = None


def burstThenFire(cls: Any, count: int = 200, **attributes: Any) -> List[Any]:
    """
    Make C{count} Deferreds of C{cls} before firing any (as C{count}
    outstanding calls do), set C{attributes} on each, then fire them.
    """
    made = [cls() for _ in range(count)]
    for d in made:
        for name, value in attributes.items():
            setattr(d, name, value)
    results: List[Any] = []
    for i, d in enumerate(made):
        d.addBoth(results.append)
        if i % 2:
            d.callback(i)
        else:
            d.errback(ValueError(i))
    return made


class LeanDeferredTests(SynchronousTestCase):
    """
    Tests for L{leanDeferred} and the classes it made.
    """

    def assertLean(self, made: List[Any]) -> None:
        expected = hasOwnDict(_Plain())
        self.assertEqual([hasOwnDict(d) for d in made], [expected] * len(made))

    def test_callDeferred(self) -> None:
        """
        CallDeferreds made in a burst and fired later keep their attributes
        as an object whose constructor set them all.
        """
        made = burstThenFire(CallDeferred)
        self.assertLean(made)
        self.assertEqual([d.called for d in made], [True] * len(made))

    def test_muxCall(self) -> None:
        """
        The ThriftMux client's per-call Deferreds are lean.
        """
        self.assertLean(burstThenFire(_Call, tag=1))

    def test_redisCommand(self) -> None:
        """
        The Redis connection's per-command Deferreds are lean, the
        attributes its queue sets included.
        """
        self.assertLean(burstThenFire(_Command, deadline=1.0, timeout=1.0, timer=None))

    def test_behavesAsDeferred(self) -> None:
        """
        A lean class's Deferreds chain, pause, fail and cancel as any
        Deferred does.
        """

        @leanDeferred
        class Lean(Deferred):  # type: ignore[type-arg]
            pass

        outer: Deferred[Any] = Lean()
        inner: Deferred[Any] = Lean()
        seen: List[Any] = []
        outer.addCallback(lambda _: inner).addCallback(seen.append)
        outer.callback(None)
        self.assertEqual(seen, [])
        inner.callback("inner")
        self.assertEqual(seen, ["inner"])
        cancelled: Deferred[Any] = Lean()
        cancelled.cancel()
        self.failureResultOf(cancelled, CancelledError)
