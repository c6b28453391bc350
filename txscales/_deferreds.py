"""
Deferred subclasses for the hot paths, whose instances keep their
attributes inline.

CPython (3.11 and later) keeps an instance's attributes in an array sized,
when the instance is made, by the attribute names its class has seen so
far plus a margin that shrinks with every instance made.  A L{Deferred}
sets C{called}, C{result} and C{_chainedTo} only when it fires: in a
process that made a few dozen Deferreds of a class before firing one of
them, as any Twisted program does at start-up, each Deferred of that class
fired afterwards moves its attributes to a separate dict.  That is one more
allocation and one more object for the garbage collector per call, which,
with many calls outstanding, costs more than the rest of a Deferred's life.

L{leanDeferred} makes a class see every name a Deferred sets, and those
its own code sets, before the first instance that counts is made.  It uses
Deferred's public API only, so it stays right whatever Twisted sets; with
a Python that keeps attributes otherwise, it changes nothing.
"""

from typing import Any, Type, TypeVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

__all__ = ["CallDeferred", "leanDeferred"]

_D = TypeVar("_D", bound=Type[Deferred])


def leanDeferred(cls: _D, *names: str) -> _D:
    """
    Make C{cls} learn its instances' attribute names: a few instances live
    a Deferred's whole life (callbacks and errbacks, chaining, pausing,
    cancelling), and one sets each of C{names}.  Use it where the class is
    defined, before any other instance is made.

    @param cls: a subclass of L{Deferred} made for one hot path.
    @param names: the other attributes its code sets on its instances.
    @return: C{cls}.
    """
    first: Deferred[Any] = cls()
    for name in names:
        setattr(first, name, None)
    inner: Deferred[Any] = cls()
    first.addCallback(lambda _: inner)
    first.addBoth(lambda _: None)
    first.callback(None)
    inner.callback(None)
    failed: Deferred[Any] = cls()
    failed.addErrback(lambda _: None)
    failed.errback(Failure(ValueError()))
    cancelled: Deferred[Any] = cls()
    cancelled.addErrback(lambda failure: failure.trap(CancelledError))
    cancelled.cancel()
    cancelled.callback(None)  # ignored once cancelled
    return cls


@leanDeferred
class CallDeferred(Deferred):
    """
    The Deferred of one call, where many are made before any fires.
    """
