"""
The ThriftMux server: a Thrift handler behind a Mux listener that also
serves framed Thrift and TTwitter clients on the same port.
"""

from random import Random
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, cast

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress

from txscales._listening import ListeningService
from txscales._tracing import TRACING, currentTrace
from txscales.mux import Dispatch
from txscales.mux.protocol import DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_PENDING, MuxServerFactory
from txscales.thrift import ThriftProcessor, countedProcess, endServerSpan, serviceName, startServerSpan
from txscales.thriftmux._contexts import RequestContext, currentRequest, sampledOut
from txscales.thriftmux._vanilla import vanillaFallback

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from txscales._timers import ServerTimeouts
    from txscales.stats import Stats


def thriftMuxService(
    processor: ThriftProcessor,
    stats: "Optional[Stats]" = None,
    clock: Any = None,
    name: str = "",
    random: Optional[Random] = None,
    peer: Optional[IAddress] = None,
) -> Callable[[Any], Any]:
    """
    @param processor: the L{ThriftProcessor} of the handler.
    @param stats: a L{txscales.stats.Stats} for the server, or None.
    @param clock: the C{IReactorTime} timing calls (with C{stats}).
    @param name: the service's name, for its spans.
    @param random: the C{Random} that decides whether requests that came
        without a sampling decision are sampled, when tracing is on.
    @param peer: the address of the connection's client, which its spans
        name, or None.
    @return: a Mux service (C{Request -> bytes or Deferred}) running
        C{processor} with the request's contexts installed as
        L{currentRequest}, so that client calls from the handler inherit
        them.
    """
    process = processor.process
    setRequest = currentRequest.set
    resetRequest = currentRequest.reset

    tracing = TRACING
    draws = Random() if random is None else random
    spanAttributes: Dict[str, Any] = {"rpc.system": "thriftmux"}
    if isinstance(peer, (IPv4Address, IPv6Address)):
        spanAttributes.update({"client.address": peer.host, "client.port": peer.port})

    def traced(request: Dispatch) -> Any:
        context = RequestContext(request.contexts)
        trace, span = startServerSpan(tracing.tracer, context.trace, draws, name, request.body, dict(spanAttributes))
        token = setRequest(context)
        traceToken = currentTrace.set(trace)
        try:
            result = process(request.body)
        except BaseException as e:
            if span is not None:
                span.fail(e)
                span.end()
            raise
        finally:
            currentTrace.reset(traceToken)
            resetRequest(token)
        if span is None:
            return result
        if isinstance(result, bytes):
            return endServerSpan(result, span)
        return result.addBoth(endServerSpan, span)

    # A request its caller did not sample is served as without a tracer:
    # calls made for it inherit that decision from currentRequest.  With
    # no tracer (the default), that costs one attribute read.
    if stats is None:

        def service(request: Dispatch) -> Any:
            if tracing.tracer is not None and not sampledOut(request.contexts):
                return traced(request)
            token = setRequest(RequestContext.of(request))
            try:
                return process(request.body)
            finally:
                resetRequest(token)

        return service

    # countedProcess(), inline for the untraced calls: one Python call
    # fewer, and the counters updated in place.
    countedTraced = countedProcess(traced, stats, clock)
    series = stats.series
    observe = series.latency.observe
    seconds = clock.seconds

    def countedService(request: Dispatch) -> Any:
        if tracing.tracer is not None and not sampledOut(request.contexts):
            return countedTraced(request)
        series.requests += 1
        start = seconds()
        token = setRequest(RequestContext.of(request))
        try:
            result = process(request.body)
        except Exception as e:
            stats.failed(e, seconds() - start)
            raise
        finally:
            resetRequest(token)
        if type(result) is bytes:
            # Stats.succeeded(), inline.
            series.finished += 1
            series.success += 1
            observe(seconds() - start)
            return result
        return stats.settled(cast("Deferred[bytes]", result), seconds, start)

    return countedService


def serverFactory(
    iface: type,
    handler: object,
    reactor: Any,
    maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
    stats: "Optional[Stats]" = None,
    maxPending: int = DEFAULT_MAX_PENDING,
    opportunisticTls: bytes = b"off",
    tls: Any = None,
    timeouts: "Optional[ServerTimeouts]" = None,
    random: Optional[Random] = None,
) -> MuxServerFactory:
    """
    @param iface: the generated C{Iface} class, or a service class
        L{txscales.thrift.loadIdl} loaded.
    @param handler: an object with one method per service method.
    @param reactor: the reactor (its clock times sessions and calls).
    @param maxFrameSize: the largest frame accepted.
    @param stats: a L{txscales.stats.Stats} for the server, or None.
    @param maxPending: how many requests of one connection run at once.
    @param opportunisticTls: the Mux opportunistic TLS level, C{b"off"},
        C{b"desired"} or C{b"required"}.
    @param tls: the TLS settings opportunistic TLS starts with.
    @param timeouts: the L{txscales._timers.ServerTimeouts} of its
        connections (Mux and downgraded alike), or None for none.
    @param random: the C{Random} of the sampling decisions requests come
        without, when tracing is on.
    @return: a L{MuxServerFactory} serving C{handler} for the generated
        service C{iface}, downgrading Thrift clients.
    """
    processor = ThriftProcessor(iface, handler, reactor)
    name = serviceName(iface)
    draws = Random() if random is None else random

    def servicePerPeer(peer: Optional[IAddress]) -> Callable[[Any], Any]:
        # Each connection's service knows its client, for the spans.
        return thriftMuxService(processor, stats, reactor, name, draws, peer)

    return MuxServerFactory(
        servicePerPeer(None),
        reactor,
        maxFrameSize,
        fallbacks=[vanillaFallback],
        opportunisticTls=opportunisticTls,
        tls=tls,
        maxPending=maxPending,
        timeouts=timeouts,
        servicePerPeer=servicePerPeer,
    )


class ThriftMuxServerService(ListeningService):
    """
    A service that listens on a Twisted server endpoint string and, when
    stopped, stops listening, drains every session and closes.

    @ivar factory: the L{MuxServerFactory}.
    @ivar port: the listening port once started.
    @ivar listening: a Deferred firing with the port once listening.
    """

    defaultDrainTimeout = 10.0
    description = "ThriftMux"
