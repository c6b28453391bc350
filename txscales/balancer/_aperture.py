"""
Random aperture, as Finagle: P2C within a subset of the nodes whose size
follows the load.
"""

from typing import Any, List

from zope.interface import implementer

from txscales._moving import Ema
from txscales.balancer._p2c import DEFAULT_MAX_EFFORT, P2CBalancer
from txscales.interfaces import OPEN, STATUS_RANK, IBalancer


@implementer(IBalancer)
class ApertureBalancer(P2CBalancer):
    """
    Nodes are ordered by their random token; requests go (by P2C least
    loaded) to the first C{aperture} open ones.  The aperture widens by one
    when the smoothed outstanding load per node in it reaches C{highLoad}
    and narrows by one at C{lowLoad}, within C{[minAperture, nodes]}.

    Finagle's defaults are C{lowLoad=0.875, highLoad=1.125,
    smoothWindow=15}; Scales' aperture used C{0.5, 2.0, 5}
    (C{scales=True}).

    @ivar aperture: the current logical aperture size.
    """

    def __init__(
        self,
        clock,
        random,
        maxEffort=DEFAULT_MAX_EFFORT,
        minAperture=1,
        lowLoad=0.875,
        highLoad=1.125,
        smoothWindow=15.0,
        scales: bool = False,
    ) -> None:
        P2CBalancer.__init__(self, clock, random, maxEffort)
        if scales:
            lowLoad, highLoad, smoothWindow = 0.5, 2.0, 5.0
        if not 0 < lowLoad < highLoad:
            raise ValueError("need 0 < lowLoad < highLoad")
        self._minAperture = max(1, minAperture)
        self._lowLoad = lowLoad
        self._highLoad = highLoad
        self._ema = Ema(smoothWindow, clock.seconds)
        self._outstanding = 0
        self._window: List[Any] = []
        self._down: List[Any] = []
        self.aperture = self._minAperture

    def update(self, nodes) -> None:
        self.nodes = sorted(nodes, key=lambda node: node.token)
        self.aperture = max(self._minAperture, min(self.aperture, len(self.nodes)))
        self._window = []
        self._down = []

    def _adjust(self) -> None:
        average = self._ema.update(self._outstanding)
        n = len(self.nodes)
        load = average / self.aperture
        if load >= self._highLoad and self.aperture < n:
            self.aperture += 1
            self._window = []
        elif load <= self._lowLoad and self.aperture > self._minAperture:
            self.aperture -= 1
            self._window = []

    def _currentWindow(self):
        window = self._window
        if (
            len(window) == min(self.aperture, len(self.nodes))
            and all(n.status == OPEN for n in window)
            and not any(n.status == OPEN for n in self._down)
        ):
            return window
        # Rebuild: best status first (open, busy, closed), in token order
        # within a status (a stable sort); rebuild again when a node that was
        # down is open again, so that it takes back its place.
        ordered = sorted(self.nodes, key=lambda node: -STATUS_RANK[node.status])
        self._window = window = ordered[: self.aperture]
        self._down = [n for n in self.nodes if n.status != OPEN]
        return window

    def _pickOnce(self):
        return self._pickFrom(self._currentWindow())

    def pick(self):
        self._outstanding += 1
        self._adjust()
        try:
            return P2CBalancer.pick(self)
        except Exception:
            self._outstanding -= 1
            raise

    def release(self, node, latency) -> None:
        P2CBalancer.release(self, node, latency)
        self._outstanding -= 1
        self._adjust()
