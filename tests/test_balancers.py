"""
Tests for the load balancers (L{txscales.balancer}) built through their
plugins (L{txscales._plugins.balancerFactory}), with a fake clock and a
seeded random source.

Expectations are derived from the algorithms as MUX.md 3.2 describes them
(Finagle's P2C, peak EWMA, aperture load band, heap and round robin), not
from running the code.
"""

import math
import random
from collections import Counter

from twisted.internet.task import Clock
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txscales._plugins import balancerFactory
from txscales.errors import NoEndpointsError, UnknownPluginError
from txscales.interfaces import BUSY, CLOSED, OPEN, IBalancer, IBalancerFactory

SEED = 20240501

NAMES = ("p2c", "p2c-peak-ewma", "aperture", "aperture-scales", "heap", "round-robin")

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


class _ContractTests:
    """
    What every balancer does, whatever its algorithm.

    @cvar balancerName: the plugin name of the balancer under test.
    """

    balancerName = None

    def build(self, **options):
        return build(self.balancerName, **options)

    def test_providesIBalancer(self):
        """
        The plugin builds an L{IBalancer}.
        """
        balancer, _ = self.build()
        self.assertTrue(verifyObject(IBalancer, balancer))

    def test_noNodes(self):
        """
        Picking with no nodes, before any update or after an empty one, raises
        L{NoEndpointsError}.
        """
        balancer, clock = self.build()
        self.assertRaises(NoEndpointsError, balancer.pick)
        balancer.update(makeNodes(3))
        cycle(balancer, clock, 5)
        balancer.update([])
        self.assertRaises(NoEndpointsError, balancer.pick)
        self.assertRaises(NoEndpointsError, balancer.pick)

    def test_updateReplacesNodes(self):
        """
        After update() picks go only to the current nodes, and requests still
        outstanding on removed nodes can be released.
        """
        balancer, clock = self.build()
        old = makeNodes(3, "old")
        balancer.update(old)
        held = hold(balancer, clock, 6)
        new = makeNodes(4, "new")
        balancer.update(new)
        for node in held:
            balancer.release(node, 0.01)
        self.assertEqual([node.pending for node in old], [0, 0, 0])

        counts = cycle(balancer, clock, 200)
        picked = hold(balancer, clock, 20)
        names = set(counts) | {node.name for node in picked}
        self.assertTrue(names)
        self.assertTrue(names <= {node.name for node in new}, names)
        self.assertEqual(sum(node.pending for node in new), 20)

        for node in picked:
            balancer.release(node, 0.01)
        subset = new[1:3]
        balancer.update(subset)
        counts = cycle(balancer, clock, 100)
        picked = hold(balancer, clock, 10)
        names = set(counts) | {node.name for node in picked}
        self.assertTrue(names <= {node.name for node in subset}, names)

    def _downNodeAvoided(self, status):
        nodes = makeNodes(4)
        down = nodes[1]
        down.status = status
        balancer, clock = self.build()
        balancer.update(nodes)
        counts = cycle(balancer, clock, 200)
        self.assertEqual(counts[down.name], 0)
        self.assertEqual(sum(counts.values()), 200)
        picked = hold(balancer, clock, 40)
        self.assertNotIn(down, picked)
        self.assertEqual(down.pending, 0)

    def test_busyNodeAvoided(self):
        """
        A busy node gets no picks while three other nodes are open.
        """
        self._downNodeAvoided(BUSY)

    def test_closedNodeAvoided(self):
        """
        A closed node gets no picks while three other nodes are open.
        """
        self._downNodeAvoided(CLOSED)

    def test_recoveredNodeComesBack(self):
        """
        A closed node set back to open gets requests again.
        """
        nodes = makeNodes(4)
        down = nodes[2]
        down.status = CLOSED
        balancer, clock = self.build()
        balancer.update(nodes)
        self.assertNotIn(down, hold(balancer, clock, 8))
        down.status = OPEN
        # It is now the least loaded node (0 outstanding, the others 8 between
        # three): every algorithm gives it some of the next requests.
        picked = hold(balancer, clock, 8)
        self.assertIn(down, picked)
        self.assertEqual(down.pending, picked.count(down))


class P2CContractTests(_ContractTests, SynchronousTestCase):
    """
    The contract, for P2C least loaded.
    """

    balancerName = "p2c"


