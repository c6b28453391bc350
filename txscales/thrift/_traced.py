"""
Ending the span of a traced call, and the server side of a traced Thrift
call, whatever carried it (Mux, HTTP).
"""

from random import Random
from typing import Any, Dict, Optional, Tuple

from twisted.python.failure import Failure

from txscales._tracing import SERVER, TraceId, serverTrace
from txscales.interfaces import ISpan, ITracer
from txscales.thrift._processor import methodName, replyFailure


def startServerSpan(
    tracer: ITracer,
    incoming: Optional[TraceId],
    random: Random,
    service: str,
    data: bytes,
    attributes: Dict[str, Any],
) -> Tuple[TraceId, Optional[ISpan]]:
    """
    Decide whether a request is sampled and, if it is, start its server
    span.

    @param incoming: the trace id the request came with, or None.
    @param random: the server's C{Random}, for a decision the caller left.
    @param service: the Thrift service's name.
    @param data: the Thrift call.
    @param attributes: the span's attributes beyond the service and method.
    @return: the trace id the handler's own calls descend from, and the
        span (None when the request is not sampled).
    """
    trace = serverTrace(incoming, random)
    if not trace.sampled:
        return trace, None
    name = methodName(data)
    attributes["rpc.service"] = service
    attributes["rpc.method"] = name
    return trace, tracer.startSpan("%s/%s" % (service, name), SERVER, trace, attributes)


def endSpan(result: Any, span: ISpan) -> Any:
    """
    End C{span} with a call's outcome (a callback and errback both):
    failed when C{result} is a L{Failure}.

    @return: C{result}.
    """
    if isinstance(result, Failure) and result.value is not None:
        span.fail(result.value)
    span.end()
    return result


def endServerSpan(result: Any, span: ISpan) -> Any:
    """
    End a server span with the handler's answer (a callback and errback
    both): failed for a C{TApplicationException} reply or a failure (the
    request was discarded or refused).

    @return: C{result}.
    """
    if type(result) is bytes:
        error = replyFailure(result)
        if error is not None:
            span.fail(error)
    return endSpan(result, span)
