"""
Tests for the aperture balancers (load band and scales' fixed aperture), built through its plugin with a fake clock
and a seeded random source (see L{tests._balancing}).

Expectations are derived from the algorithms as MUX.md 3.2 describes them,
not from running the code.
"""

from collections import Counter

from twisted.trial.unittest import SynchronousTestCase

from txscales.interfaces import BUSY, CLOSED, OPEN

from ._balancing import LONG, build, byToken, cycle, hold, makeNodes, spread


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
