"""
How a protocol's client puts itself on the stack: from the client's
options to a L{ClientStack}, with its destination resolved by a discovery
plugin and its metrics.
"""

from txscales.stack._clientstack import ClientStack


STACK_OPTIONS = (
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
    dest,
    makeEndpoint,
    reactor,
    label,
    random=None,
    stats=True,
    registry=None,
    discoveryTimeout=10.0,
    **stackOptions
):
    """
    Build the stack of a protocol's client: resolve C{dest}, count in
    metrics under C{label}, make nodes with C{makeEndpoint(host, port,
    stats)}.

    @param stackOptions: the L{STACK_OPTIONS} settings.
    @return: a L{ClientStack}.
    """
    import random as _random

    from txscales.discovery import resolveDestination
    from txscales.stats import ClientStats

    clientStats = ClientStats(label, registry) if stats else None
    destination = resolveDestination(dest, reactor, connectTimeout=discoveryTimeout)
    return ClientStack(
        reactor,
        random if random is not None else _random.Random(),
        destination,
        lambda host, port: makeEndpoint(host, port, clientStats),
        stats=clientStats,
        **stackOptions
    )
