"""
Server factories that track their connections and drain them on stop.
"""

from typing import Any, Optional, Set

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Factory
from twisted.logger import Logger

_log = Logger()


class DrainingFactory(Factory):
    """
    A server factory whose protocols add themselves to L{protocols} when
    connected and remove themselves when gone, and have a C{drain()}
    returning a Deferred that fires once they are closed.

    @ivar protocols: the open connections.
    @ivar draining: whether L{drainAll} was called.
    """

    noisy = False

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self.protocols: Set[Any] = set()
        self.draining = False

    def drainAll(self, timeout: float = 10.0) -> "Deferred[None]":
        """
        Drain every connection; abort the ones still open after C{timeout}
        seconds.

        @return: a Deferred firing when all are closed.
        """
        self.draining = True
        protocols = list(self.protocols)
        if not protocols:
            return succeed(None)
        done: Deferred[None] = Deferred()
        remaining = [len(protocols)]

        def closedOne(_: Optional[object]) -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                if timer.active():
                    timer.cancel()
                done.callback(None)

        def expire() -> None:
            for p in list(self.protocols):
                _log.warn("drain deadline passed; aborting a connection")
                p.transport.abortConnection()

        timer = self._clock.callLater(timeout, expire)
        for p in protocols:
            p.drain().addCallback(closedOne)
        return done
