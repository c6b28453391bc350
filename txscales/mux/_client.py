"""
Mux client plumbing: one multiplexed session per endpoint, and a client
that spreads calls over the endpoints of a destination, with per-call
timeouts that discard the call (Tdiscarded) and never close the session.
"""

from twisted.internet.defer import CancelledError, Deferred, DeferredList, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from txscales.errors import (
    ClientClosedError,
    ConnectError,
    NoEndpointsError,
    RequestTimeoutError,
    TxScalesError,
)
from txscales.mux.protocol import BUSY, CLOSED, OPEN, DiscardedCall, MuxClientProtocol

_log = Logger()


class MuxEndpoint:
    """
    One server of a destination and its (single, shared) Mux session.

    @ivar host: the server's host.
    @ivar port: the server's port.
    @ivar protocol: the connected L{MuxClientProtocol}, or None.
    @ivar connects: how many connections were made.
    """

    # endpointFactory(reactor, host, port, timeout) -> IStreamClientEndpoint
    # replaces TCP, for example with in-memory connections in tests.

    def __init__(self, reactor, host, port, protocolOptions=None, connectTimeout=5.0, endpointFactory=None):
        self._reactor = reactor
        self._endpointFactory = endpointFactory or _tcpEndpoint
        self.host = host
        self.port = port
        self._options = protocolOptions or {}
        self._connectTimeout = connectTimeout
        self._connecting = None
        self._waiters = []
        self.protocol = None
        self.connects = 0

    @property
    def status(self):
        """
        C{"open"} when connected and taking calls (or never tried);
        C{"busy"} while connecting or draining; C{"closed"} otherwise.
        """
        if self.protocol is not None:
            return self.protocol.status
        if self._connecting is not None:
            return BUSY
        return OPEN

    def getProtocol(self):
        """
        @return: a Deferred firing with an open L{MuxClientProtocol},
            connecting if needed.  Cancelling it abandons only this wait.
        """
        p = self.protocol
        if p is not None and p.status == OPEN:
            return succeed(p)
        waiter = Deferred(lambda d: self._waiters.remove(d))
        self._waiters.append(waiter)
        if self._connecting is None and (p is None or p.status == CLOSED or p.drainRequested):
            self._connect()
        return waiter

    def _connect(self):
        endpoint = self._endpointFactory(self._reactor, self.host, self.port, self._connectTimeout)
        factory = Factory.forProtocol(lambda: MuxClientProtocol(self._reactor, **self._options))
        factory.noisy = False
        self._connecting = endpoint.connect(factory)
        self._connecting.addCallback(lambda p: p.ready)
        self._connecting.addCallbacks(self._connected, self._connectFailed)

    def _connected(self, p):
        self._connecting = None
        self.connects += 1
        self.protocol = p
        p.closed.addCallback(self._lost, p)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(p)

    def _lost(self, reason, p):
        if self.protocol is p:
            self.protocol = None

    def _connectFailed(self, failure):
        self._connecting = None
        error = failure.value
        if not isinstance(error, TxScalesError):
            error = ConnectError("cannot connect to %s:%d: %s" % (self.host, self.port, error))
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(error)

    def close(self):
        """
        Close the session.

        @return: a Deferred firing when it is closed.
        """
        if self._connecting is not None:
            self._connecting.cancel()
        p = self.protocol
        if p is None:
            return succeed(None)
        return p.close()


def _tcpEndpoint(reactor, host, port, timeout):
    return HostnameEndpoint(reactor, host, port, timeout=timeout)


class MuxClient:
    """
    Send Mux requests to a set of endpoints, round robin over the ones that
    are open.

    @ivar endpoints: the L{MuxEndpoint}s.
    """

    def __init__(self, reactor, endpoints):
        self._reactor = reactor
        self.endpoints = list(endpoints)
        self._next = 0
        self._closed = False

    def _pick(self):
        endpoints = self.endpoints
        n = len(endpoints)
        for i in range(n):
            endpoint = endpoints[(self._next + i) % n]
            if endpoint.status == OPEN:
                self._next = (self._next + i + 1) % n
                return endpoint
        endpoint = endpoints[self._next % n]
        self._next = (self._next + 1) % n
        return endpoint

    def dispatch(self, body, contexts=(), dst=b"", dtab=(), timeout=None):
        """
        Send one request.

        @param timeout: seconds before the call is discarded and fails with
            L{RequestTimeoutError}, or None.
        @return: a Deferred firing with the reply (C{.body},
            C{.contexts}); cancelling it discards the call.
        """
        if self._closed:
            return fail(ClientClosedError("the client is closed"))
        if not self.endpoints:
            return fail(NoEndpointsError("the destination has no endpoints"))
        endpoint = self._pick()
        p = endpoint.protocol
        if p is not None and p.status == OPEN:
            d = p.dispatch(body, contexts, dst, dtab)
        else:
            d = endpoint.getProtocol()
            d.addCallback(lambda p: p.dispatch(body, contexts, dst, dtab))
        if timeout is None:
            return d
        timer = self._reactor.callLater(timeout, d.cancel)
        return d.addBoth(_timedOut, timer, timeout)

    def close(self):
        """
        Close every session.

        @return: a Deferred firing when all are closed.
        """
        self._closed = True
        return DeferredList([e.close() for e in self.endpoints], consumeErrors=True)


def _timedOut(result, timer, timeout):
    if timer.active():
        timer.cancel()
        return result
    if getattr(result, "check", None) is not None and result.check(CancelledError):
        raise RequestTimeoutError(timeout, written=isinstance(result.value, DiscardedCall) and result.value.written)
    return result
