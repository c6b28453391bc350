"""
Where a producer finds its first brokers: a static C{tcp://} list, or the
members of a destination resolved by a discovery plugin (a C{zk://}
serverset, or an installed scheme's), followed as they change.
"""

from typing import Any, Dict, List, Optional, Sequence

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from txscales.discovery import resolveDestination
from txscales.interfaces import IDestination
from txscales.kafka._cluster import Address, Cluster, _chain, parseBootstrap


def clusterFor(dest: str, reactor: Any, clientId: Optional[str], requestTimeout: float, connectTimeout: float,
               metadataMaxAge: float, maxFrameSize: int, discoveryTimeout: float) -> Cluster:
    """
    @param dest: C{tcp://host:port[,host:port...]} (or the list without
        its scheme), or a URI of a discovery scheme whose members are
        brokers.
    @param discoveryTimeout: seconds the discovery source may take to
        answer first.
    @return: the L{Cluster} bootstrapped from C{dest}.
    @raise txscales.errors.BadDestinationError: for a malformed C{dest}.
    @raise txscales.errors.UnknownPluginError: when no discovery plugin
        handles its scheme.
    """
    settings = (clientId, requestTimeout, connectTimeout, metadataMaxAge, maxFrameSize)
    if "://" not in dest or dest.startswith("tcp://"):
        return Cluster(reactor, parseBootstrap(dest), *settings)
    destination = resolveDestination(dest, reactor, connectTimeout=discoveryTimeout)
    return DiscoveredCluster(destination, reactor, *settings)


class DiscoveredCluster(Cluster):
    """
    A cluster whose bootstrap brokers are the members of an
    L{IDestination}: a refresh before its first member set waits for it,
    and each change replaces the bootstrap list.
    """

    def __init__(self, destination: IDestination, reactor: Any, clientId: Optional[str], requestTimeout: float,
                 connectTimeout: float, metadataMaxAge: float, maxFrameSize: int, connect: Any = None) -> None:
        Cluster.__init__(self, reactor, [], clientId, requestTimeout, connectTimeout, metadataMaxAge, maxFrameSize,
                         connect)
        self._destination = destination
        self._discoveryFailure: Optional[Failure] = None
        self._discoveryWaiters: List["Deferred[None]"] = []
        self._closing: Optional["Deferred[None]"] = None
        destination.ready.addCallbacks(self._discovered, self._notDiscovered)
        self._stopWatching = destination.watch(self.setBootstrap)

    def describeDiscovery(self) -> Dict[str, Any]:
        """
        @return: the destination's own description (its members), for the
            admin page.
        """
        describe = getattr(self._destination, "describe", None)
        return describe() if describe is not None else Cluster.describeDiscovery(self)

    def _discovered(self, addresses: Sequence[Address]) -> None:
        # Before the watchers hear of them: the waiters ask them now.
        self.setBootstrap(addresses)
        waiters, self._discoveryWaiters = self._discoveryWaiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _notDiscovered(self, failure: Failure) -> None:
        self._discoveryFailure = failure
        waiters, self._discoveryWaiters = self._discoveryWaiters, []
        for waiter in waiters:
            waiter.errback(failure)

    def refresh(self) -> "Deferred[None]":
        """
        Fetch the metadata, once discovery named the first brokers.

        @return: a Deferred as L{Cluster.refresh}'s, or failing with the
            discovery's L{txscales.errors.DiscoveryError} when it could
            not start (a later refresh tries again).
        """
        if self._destination.addresses is not None:
            return Cluster.refresh(self)
        if self._discoveryFailure is not None:
            return fail(self._discoveryFailure)
        waiter: "Deferred[None]" = Deferred()
        self._discoveryWaiters.append(waiter)
        return waiter.addCallback(lambda _: Cluster.refresh(self))

    def close(self) -> "Deferred[None]":
        """
        Close every connection, and stop following the destination.

        @return: a Deferred firing once both are done.
        """
        Cluster.close(self)
        if self._closing is None:
            self._stopWatching()
            self._closing = self._destination.close().addCallback(lambda _: None)
        return _chain(self._closing)