class PeakEwmaContractTests(_ContractTests, SynchronousTestCase):
    """
    The contract, for P2C peak EWMA.
    """

    balancerName = "p2c-peak-ewma"


class ApertureContractTests(_ContractTests, SynchronousTestCase):
    """
    The contract, for random aperture.
    """

    balancerName = "aperture"


class ApertureScalesContractTests(_ContractTests, SynchronousTestCase):
    """
    The contract, for random aperture with Scales' load band.
    """

    balancerName = "aperture-scales"


class HeapContractTests(_ContractTests, SynchronousTestCase):
    """
    The contract, for the heap balancer.
    """

    balancerName = "heap"


class RoundRobinContractTests(_ContractTests, SynchronousTestCase):
    """
    The contract, for round robin.
    """

    balancerName = "round-robin"


class P2CTests(SynchronousTestCase):
    """
    Power of two choices, least loaded: the less loaded of two distinct random
    nodes, the better status first; panic after C{maxEffort} tries.
    """

    def test_sequentialSpreadIsUniform(self):
        """
        With every load 0 the pick is the first random node, so 4000 one-at-a-time
        requests spread uniformly over 4 nodes (1000 each, sd ~27).
        """
        balancer, clock = build("p2c")
        nodes = makeNodes(4)
        balancer.update(nodes)
        counts = cycle(balancer, clock, 4000)
        self.assertEqual(sorted(counts), [node.name for node in nodes])
        for name, count in counts.items():
            self.assertTrue(850 <= count <= 1150, counts)
        self.assertEqual([node.pending for node in nodes], [0, 0, 0, 0])

    def test_twoNodesStayBalanced(self):
        """
        With two nodes the pair is always both, so held requests never differ
        by more than one between them.
        """
        balancer, clock = build("p2c")
        nodes = makeNodes(2)
        balancer.update(nodes)
        for _ in range(101):
            balancer.pick()
            self.assertLessEqual(spread(nodes), 1)
        self.assertEqual(sorted(node.pending for node in nodes), [50, 51])

    def test_heldRequestsNearEven(self):
        """
        Held requests stay near even over 4 nodes, and the one most loaded node
        is never picked (its partner is always less loaded).
        """
        balancer, clock = build("p2c")
        nodes = makeNodes(4)
        balancer.update(nodes)
        worst = 0
        for _ in range(400):
            pending = sorted(node.pending for node in nodes)
            uniqueMax = pending[-1] > pending[-2]
            before = {node: node.pending for node in nodes}
            node = balancer.pick()
            if uniqueMax:
                self.assertLess(before[node], pending[-1])
            worst = max(worst, spread(nodes))
        # A uniform random choice ends with a spread of 6 or less about 3% of
        # the time; P2C ends within 6 almost always (and within 2 mostly).
        self.assertLessEqual(spread(nodes), 6)
        self.assertLessEqual(worst, 10)
        self.assertEqual(sum(node.pending for node in nodes), 400)

    def test_statusBeatsLoad(self):
        """
        An open node is chosen over a busy one however loaded it is.
        """
        balancer, clock = build("p2c")
        nodes = makeNodes(2)
        nodes[0].status = BUSY
        balancer.update(nodes)
        for _ in range(20):
            self.assertIs(balancer.pick(), nodes[1])
        self.assertEqual(balancer.panicked, 0)

    def test_busyPreferredToClosedInPanic(self):
        """
        With no node open every pick panics, and a busy node is preferred to a
        closed one.
        """
        balancer, clock = build("p2c")
        nodes = makeNodes(2)
        nodes[0].status = CLOSED
        nodes[1].status = BUSY
        balancer.update(nodes)
        counts = cycle(balancer, clock, 50)
        self.assertEqual(counts, Counter({nodes[1].name: 50}))
        self.assertEqual(balancer.panicked, 50)

    def test_allClosedPanics(self):
        """
        When every node is closed a pick still returns one of them (and counts
        it as pending), and C{panicked} counts each such pick.
        """
        balancer, clock = build("p2c")
        nodes = makeNodes(3)
        for node in nodes:
            node.status = CLOSED
        balancer.update(nodes)
        picked = [balancer.pick() for _ in range(30)]
        self.assertTrue(set(picked) <= set(nodes))
        self.assertEqual(sum(node.pending for node in nodes), 30)
        self.assertEqual(balancer.panicked, 30)

    def test_singleClosedNodePanics(self):
        """
        A single closed node is still used, each pick counted as a panic.
        """
        balancer, clock = build("p2c")
        nodes = makeNodes(1)
        nodes[0].status = CLOSED
        balancer.update(nodes)
        self.assertIs(balancer.pick(), nodes[0])
        self.assertEqual(balancer.panicked, 1)

    def test_halfDownRarelyPanics(self):
        """
        With one busy, one closed and one open node, a pick panics only when 4
        pairs in a row are the two down ones ((1/3)**4 = 1/81), the closed node
        is never used and the busy one only in about a third of the panics.
        """
        balancer, clock = build("p2c")
        nodes = makeNodes(3)
        nodes[0].status = BUSY
        nodes[1].status = CLOSED
        balancer.update(nodes)
        counts = cycle(balancer, clock, 2430)
        self.assertEqual(counts[nodes[1].name], 0)
        # Expected: 30 panics, 10 busy picks.
        self.assertTrue(10 <= balancer.panicked <= 60, balancer.panicked)
        self.assertLessEqual(counts[nodes[0].name], 30)
        self.assertLessEqual(counts[nodes[0].name], balancer.panicked)
        self.assertGreaterEqual(counts[nodes[2].name], 2400)

    def test_maxEffortOption(self):
        """
        With C{maxEffort=1} the same half-down set panics on a third of the
        picks (one failed pair is enough).
        """
        balancer, clock = build("p2c", maxEffort=1)
        nodes = makeNodes(3)
        nodes[0].status = BUSY
        nodes[1].status = CLOSED
        balancer.update(nodes)
        counts = cycle(balancer, clock, 3000)
        self.assertTrue(850 <= balancer.panicked <= 1150, balancer.panicked)
        self.assertEqual(counts[nodes[1].name], 0)


