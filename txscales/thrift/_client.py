"""
The plain Thrift client: framed or buffered, binary or compact, one call at
a time per connection, through the client stack.

A plain Thrift connection cannot multiplex, so each endpoint is a
L{txscales.pool.WatermarkPool} of connections.  A call whose connection may
still receive an answer it will not read (it timed out, was cancelled, or
the reply was malformed or mismatched) closes that connection, so no later
call can read that answer as its own.
"""

from twisted.internet.defer import CancelledError, Deferred, DeferredList, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from txscales._connection import DiscardedCall, noDelay
from txscales.errors import ConnectError, ConnectionLostError, ProtocolError
from txscales.interfaces import BUSY, CLOSED, OPEN, IEndpoint
from txscales.pool import WatermarkPool
from txscales.stack import STACK_OPTIONS, StackClient, buildStack
from txscales.thrift._codec import describeService
from txscales.thrift._framing import BINARY, DEFAULT_MAX_MESSAGE_SIZE, FRAMED
from txscales.thrift._proxy import proxyClass
from txscales.thrift._session import ClientSession, checkOptions, encodeArgs


DEFAULT_LOW = 64
"""Idle connections kept per endpoint for reuse (the low watermark)."""

DEFAULT_HIGH = 64
"""Connections per endpoint at most; further calls wait (the high watermark)."""


class ThriftRequest:
    """
    One plain Thrift call on its way down the client stack.

    @ivar method: the L{txscales.thrift._codec.Method} called.
    @ivar args: its encoded args struct (the connection adds the message
        header, which carries the connection's seqid).
    @ivar timeout: seconds before the call is abandoned, or None.
    @ivar decode: None: the stack returns the connection's answer as it is.
    """

    __slots__ = ("method", "args", "timeout")
    decode = None

    def __init__(self, method, args, timeout=None):
        self.method = method
        self.args = args
        self.timeout = timeout

    def retried(self, retries):
        """
        @return: the request to send again (plain Thrift has no retry
            counter on the wire: itself).
        """
        return self


class ThriftClientProtocol(Protocol):
    """
    One plain Thrift client connection; L{call} sends one call at a time.

    @ivar closed: fires with None once the connection is gone.
    """

    def __init__(self, transport=FRAMED, protocol=BINARY, maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE):
        self._session = ClientSession(transport, protocol, maxMessageSize)
        self._waiting = None
        self._lost = False
        self.closed = Deferred()

    @property
    def reusable(self):
        """
        Whether the connection is open, in step and free for another call.
        """
        return not self._lost and self._session.state == "open" and self._waiting is None

    def connectionMade(self):
        noDelay(self.transport)

    def call(self, method, args):
        """
        Send a call of C{method} with its encoded C{args} struct.

        @return: a Deferred firing with a L{txscales.thrift._session.Reply}
            (None for a one-way method, once written), or failing with a
            L{txscales.errors.TxScalesError}.  Cancelling it closes the
            connection and fails it with L{DiscardedCall}.
        """
        if not self.reusable:
            return fail(ConnectionLostError("the connection is not available", mayHaveReachedServer=False))
        data = self._session.call(method, args)
        if method.oneway:
            self.transport.write(data)
            return succeed(None)
        d = self._waiting = Deferred(self._discard)
        self.transport.write(data)
        return d

    def _discard(self, d):
        self._waiting = None
        self.close()
        d.errback(DiscardedCall(True))

    def dataReceived(self, data):
        try:
            replies = self._session.receiveData(data)
        except ProtocolError as e:
            self._fail(e)
            self.close()
            return
        for reply in replies:
            d, self._waiting = self._waiting, None
            d.callback(reply)

    def _fail(self, error):
        d, self._waiting = self._waiting, None
        if d is not None:
            d.errback(error)

    def connectionLost(self, reason):
        self._lost = True
        self._session.connectionLost()
        self._fail(ConnectionLostError(reason, mayHaveReachedServer=True))
        self.closed.callback(None)

    def close(self):
        """
        Close the connection.

        @return: L{closed}.
        """
        if not self._lost and self.transport is not None:
            self.transport.loseConnection()
        return self.closed


