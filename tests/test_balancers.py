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

from ._balancing import build, cycle, hold, makeNodes, spread

NAMES = ("p2c", "p2c-peak-ewma", "aperture", "aperture-scales", "heap", "round-robin")


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
