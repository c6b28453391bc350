"""
The demo C{TestService} handler.
"""

from typing import List

from twisted.internet.task import deferLater

from txscales._reactor import defaultReactor
from txscales.demo.gen.ttypes import InvalidQueryException


class TestServiceHandler:
    """
    Serve C{TestService}: C{query(x)} answers C{x + x}.

    @ivar messages: what C{log} received, in order.
    """

    __test__ = False  # not a test case, whatever its name

    def __init__(self, clock=None) -> None:
        self._clock = defaultReactor(clock)
        self.messages: List[str] = []

    def query(self, x):
        """
        @return: C{x + x}.
        """
        return x + x

    def delayedQuery(self, x, delayMs):
        """
        @return: a Deferred of C{x + x}, firing after C{delayMs}
            milliseconds; cancelling it cancels the wait.
        """
        return deferLater(self._clock, delayMs / 1000.0, lambda: x + x)

    def raiseError(self, errorCode):
        """
        @raise InvalidQueryException: always, with C{errorCode}.
        """
        raise InvalidQueryException(errorCode=errorCode)

    def log(self, message) -> None:
        """
        Record C{message}.
        """
        self.messages.append(message)


def makeHandler():
    """
    @return: a L{TestServiceHandler} on the global reactor (the callable
        C{twistd txscales serve --handler} names).
    """
    return TestServiceHandler()