class PeakEwmaTests(SynchronousTestCase):
    """
    P2C on peak EWMA latency: load = cost * (pending + 1), the cost decays
    with time constant C{decayTime} (10 s) and jumps up at once to a higher
    latency; a node with no history and requests outstanding is penalised.
    """

    def test_slowNodeAvoided(self):
        """
        A node ten times slower than the two others gets well under a third of
        the picks, yet is still probed as its cost decays.
        """
        balancer, clock = build("p2c-peak-ewma")
        nodes = makeNodes(3)
        slow = nodes[0]
        balancer.update(nodes)
        counts = cycle(balancer, clock, 3000, step=0.1, latencyOf=lambda node: 0.1 if node is slow else 0.01)
        # Its cost of 0.1 must decay below the others' ~0.01 before it wins
        # again: 10 * ln(10) ~ 23 s, one pick per ~230 requests, ~13 in all.
        self.assertLess(counts[slow.name], 3000 * 0.05)
        self.assertGreaterEqual(counts[slow.name], 3)
        for node in nodes[1:]:
            self.assertGreater(counts[node.name], 1300)

    def test_recoveredSlowNodeRegainsTraffic(self):
        """
        Once the slow node answers as fast as the others, its cost decays, it is
        tried again and gets its third of the requests back.
        """
        balancer, clock = build("p2c-peak-ewma")
        nodes = makeNodes(3)
        slow = nodes[0]
        balancer.update(nodes)
        cycle(balancer, clock, 1000, step=0.1, latencyOf=lambda node: 0.1 if node is slow else 0.01)
        # Recovered; within ~23 s (230 requests) its cost has decayed enough.
        cycle(balancer, clock, 500, step=0.1, latency=0.01)
        counts = cycle(balancer, clock, 1500, step=0.1, latency=0.01)
        self.assertTrue(375 <= counts[slow.name] <= 625, counts)

    def test_costDecaysWithTime(self):
        """
        A cost of 1 s observed 30 s ago (1 * exp(-3) ~ 0.05) is lower than a
        cost of 0.1 s observed now, but not if both were observed together.
        """
        for delay, expected in [(30.0, 0), (0.0, 1)]:
            balancer, clock = build("p2c-peak-ewma")
            nodes = makeNodes(2)
            balancer.update(nodes)
            first, second = balancer.pick(), balancer.pick()
            self.assertEqual({first, second}, set(nodes))
            balancer.release(first, 1.0)
            clock.advance(delay)
            balancer.release(second, 0.1)
            self.assertIs(balancer.pick(), [first, second][expected])

    def test_peakTakenAtOnce(self):
        """
        A latency above the current cost replaces it at once, even with no time
        elapsed (an ordinary EWMA would not move at all).
        """
        balancer, clock = build("p2c-peak-ewma")
        nodes = makeNodes(2)
        balancer.update(nodes)
        a, b = balancer.pick(), balancer.pick()
        balancer.release(a, 0.01)
        balancer.release(b, 0.02)
        self.assertIs(balancer.pick(), a)
        balancer.release(a, 0.5)
        for _ in range(3):
            node = balancer.pick()
            self.assertIs(node, b)
            balancer.release(node, 0.02)

    def test_pendingMultipliesCost(self):
        """
        The load is cost * (pending + 1): a node with cost 0.01 and 4 requests
        outstanding (0.05) loses to one with cost 0.04 and none (0.04).
        """
        balancer, clock = build("p2c-peak-ewma")
        nodes = makeNodes(2)
        balancer.update(nodes)
        a, b = balancer.pick(), balancer.pick()
        balancer.release(a, 0.01)
        balancer.release(b, 0.04)
        for _ in range(3):
            self.assertIs(balancer.pick(), a)
        # a: 0.01 * 4 = 0.04 ties b's 0.04; one more makes a 0.05.
        a.pending += 1
        self.assertIs(balancer.pick(), b)

    def test_noHistoryWithPendingPenalised(self):
        """
        A node with no latency history and a request outstanding is avoided
        even against a slow node with several requests outstanding.
        """
        balancer, clock = build("p2c-peak-ewma")
        nodes = makeNodes(2)
        balancer.update(nodes)
        a, b = balancer.pick(), balancer.pick()
        # Both had no history: the first pick made its node penalised, so
        # the second went to the other one.
        self.assertIsNot(a, b)
        balancer.release(a, 5.0)
        # a: 5 s * (pending + 1); b: no history, 1 pending -> penalty.
        for _ in range(4):
            self.assertIs(balancer.pick(), a)
        self.assertEqual((a.pending, b.pending), (4, 1))
        # Least loaded would have picked b (1 < 4).
        balancer.release(b, 0.1)
        self.assertIs(balancer.pick(), b)

    def test_noHistoryNoPendingPreferred(self):
        """
        A new node (no history, nothing outstanding) has load 0 and wins over
        any node with history.
        """
        balancer, clock = build("p2c-peak-ewma")
        nodes = makeNodes(2)
        balancer.update(nodes[:1])
        cycle(balancer, clock, 5, latency=0.001)
        balancer.update(nodes)
        self.assertIs(balancer.pick(), nodes[1])

    def test_zeroCostWithPendingPenalised(self):
        """
        As in Finagle, a node whose cost is 0 (a zero latency, or a cost decayed
        to 0) and which has requests outstanding is penalised, so held
        requests are balanced by count.
        """
        balancer, clock = build("p2c-peak-ewma")
        nodes = makeNodes(2)
        balancer.update(nodes)
        a, b = balancer.pick(), balancer.pick()
        balancer.release(a, 0.0)
        balancer.release(b, 0.0)
        for _ in range(20):
            balancer.pick()
            self.assertLessEqual(spread(nodes), 1)


    def test_decayTimeOption(self):
        """
        With C{decayTime=1} a 1 s cost observed 5 s ago (exp(-5) ~ 0.007) is
        below a 0.1 s cost observed now; with the default 10 s it is not
        (exp(-0.5) ~ 0.61).
        """
        for options, expected in [({"decayTime": 1.0}, 0), ({}, 1)]:
            balancer, clock = build("p2c-peak-ewma", **options)
            nodes = makeNodes(2)
            balancer.update(nodes)
            first, second = balancer.pick(), balancer.pick()
            balancer.release(first, 1.0)
            clock.advance(5.0)
            balancer.release(second, 0.1)
            self.assertIs(balancer.pick(), [first, second][expected])

    def test_heldRequestsNearEven(self):
        """
        Held requests on nodes without history are spread by count (each held
        node is penalised), near evenly.
        """
        balancer, clock = build("p2c-peak-ewma")
        nodes = makeNodes(4)
        balancer.update(nodes)
        for _ in range(400):
            balancer.pick()
        self.assertLessEqual(spread(nodes), 6)

    def test_allClosedPanics(self):
        """
        When every node is closed a pick still returns one, counted in
        C{panicked}.
        """
        balancer, clock = build("p2c-peak-ewma")
        nodes = makeNodes(3)
        for node in nodes:
            node.status = CLOSED
        balancer.update(nodes)
        counts = cycle(balancer, clock, 12)
        self.assertEqual(sum(counts.values()), 12)
        self.assertEqual(balancer.panicked, 12)


