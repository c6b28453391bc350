"""
txscales' load balancers as plugins; the real code is imported only when a
balancer is built.
"""

from importlib import import_module

from twisted.plugin import IPlugin
from zope.interface import implementer

from txscales.interfaces import IBalancerFactory


@implementer(IPlugin, IBalancerFactory)
class _Balancer:
    """
    A balancer plugin: builds the class named C{target} (imported then), with
    C{defaults} under the options the caller gives.
    """

    def __init__(self, name, target, description, **defaults):
        self.name = name
        self.description = description
        self._target = target
        self._defaults = defaults

    def build(self, clock, random, **options):
        module, _, name = self._target.rpartition(".")
        cls = getattr(import_module(module), name)
        return cls(clock, random, **dict(self._defaults, **options))


p2c = _Balancer("p2c", "txscales.balancer._p2c.P2CBalancer", "Power of two choices, least loaded (the default).")
p2cPeakEwma = _Balancer(
    "p2c-peak-ewma", "txscales.balancer._p2c.P2CPeakEwmaBalancer", "Power of two choices on peak EWMA latency."
)
aperture = _Balancer(
    "aperture", "txscales.balancer._aperture.ApertureBalancer", "Random aperture sized by load (Finagle)."
)
apertureScales = _Balancer(
    "aperture-scales",
    "txscales.balancer._aperture.ApertureBalancer",
    "Random aperture with Scales' load band (0.5-2.0, 5 s).",
    scales=True,
)
heap = _Balancer("heap", "txscales.balancer._heap.HeapBalancer", "Min-heap on outstanding requests.")
roundRobin = _Balancer("round-robin", "txscales.balancer._roundrobin.RoundRobinBalancer", "The next open node in turn.")