def _tcpEndpoint(reactor, host, port, timeout):
    return HostnameEndpoint(reactor, host, port, timeout=timeout)


@implementer(IEndpoint)
class ThriftEndpoint:
    """
    One server of a plain Thrift destination: a watermark pool of
    connections, each carrying one call at a time.  Calling it with a
    L{ThriftRequest} sends the call on a free connection.

    @ivar host: the server's host.
    @ivar port: the server's port.
    @ivar pool: the L{WatermarkPool} of L{ThriftClientProtocol}s.
    @ivar connects: how many connections were made.
    @ivar discards: how many connections were closed because a call on them
        was abandoned or failed.
    """

    def __init__(
        self,
        reactor,
        host,
        port,
        transport=FRAMED,
        protocol=BINARY,
        maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
        low=DEFAULT_LOW,
        high=DEFAULT_HIGH,
        maxWaiters=2**31,
        connectTimeout=5.0,
        endpointFactory=None,
        onConnect=None,
    ):
        checkOptions(transport, protocol)
        self._reactor = reactor
        self._endpointFactory = endpointFactory or _tcpEndpoint
        self._transport = transport
        self._protocol = protocol
        self._maxMessageSize = maxMessageSize
        self._connectTimeout = connectTimeout
        self._onConnect = onConnect
        self._connections = set()
        self._closed = False
        self.host = host
        self.port = port
        self.pool = WatermarkPool(self._connect, low, high, maxWaiters)
        self.connects = 0
        self.discards = 0

    def __repr__(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def status(self):
        """
        C{"open"} while calls can go out without waiting; C{"busy"} while
        every connection is in use and callers wait; C{"closed"} once
        closed.
        """
        if self._closed:
            return CLOSED
        return BUSY if self.pool.waiting else OPEN

    def _connect(self):
        endpoint = self._endpointFactory(self._reactor, self.host, self.port, self._connectTimeout)
        factory = Factory.forProtocol(lambda: ThriftClientProtocol(self._transport, self._protocol, self._maxMessageSize))
        factory.noisy = False
        attempt = endpoint.connect(factory)
        abandoned = []

        def cancel(result):
            # The call gave up (timed out) while connecting.  Whatever the
            # attempt fails with then (HostnameEndpoint may say
            # DNSLookupError), it is not the server's fault: fail-fast must
            # not mark it down.
            abandoned.append(True)
            attempt.cancel()

        result = Deferred(cancel)

        def connected(connection):
            if result.called:
                connection.close()
            else:
                result.callback(self._connected(connection))

        def failed(failure):
            if result.called:
                return
            if abandoned or failure.check(CancelledError, ConnectingCancelledError):
                result.errback(CancelledError("connection attempt abandoned"))
            elif failure.check(ConnectError):
                result.errback(failure)
            else:
                result.errback(ConnectError("cannot connect to %s:%d: %s" % (self.host, self.port, failure.value)))

        attempt.addCallbacks(connected, failed)
        return result

    def _connected(self, connection):
        self.connects += 1
        self._connections.add(connection)
        connection.closed.addCallback(lambda _: self._connections.discard(connection))
        if self._onConnect is not None:
            self._onConnect(self)
        return connection

    def __call__(self, request):
        return _PooledCall(self, request).start()

    def getProtocol(self):
        """
        Make sure a connection can be made (fail-fast probes with it).

        @return: a Deferred firing with a connection, given back to the pool
            at once, or failing with L{ConnectError}.
        """

        def got(connection):
            if not connection.reusable:
                # A pooled connection that closed while idle proves
                # nothing: drop it and try again.
                self.pool.release(connection, False)
                return self.pool.acquire().addCallback(got)
            self.pool.release(connection)
            return connection

        return self.pool.acquire().addCallback(got)

    def close(self):
        """
        Close the idle connections now and the others once their call ends;
        calls waiting for a connection fail with
        L{txscales.errors.ClientClosedError}.

        @return: a Deferred firing when every connection is closed.
        """
        self._closed = True
        self.pool.close()
        return DeferredList([c.closed for c in list(self._connections)], consumeErrors=True)


class _PooledCall:
    """
    One call through an endpoint: get a connection, send, give the
    connection back (or close it), in that order, whatever happens and
    whenever the caller cancels.
    """

    def __init__(self, endpoint, request):
        self._endpoint = endpoint
        self._request = request
        self._acquiring = None
        self._connection = None
        self._sent = None
        self.result = Deferred(self._cancel)

    def start(self):
        self._acquire()
        return self.result

    def _acquire(self):
        self._acquiring = self._endpoint.pool.acquire()
        self._acquiring.addCallbacks(self._acquired, self._acquireFailed)

    def _acquired(self, connection):
        self._acquiring = None
        pool = self._endpoint.pool
        if self.result.called:
            pool.release(connection, connection.reusable)
            return
        if not connection.reusable:
            # It closed (or broke) while idle: drop it and take another.
            pool.release(connection, False)
            self._acquire()
            return
        self._connection = connection
        self._sent = connection.call(self._request.method, self._request.args)
        self._sent.addCallbacks(self._replied, self._failed)

    def _acquireFailed(self, failure):
        self._acquiring = None
        if not self.result.called:
            if failure.check(CancelledError):
                failure = DiscardedCall(False)
            self.result.errback(failure)

    def _replied(self, reply):
        connection, self._connection = self._connection, None
        self._sent = None
        self._endpoint.pool.release(connection, connection.reusable)
        self.result.callback(reply)

    def _failed(self, failure):
        connection, self._connection = self._connection, None
        self._sent = None
        self._endpoint.discards += 1
        self._endpoint.pool.release(connection, False)
        if not self.result.called:
            self.result.errback(failure)

    def _cancel(self, result):
        if self._acquiring is not None:
            self._acquiring.cancel()
        elif self._sent is not None:
            self._sent.cancel()


class ThriftClient(StackClient):
    """
    Base of the generated plain Thrift client proxies.  Each service method
    returns a Deferred firing with its result, failing with a declared
    Thrift exception as itself, with L{txscales.errors.ApplicationError}
    for a C{TApplicationException}, or with another
    L{txscales.errors.TxScalesError}.  One-way methods fire with None once
    the call is written.

    @ivar stack: the L{txscales.stack.ClientStack} calls go through.
    """

    def __init__(self, methods, stack, protocol, timeout):
        self._methods = methods
        self.stack = stack
        self._protocol = protocol
        self._timeout = timeout

    def _call(self, method, args, kwargs):
        try:
            body = encodeArgs(method, args, kwargs, self._protocol)
        except Exception as e:
            return fail(e)
        return self.stack(ThriftRequest(method, body, self._timeout)).addCallback(_result)


def _result(reply):
    return None if reply is None else reply.result()


def buildClient(
    iface,
    dest,
    transport=FRAMED,
    protocol=BINARY,
    reactor=None,
    timeout=None,
    label=None,
    connectTimeout=5.0,
    endpointFactory=None,
    maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
    low=None,
    high=DEFAULT_HIGH,
    maxWaiters=2**31,
    **options
):
    """
    Build a plain Thrift client; see L{txscales.thrift.Thrift.newClient}.

    @raise ValueError: for an unknown transport or protocol.
    @raise TypeError: for an unknown option.
    """
    checkOptions(transport, protocol)
    if low is None:
        low = min(DEFAULT_LOW, high)
    if reactor is None:
        from twisted.internet import reactor
    stackOptions = {k: options.pop(k) for k in STACK_OPTIONS + _BUILD_OPTIONS if k in options}
    if options:
        raise TypeError("unknown Thrift client option(s): %s" % (", ".join(sorted(options)),))

    def makeEndpoint(host, port, stats):
        onConnect = stats.connected if stats is not None else None
        return ThriftEndpoint(
            reactor,
            host,
            port,
            transport,
            protocol,
            maxMessageSize,
            low,
            high,
            maxWaiters,
            connectTimeout,
            endpointFactory,
            onConnect,
        )

    stack = buildStack(dest, makeEndpoint, reactor, label or iface.__module__, **stackOptions)
    methods = describeService(iface)
    cls = proxyClass(ThriftClient, iface, methods)
    return cls(methods, stack, protocol, timeout)


_BUILD_OPTIONS = ("random", "stats", "registry", "discoveryTimeout")
