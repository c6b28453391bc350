"""
Helpers for the client stack tests: a request that records its requeues and
a dispatcher over one node with scripted answers.
"""

from twisted.internet.task import Clock

from txscales.interfaces import OPEN
from txscales.stack._dispatcher import Dispatcher


class Request:
    """
    A request whose requeues are recorded.
    """

    timeout = None
    decode = None

    def __init__(self):
        self.attempts = []

    def retried(self, n):
        self.attempts.append(n)
        return self


class OneNode:
    """
    A balancer of one node whose answers come from C{answer(request)}.
    """

    status = OPEN
    token = 0.5
    retiring = False
    accrual = None

    def __init__(self, answer):
        self.answer = answer
        self.pending = 0

    def pick(self):
        self.pending += 1
        return self

    def release(self, node, latency):
        self.pending -= 1

    def send(self, request):
        return self.answer(request)

    def succeeded(self):
        pass

    def failed(self, failure, timedOut=False):
        pass


def oneNodeDispatcher(answer, budget, **options):
    """
    @return: a L{Dispatcher} over one node answering with C{answer}.
    """
    return Dispatcher(OneNode(answer), Clock(), budget, **options)