class ApertureTests(SynchronousTestCase):
    """
    Random aperture: P2C within the first C{aperture} open nodes in token
    order; the aperture follows the EMA of outstanding requests per node in
    it, widening at C{highLoad} (1.125) and narrowing at C{lowLoad} (0.875).
    """

    name = "aperture"

    # Holding 1, 2, ... 8 requests on 6 nodes with the EMA equal to the
    # outstanding count: load = k / aperture; widen when >= 1.125, up to 6.
    widening = [1, 2, 3, 4, 5, 6, 6, 6]
    # Releasing them one by one, 7, 6, ... 0 outstanding: narrow when
    # k / aperture <= 0.875, down to 1.
    narrowing = [6, 6, 5, 4, 3, 2, 1, 1]

    def test_lowLoadUsesOnlyTheAperture(self):
        """
        With one request at a time the load per node stays at most 1, so the
        aperture stays 1 and every request goes to the lowest token.
        """
        balancer, clock = build(self.name)
        nodes = makeNodes(6)
        balancer.update(nodes)
        counts = cycle(balancer, clock, 600)
        self.assertEqual(counts, Counter({byToken(nodes)[0].name: 600}))
        self.assertEqual(balancer.aperture, 1)

    def test_widensAndNarrowsWithLoad(self):
        """
        Held requests widen the aperture one node at a time as the load per
        node reaches the high mark, picks stay inside it, and releasing them
        narrows it again.
        """
        balancer, clock = build(self.name)
        nodes = makeNodes(6)
        ordered = byToken(nodes)
        balancer.update(nodes)
        apertures = []
        held = []
        for _ in range(8):
            clock.advance(LONG)
            node = balancer.pick()
            held.append(node)
            apertures.append(balancer.aperture)
            self.assertIn(node, ordered[: balancer.aperture])
        self.assertEqual(apertures, self.widening)
        apertures = []
        for node in held:
            clock.advance(LONG)
            balancer.release(node, 0.01)
            apertures.append(balancer.aperture)
        self.assertEqual(apertures, self.narrowing)

    def test_emaSmoothsLoad(self):
        """
        A second request 1 s after the first does not widen the aperture (the
        EMA is 2 - exp(-1/15) ~ 1.06, or 2 - exp(-1/5) ~ 1.18 for Scales), but
        it does once the EMA has caught up (2 per node).
        """
        balancer, clock = build(self.name)
        balancer.update(makeNodes(4))
        balancer.pick()
        clock.advance(1.0)
        balancer.pick()
        self.assertEqual(balancer.aperture, 1)

        balancer, clock = build(self.name)
        balancer.update(makeNodes(4))
        balancer.pick()
        clock.advance(LONG)
        balancer.pick()
        self.assertEqual(balancer.aperture, 2)

    def test_frozenClockKeepsAperture(self):
        """
        With the clock frozen the EMA keeps its first sample (w = exp(0) = 1),
        so held requests do not widen the aperture.
        """
        balancer, clock = build(self.name)
        nodes = makeNodes(4)
        balancer.update(nodes)
        picked = [balancer.pick() for _ in range(8)]
        self.assertEqual(balancer.aperture, 1)
        self.assertEqual(set(picked), {byToken(nodes)[0]})

    def test_fullApertureSpreadsNearEven(self):
        """
        Under heavy load the aperture covers every node and P2C keeps held
        requests near even.
        """
        balancer, clock = build(self.name)
        nodes = makeNodes(4)
        balancer.update(nodes)
        hold(balancer, clock, 400)
        self.assertEqual(balancer.aperture, 4)
        self.assertLessEqual(spread(nodes), 6)

    def test_downNodeLeavesAperture(self):
        """
        At low load, with the lowest token node busy or closed, every request
        goes to the next node in token order.
        """
        for status in (BUSY, CLOSED):
            balancer, clock = build(self.name)
            nodes = makeNodes(5)
            ordered = byToken(nodes)
            ordered[0].status = status
            balancer.update(nodes)
            counts = cycle(balancer, clock, 100)
            self.assertEqual(counts, Counter({ordered[1].name: 100}))

    def test_recoveredNodeInFullAperture(self):
        """
        With the aperture covering every node, a node closed and then opened
        again gets requests again.
        """
        balancer, clock = build(self.name)
        nodes = makeNodes(3)
        balancer.update(nodes)
        hold(balancer, clock, 6)
        self.assertEqual(balancer.aperture, 3)
        nodes[0].status = CLOSED
        self.assertNotIn(nodes[0], hold(balancer, clock, 6))
        nodes[0].status = OPEN
        self.assertIn(nodes[0], hold(balancer, clock, 6))

    def test_recoveredNodeReturnsToAperture(self):
        """
        At low load, when the lowest token node reopens, requests go back to it.
        """
        balancer, clock = build(self.name)
        nodes = makeNodes(4)
        ordered = byToken(nodes)
        balancer.update(nodes)
        ordered[0].status = CLOSED
        self.assertEqual(cycle(balancer, clock, 20), Counter({ordered[1].name: 20}))
        ordered[0].status = OPEN
        self.assertEqual(cycle(balancer, clock, 20), Counter({ordered[0].name: 20}))


    def test_busyPreferredToClosedInPanic(self):
        """
        With no node open, a busy node is preferred to a closed one, as in P2C.
        """
        balancer, clock = build(self.name)
        nodes = makeNodes(2)
        balancer.update(nodes)
        hold(balancer, clock, 3)
        self.assertEqual(balancer.aperture, 2)
        nodes[0].status = CLOSED
        nodes[1].status = BUSY
        counts = cycle(balancer, clock, 50, step=0.0)
        self.assertEqual(counts, Counter({nodes[1].name: 50}))


    def test_allClosedPanics(self):
        """
        When every node is closed a pick still returns one, counted in
        C{panicked}.
        """
        balancer, clock = build(self.name)
        nodes = makeNodes(4)
        for node in nodes:
            node.status = CLOSED
        balancer.update(nodes)
        counts = cycle(balancer, clock, 12)
        self.assertEqual(sum(counts.values()), 12)
        self.assertTrue(set(counts) <= {node.name for node in nodes})
        self.assertEqual(balancer.panicked, 12)

    def test_updateClampsAperture(self):
        """
        Replacing 6 nodes by 3 shrinks a full aperture (12 requests held) to 3,
        within the new nodes.
        """
        balancer, clock = build(self.name)
        balancer.update(makeNodes(6))
        held = hold(balancer, clock, 12)
        self.assertEqual(balancer.aperture, 6)
        new = makeNodes(3, "new")
        balancer.update(new)
        self.assertEqual(balancer.aperture, 3)
        for node in held:
            balancer.release(node, 0.01)
        self.assertTrue(set(hold(balancer, clock, 3)) <= set(new))

    def test_minApertureOption(self):
        """
        With C{minAperture=3} low load spreads over the 3 lowest tokens.
        """
        balancer, clock = build(self.name, minAperture=3)
        nodes = makeNodes(6)
        balancer.update(nodes)
        self.assertEqual(balancer.aperture, 3)
        counts = cycle(balancer, clock, 300)
        self.assertEqual(set(counts), {node.name for node in byToken(nodes)[:3]})
        self.assertEqual(balancer.aperture, 3)


