"""
Helpers for the load balancer tests: fake nodes with fixed tokens, balancers
built through their plugins with a fake clock and a seeded random source, and
ways to drive them.
"""

import random
from collections import Counter

from twisted.internet.task import Clock

from txscales._plugins import balancerFactory
from txscales.interfaces import OPEN

SEED = 20240501

# Tokens deliberately not in list order, so that token order (aperture)
# differs from list order (round robin).
TOKENS = [0.61, 0.13, 0.87, 0.42, 0.05, 0.74, 0.29, 0.95, 0.50, 0.21]

# A clock step long enough that the load band's EMA equals the latest
# sample exactly: exp(-1000 / 15) < 1e-28, so 1 - w == 1.0 in a double.
LONG = 1000.0


class FakeNode:
    """
    An L{txscales.interfaces.INode} for tests.
    """

    def __init__(self, name, token, status=OPEN):
        self.name = name
        self.token = token
        self.status = status
        self.pending = 0

    def __repr__(self):
        return "<FakeNode %s %s pending=%d>" % (self.name, self.status, self.pending)


def makeNodes(count, prefix="n"):
    """
    @return: C{count} open nodes named C{prefix0}, C{prefix1}, ... with the
        tokens of L{TOKENS}.
    """
    offset = 0 if prefix == "n" else 3
    return [FakeNode("%s%d" % (prefix, i), TOKENS[(i + offset) % len(TOKENS)]) for i in range(count)]


def byToken(nodes):
    """
    @return: C{nodes} in token order (the aperture's order).
    """
    return sorted(nodes, key=lambda node: node.token)


def build(name, seed=SEED, **options):
    """
    @return: (balancer, clock) for the balancer plugin C{name}.
    """
    clock = Clock()
    balancer = balancerFactory(name).build(clock, random.Random(seed), **options)
    return balancer, clock


def cycle(balancer, clock, times, latency=0.01, step=1.0, latencyOf=None):
    """
    Send C{times} requests one at a time: advance the clock by C{step}, pick,
    release at once.

    @return: a L{Counter} of picks by node name.
    """
    counts = Counter()
    for _ in range(times):
        clock.advance(step)
        node = balancer.pick()
        counts[node.name] += 1
        balancer.release(node, latencyOf(node) if latencyOf else latency)
    return counts


def hold(balancer, clock, times, step=LONG):
    """
    Pick C{times} times, advancing the clock by C{step} before each pick, and
    keep every request outstanding.

    @return: the picked nodes, in order.
    """
    picked = []
    for _ in range(times):
        clock.advance(step)
        picked.append(balancer.pick())
    return picked


def spread(nodes):
    """
    @return: max - min of the nodes' pending counts.
    """
    pending = [node.pending for node in nodes]
    return max(pending) - min(pending)
