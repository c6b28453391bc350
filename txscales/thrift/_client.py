"""
The plain Thrift client: framed or buffered, binary or compact, one call at
a time per connection (L{txscales.thrift._endpoint}) or, opted in, many
pipelined on one connection (L{txscales.thrift._pipeline}), through the
client stack.
"""

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

from twisted.internet.defer import Deferred, fail

from txscales._reactor import defaultReactor
from txscales._tls import clientTls, tlsEndpointFactory
from txscales.stack import STACK_OPTIONS, StackClient, buildStack
from txscales.thrift._codec import BINARY, Method, describeService, encodeArgs
from txscales.thrift._endpoint import DEFAULT_HIGH, DEFAULT_LOW, ThriftEndpoint, ThriftRequest
from txscales.thrift._framing import DEFAULT_MAX_MESSAGE_SIZE, FRAMED
from txscales.thrift._pipeline import DEFAULT_MAX_OUTSTANDING, PipelinedThriftEndpoint
from txscales.thrift._proxy import proxyClass
from txscales.thrift._session import Reply, checkOptions

if TYPE_CHECKING:
    from txscales.stats import ClientStats


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

    def __init__(self, stack: Any, protocol: str, timeout: Optional[float]) -> None:
        self.stack = stack
        self._protocol = protocol
        self._timeout = timeout

    def _call(self, method: Method, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> "Deferred[Any]":
        try:
            body = encodeArgs(method, args, kwargs, self._protocol)
        except Exception as e:
            return fail(e)
        return self.stack(ThriftRequest(method, body, self._timeout)).addCallback(_result)


def _result(reply: Optional[Reply]) -> Any:
    return None if reply is None else reply.result()


def buildClient(
    iface: type,
    dest: str,
    transport: str = FRAMED,
    protocol: str = BINARY,
    reactor: Any = None,
    timeout: Optional[float] = None,
    label: Optional[str] = None,
    connectTimeout: float = 5.0,
    endpointFactory: Optional[Callable[[Any, str, int, float], Any]] = None,
    maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
    low: Optional[int] = None,
    high: int = DEFAULT_HIGH,
    maxWaiters: int = 2**31,
    pipelined: bool = False,
    maxOutstanding: Optional[int] = None,
    **options: Any
) -> ThriftClient:
    """
    Build a plain Thrift client; see L{txscales.thrift.Thrift.newClient}.

    @raise ValueError: for an unknown transport or protocol, or
        C{maxOutstanding} without C{pipelined}.
    @raise TypeError: for an unknown option.
    """
    checkOptions(transport, protocol)
    if maxOutstanding is not None and not pipelined:
        raise ValueError("maxOutstanding applies to pipelined clients only (pipelined=True)")
    if maxOutstanding is None:
        maxOutstanding = DEFAULT_MAX_OUTSTANDING
    if maxOutstanding < 1:
        raise ValueError("maxOutstanding must be at least 1, not %r" % (maxOutstanding,))
    if low is None:
        low = min(DEFAULT_LOW, high)
    reactor = defaultReactor(reactor)
    dest, tlsFor = clientTls(dest, options)
    if tlsFor is not None:
        endpointFactory = tlsEndpointFactory(tlsFor, endpointFactory)
    stackOptions = {k: options.pop(k) for k in STACK_OPTIONS + _BUILD_OPTIONS if k in options}
    if options:
        raise TypeError("unknown Thrift client option(s): %s" % (", ".join(sorted(options)),))

    def makeEndpoint(host: str, port: int, stats: "Optional[ClientStats]") -> Any:
        onConnect = stats.connected if stats is not None else None
        if pipelined:
            return PipelinedThriftEndpoint(
                reactor,
                host,
                port,
                transport,
                protocol,
                maxMessageSize,
                maxOutstanding,
                maxWaiters,
                connectTimeout,
                endpointFactory,
                onConnect,
            )
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

    stack = buildStack(dest, makeEndpoint, reactor, label or iface.__module__, protocol="thrift", **stackOptions)
    methods = describeService(iface)
    cls = proxyClass(ThriftClient, iface, methods)
    return cls(stack, protocol, timeout)


_BUILD_OPTIONS = ("random", "stats", "registry", "discoveryTimeout")