class ApertureScalesTests(ApertureTests):
    """
    Random aperture with Scales' load band: widen at 2.0, narrow at 0.5.
    """

    name = "aperture-scales"

    # k / aperture >= 2.0 widens: k = 2, 4, 6, 8 -> 2, 3, 4, 5.
    widening = [1, 2, 2, 3, 3, 4, 4, 5]
    # From 5: k / aperture <= 0.5 narrows: k = 2 (0.4), 1 (0.25), 0.
    narrowing = [5, 5, 5, 5, 5, 4, 3, 2]


class HeapTests(SynchronousTestCase):
    """
    The heap balancer: always the least loaded node; a node found not open
    is penalised (sinks) until it is open again.
    """

    def test_heldRequestsBalanced(self):
        """
        Held requests never differ by more than one between nodes.
        """
        balancer, clock = build("heap")
        nodes = makeNodes(5)
        balancer.update(nodes)
        for _ in range(103):
            balancer.pick()
            self.assertLessEqual(spread(nodes), 1)
        self.assertEqual(sorted(node.pending for node in nodes), [20, 20, 21, 21, 21])

    def test_alwaysLeastLoaded(self):
        """
        Under random picks and releases every pick goes to an open node with the
        fewest outstanding requests, never to a busy one.
        """
        balancer, clock = build("heap")
        nodes = makeNodes(6)
        nodes[4].status = BUSY
        balancer.update(nodes)
        chooser = random.Random(7)
        held = []
        for _ in range(3000):
            if held and chooser.random() < 0.45:
                balancer.release(held.pop(chooser.randrange(len(held))), 0.01)
            else:
                least = min(node.pending for node in nodes if node.status == OPEN)
                node = balancer.pick()
                held.append(node)
                self.assertEqual(node.status, OPEN)
                self.assertEqual(node.pending - 1, least)
        self.assertEqual(nodes[4].pending, 0)

    def test_penalisedNodeComesBack(self):
        """
        A closed node gets nothing; reopened, it gets the next requests until it
        has caught up (10 each on 3 nodes, then 10 more to it).
        """
        balancer, clock = build("heap")
        nodes = makeNodes(4)
        nodes[1].status = CLOSED
        balancer.update(nodes)
        hold(balancer, clock, 30)
        self.assertEqual([node.pending for node in nodes], [10, 0, 10, 10])
        nodes[1].status = OPEN
        self.assertEqual(hold(balancer, clock, 10), [nodes[1]] * 10)
        hold(balancer, clock, 4)
        self.assertEqual([node.pending for node in nodes], [11, 11, 11, 11])

    def test_allDownStillUsed(self):
        """
        When every node is down the heap still returns the least loaded one.
        """
        balancer, clock = build("heap")
        nodes = makeNodes(4)
        for node, status in zip(nodes, [BUSY, CLOSED, CLOSED, BUSY]):
            node.status = status
        balancer.update(nodes)
        hold(balancer, clock, 8)
        self.assertEqual([node.pending for node in nodes], [2, 2, 2, 2])

    def test_sequentialRequestsGoToIdleNodes(self):
        """
        One request at a time, every pick is a node with nothing outstanding,
        so the release leaves every node idle again.
        """
        balancer, clock = build("heap")
        nodes = makeNodes(4)
        balancer.update(nodes)
        counts = cycle(balancer, clock, 400)
        self.assertEqual(sum(counts.values()), 400)
        self.assertEqual([node.pending for node in nodes], [0, 0, 0, 0])


