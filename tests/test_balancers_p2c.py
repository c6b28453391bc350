"""
Tests for the power-of-two-choices balancers (least loaded and peak EWMA), built through its plugin with a fake clock
and a seeded random source (see L{tests._balancing}).

Expectations are derived from the algorithms as MUX.md 3.2 describes them,
not from running the code.
"""

from collections import Counter

from twisted.trial.unittest import SynchronousTestCase

from txscales.interfaces import BUSY, CLOSED

from ._balancing import build, cycle, makeNodes, spread


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
