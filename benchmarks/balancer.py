"""
The cost of a balancer pick, by the number of endpoints: one process, no
network.  Prints one JSON line.

    python benchmarks/balancer.py [--balancers p2c,heap] [--sizes 10,100,1000]

Each balancer is built as the client stack builds it
(C{txscales._plugins.balancerFactory(name).build(clock, random)}) over fake
nodes that have the attributes a balancer reads (C{status}, C{pending},
C{token}).  The timed loop keeps 100 picks outstanding, as a client with
100 calls in flight does: each step picks a node and releases the pick made
100 steps before.  Reported: nanoseconds per pick + release, the best of
several repeats.
"""

import argparse
import json
import os
import random
import sys
import time
from collections import deque

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class FakeNode:
    """
    A node as a balancer sees it (L{txscales.interfaces.INode}).
    """

    __slots__ = ("status", "pending", "token", "retiring")

    def __init__(self, token):
        self.status = "open"
        self.pending = 0
        self.token = token
        self.retiring = False


def costOf(name, size, steps, repeats, outstanding=100):
    from twisted.internet.task import Clock

    from txscales._plugins import balancerFactory

    rng = random.Random(size)
    clock = Clock()
    balancer = balancerFactory(name).build(clock, random.Random(1))
    balancer.update([FakeNode(rng.random()) for _ in range(size)])
    pick, release = balancer.pick, balancer.release
    inFlight = deque(pick() for _ in range(outstanding))
    popleft, append = inFlight.popleft, inFlight.append
    best = None
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            append(pick())
            release(popleft(), 0.0001)
        elapsed = time.perf_counter() - start
        clock.advance(0.01)
        best = elapsed if best is None else min(best, elapsed)
    return best / steps * 1e9


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--balancers", default="p2c")
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--steps", type=int, default=50000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    out = {"kind": "balancer", "ok": True, "nsPerPick": {}}
    for name in args.balancers.split(","):
        out["nsPerPick"][name] = {str(n): round(costOf(name, n, args.steps, args.repeats), 1) for n in sizes}
    sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