class RoundRobinTests(SynchronousTestCase):
    """
    Round robin: the next open node in list order; when none is open, the
    next node anyway.
    """

    def test_exactlyEven(self):
        """
        500 requests over 5 nodes give exactly 100 each, in list order.
        """
        balancer, clock = build("round-robin")
        nodes = makeNodes(5)
        balancer.update(nodes)
        first = [balancer.pick() for _ in range(10)]
        self.assertEqual(first, nodes * 2)
        for node in first:
            balancer.release(node, 0.01)
        counts = cycle(balancer, clock, 490)
        counts.update(node.name for node in first)
        self.assertEqual(counts, Counter({node.name: 100 for node in nodes}))

    def test_heldRequestsExactlyEven(self):
        """
        Round robin ignores load: 50 held requests over 5 nodes are 10 each.
        """
        balancer, clock = build("round-robin")
        nodes = makeNodes(5)
        balancer.update(nodes)
        hold(balancer, clock, 50)
        self.assertEqual([node.pending for node in nodes], [10] * 5)

    def test_downNodesSkipped(self):
        """
        Busy and closed nodes are skipped; the open ones alternate exactly.
        """
        balancer, clock = build("round-robin")
        nodes = makeNodes(4)
        nodes[1].status = BUSY
        nodes[2].status = CLOSED
        balancer.update(nodes)
        self.assertEqual([balancer.pick() for _ in range(6)], [nodes[0], nodes[3]] * 3)
        counts = cycle(balancer, clock, 100)
        self.assertEqual(counts, Counter({nodes[0].name: 50, nodes[3].name: 50}))

    def test_recoveredNodeBackInTurn(self):
        """
        A node opened again takes its turn again.
        """
        balancer, clock = build("round-robin")
        nodes = makeNodes(3)
        nodes[1].status = CLOSED
        balancer.update(nodes)
        self.assertEqual([balancer.pick() for _ in range(4)], [nodes[0], nodes[2]] * 2)
        nodes[1].status = OPEN
        self.assertEqual([balancer.pick() for _ in range(6)], nodes * 2)

    def test_allDownRotates(self):
        """
        With no node open, the nodes are still used in turn.
        """
        balancer, clock = build("round-robin")
        nodes = makeNodes(3)
        for node in nodes:
            node.status = CLOSED
        balancer.update(nodes)
        self.assertEqual([balancer.pick() for _ in range(6)], nodes * 2)

    def test_updateToFewerNodes(self):
        """
        After shrinking the node set the rotation continues over the new set
        only, evenly.
        """
        balancer, clock = build("round-robin")
        nodes = makeNodes(5)
        balancer.update(nodes)
        for _ in range(4):
            balancer.release(balancer.pick(), 0.01)
        new = makeNodes(2, "new")
        balancer.update(new)
        counts = cycle(balancer, clock, 10)
        self.assertEqual(counts, Counter({"new0": 5, "new1": 5}))


