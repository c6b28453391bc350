"""
The builder every protocol's client shares; each protocol adds its own
setters.
"""

from __future__ import annotations

from random import Random
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, TypeVar, Union

from twisted.python.failure import Failure

from txscales.errors import BadDestinationError
from txscales.stack._retrybudget import NoRetryBudget, RetryBudget

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from twisted.internet.interfaces import IOpenSSLClientConnectionCreator

_Builder = TypeVar("_Builder", bound="ClientBuilder")


class ClientBuilder:
    """
    Build a client step by step; each setter returns the builder, and
    L{build} makes the client.

    @cvar buildClient: C{buildClient(iface, dest, **options)} of the
        protocol.
    """

    buildClient: Callable[..., Any]

    def __init__(self, iface: type) -> None:
        self._iface = iface
        self._dest: Optional[str] = None
        self._options: Dict[str, Any] = {}

    def dest(self: _Builder, dest: str) -> _Builder:
        """
        Set the destination URI (C{tcp://host:port[,host:port...]},
        C{tls://host:port[,host:port...]}, C{zk://...}, or another
        discovery scheme).
        """
        self._dest = dest
        return self

    def timeout(self: _Builder, seconds: Optional[float]) -> _Builder:
        """
        Set the default per-call timeout (None for none).
        """
        self._options["timeout"] = seconds
        return self

    def reactor(self: _Builder, reactor: Any) -> _Builder:
        """
        Use C{reactor} (and its clock) instead of the global reactor.
        """
        self._options["reactor"] = reactor
        return self

    def random(self: _Builder, random: Random) -> _Builder:
        """
        Use C{random} (a C{random.Random}) for balancing and trace ids.
        """
        self._options["random"] = random
        return self

    def tls(
        self: _Builder,
        tls: Union[bool, IOpenSSLClientConnectionCreator] = True,
        ca: Optional[str] = None,
        clientCert: Optional[str] = None,
        clientKey: Optional[str] = None,
        hostname: Optional[str] = None,
    ) -> _Builder:
        """
        Reach the servers over TLS (as a C{tls://} destination does).

        @param tls: True, or an C{IOpenSSLClientConnectionCreator} used for
            every server (the other arguments then do not apply).
        @param ca: the path of the PEM CA certificate to trust (default:
            the platform's CAs).
        @param clientCert: the path of a PEM client certificate, for
            servers that require one; its key is C{clientKey} (default: in
            the same file).
        @param clientKey: the path of the PEM key of C{clientCert}.
        @param hostname: the name the servers' certificates must be valid
            for (default: each server's host).
        """
        self._options["tls"] = tls
        for name, value in (("tlsCa", ca), ("tlsClientCert", clientCert), ("tlsClientKey", clientKey), ("tlsHostname", hostname)):
            if value is not None:
                self._options[name] = value
        return self

    def connectTimeout(self: _Builder, seconds: float) -> _Builder:
        """
        Set how long a connection attempt may take.
        """
        self._options["connectTimeout"] = seconds
        return self

    def label(self: _Builder, label: str) -> _Builder:
        """
        Name the client in metrics (default: the service's module).
        """
        self._options["label"] = label
        return self

    def balancer(self: _Builder, name: str, **options: Any) -> _Builder:
        """
        Use the balancer plugin C{name} (C{p2c}, the default; C{p2c-peak-ewma},
        C{aperture}, C{aperture-scales}, C{heap}, C{round-robin}, or an
        installed plugin's), with its C{options}.
        """
        self._options["balancer"] = name
        self._options["balancerOptions"] = options
        return self

    def retryBudget(self: _Builder, budget: Union[RetryBudget, NoRetryBudget]) -> _Builder:
        """
        Bound requeues and policy retries by C{budget} (a
        L{txscales.stack.RetryBudget}; default: 20% of calls plus 10 per
        second over 10 seconds).
        """
        self._options["retryBudget"] = budget
        return self

    def retryPolicy(self: _Builder, policy: Callable[[Failure, int], bool], maxRetries: int = 25) -> _Builder:
        """
        Also retry failures that may have reached the server when
        C{policy(failure, attempt)} says so, within the retry budget.
        """
        self._options["retryPolicy"] = policy
        self._options["maxRequeues"] = maxRetries
        return self

    def failureAccrual(self: _Builder, enabled: bool = True, **options: Any) -> _Builder:
        """
        Configure failure accrual (C{consecutiveFailures}, C{successRate},
        C{window}, C{minRequests}, C{markDeadFor}, C{countTimeouts}), or
        turn it off.
        """
        self._options["failureAccrual"] = options if enabled else False
        return self

    def failFast(self: _Builder, start: float = 1.0, maximum: float = 32.0) -> _Builder:
        """
        Set the reconnection backoff of servers that refuse connections.
        """
        self._options["failFast"] = {"start": start, "maximum": maximum}
        return self

    def stats(self: _Builder, enabled: bool = True, registry: Optional[CollectorRegistry] = None) -> _Builder:
        """
        Count requests in prometheus metrics (on by default), in C{registry}
        (default: the global one).
        """
        self._options["stats"] = enabled
        self._options["registry"] = registry
        return self

    def build(self) -> Any:
        """
        @return: the client proxy.
        @raise BadDestinationError: without a valid destination.
        """
        if self._dest is None:
            raise BadDestinationError("no destination set: call .dest(uri) first")
        return type(self).buildClient(self._iface, self._dest, **self._options)
