"""
The client stack: from a request to one endpoint's session, in one place.
"""

from random import Random
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Literal, Optional, Tuple, Union

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from txscales._plugins import balancerFactory
from txscales._registry import REGISTRY
from txscales.errors import ClientClosedError, DiscoveryError
from txscales.interfaces import IDestination, IEndpoint
from txscales.stack._accrual import FailFast, FailureAccrual
from txscales.stack._dispatcher import Dispatcher
from txscales.stack._node import EndpointNode
from txscales.stack._retrybudget import NoRetryBudget, RetryBudget
from txscales.stack._timeout import TimeoutFilter

if TYPE_CHECKING:
    from txscales.stats import ClientStats


class ClientStack:
    """
    A destination's endpoints behind one service.  Calling it with a
    request sends the request through these layers, top to bottom:

      1. L{TimeoutFilter}: outermost, so the caller's timeout bounds the
         whole call, requeues included, and its expiry cancels whichever
         attempt is in flight (Mux sends Tdiscarded for it).
      2. Stats: count calls and latency as the caller sees them, once per
         call whatever the requeues.
      3. The destination gate: until discovery has produced the first set
         of servers, calls wait (bounded by their timeout, above); if
         discovery cannot start, they fail with
         L{txscales.errors.DiscoveryError}.
      4. Requeues: send again what never reached a server, within the
         retry budget; above the balancer, so each requeue is a fresh pick
         that avoids the node that refused it.
      5. The balancer: pick a node and keep the load accounting the
         balancers read.
      6. L{EndpointNode}, per endpoint: fail-fast (a node that cannot be
         connected to is closed and reconnects in the background) and
         failure accrual (a node failing or timing out requests is marked
         busy for a backoff, then probed; a node connected again after
         fail-fast is probed at once), around the endpoint's session pool.

    A request has a C{timeout} (seconds or None), a C{decode} (a callable
    making the call's result from the answer, or None) and a
    C{retried(n)} method returning the request to send as requeue C{n}.

    Layers 2 and 4 to 6 are one L{Dispatcher}, which does their work on one
    callback per attempt; the gate sits in front of it while discovery has
    not answered.

    @param destination: an L{txscales.interfaces.IDestination}; its
        changes update the nodes.
    @param makeEndpoint: C{makeEndpoint(host, port)} returns the
        L{txscales.interfaces.IEndpoint} of a new server.
    @ivar nodes: the L{EndpointNode}s.
    @ivar balancer: the L{txscales.interfaces.IBalancer}.
    @ivar budget: the L{RetryBudget} shared by requeues and retry policy.
    @ivar dispatcher: the L{Dispatcher} (its C{requeues} and
        C{budgetExhausted} count requeues).
    @ivar label: the client's name in metrics, or None.
    @ivar dest: the destination URI the client was built with, or None.
    @ivar protocol: the client's protocol (C{thriftmux}, C{thrift},
        C{http}), or None.
    """

    label: Optional[str] = None
    dest: Optional[str] = None
    protocol: Optional[str] = None

    def __init__(
        self,
        clock: IReactorTime,
        random: Random,
        destination: IDestination,
        makeEndpoint: Callable[[str, int], IEndpoint],
        balancer: str = "p2c",
        balancerOptions: Optional[Dict[str, Any]] = None,
        retryBudget: Union[RetryBudget, NoRetryBudget, None] = None,
        maxRequeues: int = 25,
        retryPolicy: Optional[Callable[[Failure, int], bool]] = None,
        failureAccrual: Union[Dict[str, Any], Literal[False], None] = None,
        failFast: Optional[Dict[str, float]] = None,
        stats: "Optional[ClientStats]" = None,
    ) -> None:
        self._clock = clock
        self._random = random
        self._accrualOptions = {} if failureAccrual is None else failureAccrual
        self._failFastOptions = failFast or {}
        self._closed = False
        self._makeEndpoint = makeEndpoint
        self._resolved = False
        self._discoveryFailure: Optional[BaseException] = None
        self._waiters: List[Deferred] = []
        self.balancerName = balancer
        self.balancer = balancerFactory(balancer).build(clock, random, **(balancerOptions or {}))
        self.budget = retryBudget if retryBudget is not None else RetryBudget(clock.seconds)
        self.nodes: List[EndpointNode] = []
        self.dispatcher = Dispatcher(self.balancer, clock, self.budget, maxRequeues, retryPolicy, stats)
        if stats is not None:
            stats.watch(self)
        self._timeout = TimeoutFilter(self._gate, clock)
        self.destination = destination
        destination.ready.addErrback(self._discoveryFailed)
        self._unwatch = destination.watch(self._addressesChanged)

    def _addressesChanged(self, addresses: List[Tuple[str, int]]) -> None:
        current = {(n.endpoint.host, n.endpoint.port): n.endpoint for n in self.nodes}
        self.update([current.get(a) or self._makeEndpoint(*a) for a in addresses])
        self._resolved = True
        self._discoveryFailure = None
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _discoveryFailed(self, failure: Failure) -> None:
        if not self._resolved:
            self._discoveryFailure = failure.value
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.errback(failure.value)

    def _gate(self, request: Any) -> "Deferred[Any]":
        if self._resolved:
            return self.dispatcher(request)
        if self._discoveryFailure is not None:
            return self.dispatcher.after(fail(self._discoveryFailure), request)
        waiter: Deferred[None] = Deferred(lambda d: self._waiters.remove(d))
        self._waiters.append(waiter)
        return self.dispatcher.after(waiter, request)

    def whenReady(self) -> "Deferred[ClientStack]":
        """
        @return: a Deferred firing when the destination has given its first
            set of servers, or failing with L{DiscoveryError}.
        """
        if self._resolved:
            return succeed(self)
        if self._discoveryFailure is not None:
            return fail(self._discoveryFailure)
        waiter: Deferred[None] = Deferred(lambda d: self._waiters.remove(d))
        self._waiters.append(waiter)
        return waiter.addCallback(lambda _: self)

    def _node(self, endpoint: IEndpoint) -> EndpointNode:
        accrual = None
        if self._accrualOptions is not False:
            accrual = FailureAccrual(self._clock, self._random, **self._accrualOptions)
        onUp = accrual.reconnected if accrual is not None else None
        failFast = FailFast(self._clock, self._random, endpoint.getProtocol, onUp=onUp, **self._failFastOptions)
        return EndpointNode(endpoint, accrual, failFast, self._random.random())

    def update(self, endpoints: Iterable[IEndpoint]) -> None:
        """
        Replace the endpoints; nodes of endpoints that remain are kept, and
        requests in flight on removed ones finish before they close.

        @param endpoints: session pools (each with C{host} and C{port}).
        """
        current = {(n.endpoint.host, n.endpoint.port): n for n in self.nodes}
        nodes = []
        for endpoint in endpoints:
            node = current.pop((endpoint.host, endpoint.port), None)
            nodes.append(node if node is not None else self._node(endpoint))
        self.nodes = nodes
        self.balancer.update(nodes)
        for node in current.values():
            node.retire()

    def __call__(self, request: Any) -> Deferred:
        if self._closed:
            return fail(ClientClosedError("the client is closed"))
        try:
            if request.timeout is not None:
                return self._timeout(request)
            if self._resolved:
                return self.dispatcher(request)
            return self._gate(request)
        except Exception as e:
            return fail(e)

    def describe(self) -> Dict[str, Any]:
        """
        @return: the client for the admin page, as plain data: its
            C{label}, C{destination}, C{protocol}, C{balancer} (its name,
            and its C{aperture} and C{panicked} count where it has them),
            C{retryBudget} balance, whether discovery has answered
            (C{resolved}), its C{endpoints} (L{EndpointNode.describe}) and
            its destination's own description (C{discovery}: its members),
            or None when the destination has no C{describe()}.
        """
        balancer: Dict[str, Any] = {"name": self.balancerName}
        for name in ("aperture", "panicked"):
            value = getattr(self.balancer, name, None)
            if isinstance(value, int):
                balancer[name] = value
        describeDestination = getattr(self.destination, "describe", None)
        return {
            "label": self.label,
            "destination": self.dest,
            "protocol": self.protocol,
            "balancer": balancer,
            "retryBudget": {"balance": self.budget.balance()},
            "resolved": self._resolved,
            "closed": self._closed,
            "endpoints": [node.describe() for node in self.nodes],
            "discovery": describeDestination() if describeDestination is not None else None,
        }

    def close(self) -> Deferred:
        """
        Close every endpoint; later calls fail with L{ClientClosedError}.
        The client leaves the admin page's list.

        @return: a Deferred firing when all are closed.
        """
        self._closed = True
        REGISTRY.removeClient(self)
        self._unwatch()
        if not self._resolved and self._discoveryFailure is None:
            self._discoveryFailed(_closedFailure())
        closing = [node.close() for node in self.nodes] + [self.destination.close()]
        return DeferredList(closing, consumeErrors=True)


def _closedFailure() -> Failure:
    return Failure(DiscoveryError("the client was closed before discovery finished"))
