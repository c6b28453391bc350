"""
Mux client plumbing: the request type and the singleton pool, one shared
multiplexed session per endpoint.
"""

from random import Random
from typing import Any, Callable, List, Optional, Union, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater
from zope.interface import implementer

from txscales._backoff import ReconnectBackoff
from txscales._connection import tcpEndpoint
from txscales.errors import ConnectError, TxScalesError
from txscales.interfaces import BUSY, CLOSED, OPEN, IEndpoint
from txscales.mux._messages import RETRIES_KEY
from txscales.mux.protocol import MuxClientProtocol


class MuxRequest:
    """
    One Mux request on its way down the client stack.

    @ivar body: the payload.
    @ivar contexts: list of (key, value) broadcast contexts.
    @ivar timeout: seconds before the call is discarded, or None.
    @ivar decode: a callable turning the reply (a
        L{txscales.mux._clientsession.Replied}) into the call's result once
        the stack has accounted for it, or None to return the reply.
    """

    __slots__ = ("body", "contexts", "dst", "dtab", "timeout", "decode")

    def __init__(self, body, contexts=(), dst: Union[bytes, str] = b"", dtab=(), timeout=None, decode=None) -> None:
        self.body = body
        self.contexts = contexts
        self.dst = dst
        self.dtab = dtab
        self.timeout = timeout
        self.decode = decode

    def retried(self, retries):
        """
        @return: a copy for requeue number C{retries}, its Retries context
            counting it.
        """
        value = retries.to_bytes(4, "big")
        contexts = [(k, value if k == RETRIES_KEY else v) for k, v in self.contexts]
        return MuxRequest(self.body, contexts, self.dst, self.dtab, self.timeout, self.decode)


@implementer(IEndpoint)
class MuxEndpoint:
    """
    The singleton pool of one server: a single Mux session shared by all
    calls, connected on first use and again after it closes.  Calling it
    with a L{MuxRequest} dispatches the request.

    A session that ends, not drained, before it lived C{healthyAfter}
    seconds delays the next connection by an exponential jittered backoff
    (C{reconnectBackoff}: start and maximum seconds); the endpoint is busy
    meanwhile.  A session living C{healthyAfter} seconds resets it.

    @ivar host: the server's host.
    @ivar port: the server's port.
    @ivar protocol: the connected L{MuxClientProtocol}, or None.
    @ivar connects: how many connections were made.
    @ivar drains: how many sessions the server drained.
    """

    def __init__(
        self,
        reactor,
        host,
        port,
        protocolOptions=None,
        connectTimeout=5.0,
        endpointFactory=None,
        onConnect=None,
        random=None,
        reconnectBackoff=(1.0, 32.0),
        healthyAfter=5.0,
    ):
        self._reactor = reactor
        # (reactor, host, port, timeout) -> an IStreamClientEndpoint.
        self._endpointFactory: Callable[[Any, str, int, float], Any] = endpointFactory or tcpEndpoint
        self.host = host
        self.port = port
        self._options = protocolOptions or {}
        self._reconnect = ReconnectBackoff(reactor, random or Random(), reconnectBackoff, healthyAfter)
        self._connectTimeout = connectTimeout
        self._onConnect = onConnect
        self._connecting: Optional[Deferred[MuxClientProtocol]] = None
        self._waiters: List[Deferred[MuxClientProtocol]] = []
        self._closed = False
        self._drainCounted = False
        self.protocol: Optional[MuxClientProtocol] = None
        self.connects = 0
        self.drains = 0

    def __repr__(self) -> str:
        return "%s:%d" % (self.host, self.port)

    @property
    def status(self):
        """
        C{"open"} when connected and taking calls (or not yet tried);
        C{"busy"} while connecting, draining or leased out; C{"closed"} once
        closed.
        """
        if self._closed:
            return CLOSED
        p = self.protocol
        if p is not None:
            status = p.status
            return OPEN if status == CLOSED else status
        return BUSY if self._connecting is not None or self._reconnect.delay() > 0 else OPEN

    def __call__(self, request):
        p = self.protocol
        # An open session takes calls, and so does a busy one whose ping or
        # lease is late (when the balancer picks it all the same): that is
        # acceptsCalls, which reads less than status does.
        if p is not None and p.acceptsCalls:
            return p.dispatch(request.body, request.contexts, request.dst, request.dtab)
        return self.getProtocol().addCallback(
            lambda p: p.dispatch(request.body, request.contexts, request.dst, request.dtab)
        )

    def getProtocol(self):
        """
        @return: a Deferred firing with an open L{MuxClientProtocol},
            connecting if needed.  Cancelling it abandons only this wait.
        """
        p = self.protocol
        if p is not None and p.acceptsCalls:
            return succeed(p)
        waiter: Deferred[MuxClientProtocol] = Deferred(lambda d: self._waiters.remove(d))
        self._waiters.append(waiter)
        if self._connecting is None and (p is None or p.status == CLOSED or p.drainRequested):
            self._connect()
        return waiter

    def _connect(self) -> None:
        delay = self._reconnect.delay()
        if delay > 0:
            # deferLater's Deferred waits for the one _open returns.
            self._connecting = cast("Deferred[MuxClientProtocol]", deferLater(self._reactor, delay, self._open))
        else:
            self._connecting = self._open()
        self._connecting.addCallbacks(self._connected, self._connectFailed)

    def _open(self) -> "Deferred[MuxClientProtocol]":
        endpoint = self._endpointFactory(self._reactor, self.host, self.port, self._connectTimeout)
        factory = Factory.forProtocol(lambda: MuxClientProtocol(self._reactor, **self._options))
        factory.noisy = False
        return endpoint.connect(factory).addCallback(lambda p: p.ready)

    def _connected(self, p: MuxClientProtocol) -> None:
        self._connecting = None
        self.connects += 1
        self.protocol = p
        self._drainCounted = False
        self._reconnect.connected()
        p.statusObservers.append(self._statusChanged)
        # It may have closed already.
        self._statusChanged(p)
        if self._onConnect is not None:
            self._onConnect(self)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(p)

    def _statusChanged(self, p: MuxClientProtocol) -> None:
        if p is not self.protocol:
            return
        if p.status == CLOSED:
            self.protocol = None
            if not p.drainRequested:
                self._reconnect.lost()
        elif p.drainRequested and not self._drainCounted:
            self._drainCounted = True
            self.drains += 1

    def _connectFailed(self, failure) -> None:
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
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        p = self.protocol
        if p is None:
            return succeed(None)
        return p.close()
