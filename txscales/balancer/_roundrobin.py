"""
The round-robin balancer.
"""

from zope.interface import implementer

from txscales.errors import NoEndpointsError
from txscales.interfaces import OPEN, IBalancer


@implementer(IBalancer)
class RoundRobinBalancer:
    """
    The next open node in turn; when none is open, the next node anyway.
    """

    def __init__(self, clock, random):
        self.nodes = []
        self._next = 0

    def update(self, nodes):
        self.nodes = list(nodes)

    def pick(self):
        nodes = self.nodes
        n = len(nodes)
        if not n:
            raise NoEndpointsError("the balancer has no nodes")
        start = self._next
        for k in range(n):
            node = nodes[(start + k) % n]
            if node.status == OPEN:
                break
        else:
            k = 0
            node = nodes[start % n]
        self._next = (start + k + 1) % n
        node.pending += 1
        return node

    def release(self, node, latency):
        node.pending -= 1
