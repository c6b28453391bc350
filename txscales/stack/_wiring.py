"""
How a protocol's client puts itself on the stack: from the client's
options to a L{ClientStack}, with its destination resolved by a discovery
plugin and its metrics.
"""

from random import Random
from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple

from txscales._registry import REGISTRY
from txscales.interfaces import IEndpoint
from txscales.stack._clientstack import ClientStack

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from txscales.stats import ClientStats

STACK_OPTIONS: Tuple[str, ...] = (
    "balancer",
    "balancerOptions",
    "retryBudget",
    "maxRequeues",
    "retryPolicy",
    "failureAccrual",
    "failFast",
)
"""The settings of a client that belong to its L{ClientStack}."""


def buildStack(
    dest: str,
    makeEndpoint: "Callable[[str, int, Optional[ClientStats]], IEndpoint]",
    reactor: Any,
    label: str,
    random: Optional[Random] = None,
    stats: bool = True,
    registry: "Optional[CollectorRegistry]" = None,
    discoveryTimeout: float = 10.0,
    protocol: Optional[str] = None,
    **stackOptions: Any
) -> ClientStack:
    """
    Build the stack of a protocol's client: resolve C{dest}, count in
    metrics under C{label}, make nodes with C{makeEndpoint(host, port,
    stats)}, and list it among the process's clients (for the admin page)
    until it is closed.

    @param protocol: the client's protocol, as the admin page names it.
    @param stackOptions: the L{STACK_OPTIONS} settings.
    @return: a L{ClientStack}.
    """
    from txscales.discovery import resolveDestination
    from txscales.stats import ClientStats

    clientStats = ClientStats(label, registry) if stats else None
    destination = resolveDestination(dest, reactor, connectTimeout=discoveryTimeout)
    stack = ClientStack(
        reactor,
        random if random is not None else Random(),
        destination,
        lambda host, port: makeEndpoint(host, port, clientStats),
        stats=clientStats,
        **stackOptions
    )
    stack.label, stack.dest, stack.protocol = label, dest, protocol
    REGISTRY.addClient(stack)
    return stack
