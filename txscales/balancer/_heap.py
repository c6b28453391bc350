"""
The heap balancer: least outstanding requests.
"""

from typing import Any, Dict, List, Set

from zope.interface import implementer

from txscales.errors import NoEndpointsError
from txscales.interfaces import OPEN, IBalancer

_PENALTY = 2**31


@implementer(IBalancer)
class HeapBalancer:
    """
    Finagle's (and Scales') heap balancer: a min-heap of nodes on their
    outstanding requests.  A node found not open at the top gets a large
    penalty, so it sinks but stays usable if every node is down; it comes
    back when it is open again.
    """

    def __init__(self, clock, random) -> None:
        self._random = random
        self._heap: List[Any] = []
        self._index: Dict[Any, int] = {}
        self._penalised: Set[Any] = set()
        self.nodes: List[Any] = []

    def update(self, nodes) -> None:
        self.nodes = list(nodes)
        self._random.shuffle(self.nodes)
        self._heap = list(self.nodes)
        self._index = {}
        self._penalised &= set(self.nodes)
        self._heap.sort(key=self._key)
        for i, node in enumerate(self._heap):
            self._index[node] = i

    def _key(self, node):
        return node.pending + (_PENALTY if node in self._penalised else 0)

    def _swap(self, i, j) -> None:
        heap = self._heap
        heap[i], heap[j] = heap[j], heap[i]
        self._index[heap[i]] = i
        self._index[heap[j]] = j

    def _up(self, i) -> None:
        key = self._key
        while i > 0:
            parent = (i - 1) // 2
            if key(self._heap[i]) >= key(self._heap[parent]):
                break
            self._swap(i, parent)
            i = parent

    def _down(self, i) -> None:
        heap, key = self._heap, self._key
        n = len(heap)
        while True:
            child = 2 * i + 1
            if child >= n:
                return
            if child + 1 < n and key(heap[child + 1]) < key(heap[child]):
                child += 1
            if key(heap[child]) >= key(heap[i]):
                return
            self._swap(i, child)
            i = child

    def _fix(self, node) -> None:
        i = self._index.get(node)
        if i is not None:
            self._up(i)
            self._down(self._index[node])

    def pick(self):
        if not self._heap:
            raise NoEndpointsError("the balancer has no nodes")
        for node in [n for n in self._penalised if n.status == OPEN]:
            self._penalised.discard(node)
            self._fix(node)
        for _ in range(len(self._heap)):
            top = self._heap[0]
            if top.status == OPEN or top in self._penalised:
                break
            self._penalised.add(top)
            self._down(0)
        top = self._heap[0]
        top.pending += 1
        self._down(0)
        return top

    def release(self, node, latency) -> None:
        node.pending -= 1
        self._fix(node)
