"""
Power of two choices, as Finagle: least loaded and peak EWMA.
"""

from math import exp
from typing import Any, Dict, List

from zope.interface import implementer

from txscales.errors import NoEndpointsError
from txscales.interfaces import OPEN, STATUS_RANK, IBalancer

DEFAULT_MAX_EFFORT = 4
"""Picks before panicking: with half the nodes down, 0.5**4 ~ 6% panic."""


def pickOpen(pickOnce, maxEffort):
    """
    Finagle's pick loop: up to C{maxEffort} picks until one is open, then
    "panic" and use one more pick whatever its status.

    @return: (node, panicked).
    """
    for _ in range(maxEffort):
        node = pickOnce()
        if node.status == OPEN:
            return node, False
    return pickOnce(), True


@implementer(IBalancer)
class P2CBalancer:
    """
    Pick two distinct nodes at random; take the one with the better status,
    then the lower load.  The load is C{node.pending} (least loaded);
    subclasses change L{load}.

    @ivar panicked: how many picks found no open node.
    """

    def __init__(self, clock, random, maxEffort=DEFAULT_MAX_EFFORT) -> None:
        self._clock = clock
        self._random = random
        self._maxEffort = maxEffort
        self.nodes: List[Any] = []
        self.panicked = 0

    def update(self, nodes) -> None:
        self.nodes = list(nodes)

    def load(self, node):
        """
        @return: the load C{node} carries; lower is better.
        """
        return node.pending

    def _pickOnce(self):
        return self._pickFrom(self.nodes)

    def _pickFrom(self, nodes):
        """
        @return: the better of two distinct random C{nodes} (by status,
            then by L{load}).
        """
        n = len(nodes)
        if n == 1:
            return nodes[0]
        randrange = self._random.randrange
        i = randrange(n)
        j = randrange(n - 1)
        if j >= i:
            j += 1
        a, b = nodes[i], nodes[j]
        if a.status != b.status:
            return a if STATUS_RANK[a.status] > STATUS_RANK[b.status] else b
        return b if self.load(b) < self.load(a) else a

    def pick(self):
        nodes = self.nodes
        if len(nodes) == 1:
            # One node: every pick of the loop is this node, so the loop
            # comes down to reading its status once.
            node = nodes[0]
            if not self._maxEffort or node.status != OPEN:
                self.panicked += 1
        elif not nodes:
            raise NoEndpointsError("the balancer has no nodes")
        else:
            node, panicked = pickOpen(self._pickOnce, self._maxEffort)
            self.panicked += panicked
        node.pending += 1
        return node

    def release(self, node, latency) -> None:
        node.pending -= 1


class _Cost:
    __slots__ = ("cost", "stamp")

    def __init__(self, stamp) -> None:
        self.cost = 0.0
        self.stamp = stamp


@implementer(IBalancer)
class P2CPeakEwmaBalancer(P2CBalancer):
    """
    P2C on Finagle's peak EWMA load: each node's latency is a moving average
    (time constant C{decayTime}) that jumps up at once to a higher sample;
    the load is C{cost * (pending + 1)}, or a large penalty plus pending
    for a node with no history and requests outstanding.
    """

    PENALTY = float(2**63 >> 16)

    def __init__(self, clock, random, maxEffort=DEFAULT_MAX_EFFORT, decayTime=10.0) -> None:
        P2CBalancer.__init__(self, clock, random, maxEffort)
        self._decayTime = decayTime
        self._costs: Dict[Any, _Cost] = {}

    def update(self, nodes) -> None:
        P2CBalancer.update(self, nodes)
        costs = self._costs
        self._costs = {n: costs[n] for n in self.nodes if n in costs}

    def _observe(self, node, rtt):
        now = self._clock.seconds()
        cost = self._costs.get(node)
        if cost is None:
            cost = self._costs[node] = _Cost(now)
            cost.cost = rtt
            return cost.cost
        if rtt > cost.cost:
            cost.cost = rtt
        else:
            w = exp(-max(0.0, now - cost.stamp) / self._decayTime)
            cost.cost = rtt * (1.0 - w) + cost.cost * w
        cost.stamp = now
        return cost.cost

    def load(self, node):
        # Reading the load first decays the cost towards zero.
        cost = self._observe(node, 0.0) if node in self._costs else 0.0
        # As Finagle: no latency history (or a cost of 0) and requests
        # outstanding is penalised.
        if cost == 0.0 and node.pending:
            return self.PENALTY + node.pending
        return cost * (node.pending + 1)

    def release(self, node, latency) -> None:
        P2CBalancer.release(self, node, latency)
        self._observe(node, latency)
