"""
The demo C{TestService} handler, for its generated code and for its IDL
loaded at run time.
"""

import os
from typing import Any, List

from twisted.internet.task import deferLater

from txscales._reactor import defaultReactor
from txscales.demo.gen.ttypes import InvalidQueryException


class TestServiceHandler:
    """
    Serve C{TestService}: C{query(x)} answers C{x + x}.

    @ivar messages: what C{log} received, in order.
    """

    __test__ = False  # not a test case, whatever its name

    def __init__(self, clock=None, exceptions: Any = None) -> None:
        """
        @param exceptions: the module whose C{InvalidQueryException}
            C{raiseError} raises (default: the generated code's).
        """
        self._clock = defaultReactor(clock)
        self._invalidQuery = InvalidQueryException if exceptions is None else exceptions.InvalidQueryException
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
        raise self._invalidQuery(errorCode=errorCode)

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


IDL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "TestService.thrift")
"""The demo service's IDL file."""


def makeIdlHandler():
    """
    @return: a L{TestServiceHandler} on the global reactor for C{TestService}
        loaded from L{IDL} at run time (needs C{txscales[idl]}): the callable
        of C{twistd txscales serve --idl .../TestService.thrift --handler}.
        It loads the file as C{twistd} does, as the module
        C{TestService_thrift}, so that it raises the service's own
        C{InvalidQueryException}.
    """
    from txscales.thrift import loadIdl

    return TestServiceHandler(exceptions=loadIdl(IDL, moduleName="TestService_thrift"))
