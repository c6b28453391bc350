"""
The round-robin balancer.
"""

from random import Random
from typing import Iterable, List

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from txscales.errors import NoEndpointsError
from txscales.interfaces import OPEN, IBalancer, INode


@implementer(IBalancer)
class RoundRobinBalancer:
    """
    The next open node in turn; when none is open, the next node anyway.
    """

    def __init__(self, clock: IReactorTime, random: Random) -> None:
        self.nodes: List[INode] = []
        self._next = 0

    def update(self, nodes: Iterable[INode]) -> None:
        self.nodes = list(nodes)

    def pick(self) -> INode:
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

    def release(self, node: INode, latency: float) -> None:
        node.pending -= 1