class PluginTests(SynchronousTestCase):
    """
    Balancers are plugins found by name.
    """

    def test_everyNameBuilds(self):
        """
        Each name builds a fresh balancer of the algorithm it names.
        """
        expected = {
            "p2c": "P2CBalancer",
            "p2c-peak-ewma": "P2CPeakEwmaBalancer",
            "aperture": "ApertureBalancer",
            "aperture-scales": "ApertureBalancer",
            "heap": "HeapBalancer",
            "round-robin": "RoundRobinBalancer",
        }
        for name in NAMES:
            factory = balancerFactory(name)
            self.assertTrue(verifyObject(IBalancerFactory, factory))
            self.assertEqual(factory.name, name)
            self.assertTrue(factory.description)
            one = factory.build(Clock(), random.Random(1))
            two = factory.build(Clock(), random.Random(1))
            self.assertIsNot(one, two)
            self.assertEqual(type(one).__name__, expected[name])
            self.assertTrue(IBalancer.providedBy(one))

    def test_namesListed(self):
        """
        The six balancers are among the plugins providing L{IBalancerFactory}.
        """
        names = [plugin.name for plugin in getPlugins(IBalancerFactory)]
        for name in NAMES:
            self.assertEqual(names.count(name), 1, names)

    def test_unknownName(self):
        """
        An unknown name raises L{UnknownPluginError} naming the known ones.
        """
        error = self.assertRaises(UnknownPluginError, balancerFactory, "least-surprise")
        message = str(error)
        self.assertIn("least-surprise", message)
        for name in NAMES:
            self.assertIn(name, message)
        self.assertIsInstance(error, LookupError)

    def test_apertureScalesBand(self):
        """
        aperture-scales uses Scales' band: 3 requests held over an aperture of
        2 (1.5 per node) widen Finagle's aperture (>= 1.125) but not Scales'
        (< 2.0); at 2 per node both widen.
        """
        results = {}
        for name in ("aperture", "aperture-scales"):
            balancer, clock = build(name)
            balancer.update(makeNodes(6))
            apertures = []
            for _ in range(3):
                hold(balancer, clock, 1)
                apertures.append(balancer.aperture)
            results[name] = apertures
        self.assertEqual(results, {"aperture": [1, 2, 3], "aperture-scales": [1, 2, 2]})

    def test_apertureScalesSmoothingWindow(self):
        """
        aperture-scales smooths over 5 s: with 1 request sampled at t=0 and 7
        outstanding at t=1, the EMA is 7 - 6 exp(-1/5) ~ 2.09 >= 2.0 and the
        aperture widens, where a 15 s window gives 7 - 6 exp(-1/15) ~ 1.39.
        """
        self.assertGreaterEqual(7 - 6 * math.exp(-1 / 5.0), 2.0)
        self.assertLess(7 - 6 * math.exp(-1 / 15.0), 2.0)
        band = {"lowLoad": 0.5, "highLoad": 2.0}
        cases = [
            ("aperture-scales", {}, 2),
            ("aperture", dict(band, smoothWindow=5.0), 2),
            ("aperture", band, 1),
        ]
        for name, options, expected in cases:
            balancer, clock = build(name, **options)
            balancer.update(makeNodes(4))
            # At one instant only the first sample counts: the EMA stays 1.
            for _ in range(6):
                balancer.pick()
            self.assertEqual(balancer.aperture, 1)
            clock.advance(1.0)
            balancer.pick()
            self.assertEqual(balancer.aperture, expected, (name, options))
