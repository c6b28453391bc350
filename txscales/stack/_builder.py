"""
The builder every protocol's client shares; each protocol adds its own
setters.
"""

from txscales.errors import BadDestinationError


class ClientBuilder:
    """
    Build a client step by step; each setter returns the builder, and
    L{build} makes the client.

    @cvar buildClient: C{buildClient(iface, dest, **options)} of the
        protocol.
    """

    buildClient = None

    def __init__(self, iface):
        self._iface = iface
        self._dest = None
        self._options = {}

    def dest(self, dest):
        """
        Set the destination URI (C{tcp://host:port[,host:port...]},
        C{tls://host:port[,host:port...]}, C{zk://...}, or another
        discovery scheme).
        """
        self._dest = dest
        return self

    def timeout(self, seconds):
        """
        Set the default per-call timeout (None for none).
        """
        self._options["timeout"] = seconds
        return self

    def reactor(self, reactor):
        """
        Use C{reactor} (and its clock) instead of the global reactor.
        """
        self._options["reactor"] = reactor
        return self

    def random(self, random):
        """
        Use C{random} (a C{random.Random}) for balancing and trace ids.
        """
        self._options["random"] = random
        return self

    def tls(self, tls=True, ca=None, clientCert=None, clientKey=None, hostname=None):
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

    def connectTimeout(self, seconds):
        """
        Set how long a connection attempt may take.
        """
        self._options["connectTimeout"] = seconds
        return self

    def label(self, label):
        """
        Name the client in metrics (default: the service's module).
        """
        self._options["label"] = label
        return self

    def balancer(self, name, **options):
        """
        Use the balancer plugin C{name} (C{p2c}, the default; C{p2c-peak-ewma},
        C{aperture}, C{aperture-scales}, C{heap}, C{round-robin}, or an
        installed plugin's), with its C{options}.
        """
        self._options["balancer"] = name
        self._options["balancerOptions"] = options
        return self

    def retryBudget(self, budget):
        """
        Bound requeues and policy retries by C{budget} (a
        L{txscales.stack.RetryBudget}; default: 20% of calls plus 10 per
        second over 10 seconds).
        """
        self._options["retryBudget"] = budget
        return self

    def retryPolicy(self, policy, maxRetries=25):
        """
        Also retry failures that may have reached the server when
        C{policy(failure, attempt)} says so, within the retry budget.
        """
        self._options["retryPolicy"] = policy
        self._options["maxRequeues"] = maxRetries
        return self

    def failureAccrual(self, enabled=True, **options):
        """
        Configure failure accrual (C{consecutiveFailures}, C{successRate},
        C{window}, C{minRequests}, C{markDeadFor}, C{countTimeouts}), or
        turn it off.
        """
        self._options["failureAccrual"] = options if enabled else False
        return self

    def failFast(self, start=1.0, maximum=32.0):
        """
        Set the reconnection backoff of servers that refuse connections.
        """
        self._options["failFast"] = {"start": start, "maximum": maximum}
        return self

    def stats(self, enabled=True, registry=None):
        """
        Count requests in prometheus metrics (on by default), in C{registry}
        (default: the global one).
        """
        self._options["stats"] = enabled
        self._options["registry"] = registry
        return self

    def build(self):
        """
        @return: the client proxy.
        @raise BadDestinationError: without a valid destination.
        """
        if self._dest is None:
            raise BadDestinationError("no destination set: call .dest(uri) first")
        return type(self).buildClient(self._iface, self._dest, **self._options)
