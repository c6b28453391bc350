"""
Thrift over HTTP, compatible with Apache Thrift's C{THttpClient} and
C{THttpServer}: each call is a POST whose body is one Thrift message
(C{application/x-thrift}, binary or compact protocol), answered in the
response body.
"""

from random import Random
from typing import TYPE_CHECKING, Any, Callable, Dict, NoReturn, Optional, Tuple, Union

import treq
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, fail
from twisted.web.resource import Resource
from twisted.python.failure import Failure
from twisted.web.iweb import IResponse
from twisted.web.server import NOT_DONE_YET, Request, Site

from txscales._listening import ListeningService
from txscales._reactor import defaultReactor
from txscales._timers import DEFAULT_IDLE_TIMEOUT
from txscales.errors import BadMessageError, HttpStatusError, RequestNackedError
from txscales._tracing import TRACING, currentTrace, fromB3
from txscales.interfaces import ISpan
from txscales.thrift import (
    Method,
    ThriftProcessor,
    decodeReply,
    describeService,
    encodeCall,
    endServerSpan,
    endSpan,
    proxyClass,
    serviceName,
    startServerSpan,
)

if TYPE_CHECKING:
    from txscales.http._client import HttpClient

CONTENT_TYPE = b"application/x-thrift"


class ThriftHttpClient:
    """
    Base of the generated Thrift-over-HTTP client proxies: each service
    method returns a Deferred of its result (declared exceptions arrive as
    themselves).

    @ivar http: the L{txscales.http.HttpClient} the calls go through.
    """

    def __init__(self, http: "HttpClient", path: str, service: str = "") -> None:
        self.http = http
        self._path = path
        self._service = service

    def _call(self, method: Method, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> "Deferred[Any]":
        try:
            body = encodeCall(method, args, kwargs)
        except Exception as e:
            return fail(e)
        span = None
        if TRACING.tracer is not None:
            attributes = {"rpc.system": "thrift", "rpc.service": self._service, "rpc.method": method.name}
            span = ("%s/%s" % (self._service, method.name), attributes)
        options = {"data": body, "headers": {b"Content-Type": [CONTENT_TYPE]}}
        return self.http._request("POST", self._path, None, options, span, self._response, (method,))

    def _response(self, response: IResponse, method: Method) -> "Deferred[Any]":
        if response.code != 200:
            return treq.content(response).addCallback(lambda body: _raise(HttpStatusError(response, body)))
        return treq.content(response).addCallback(self._decode, method)

    @staticmethod
    def _decode(body: bytes, method: Method) -> Any:
        if method.oneway:
            return None
        if not body:
            raise BadMessageError("empty Thrift reply to %s" % (method.name,))
        return decodeReply(method, body)

    def close(self) -> "Deferred[None]":
        """
        Close the client.

        @return: a Deferred firing when closed.
        """
        return self.http.close()


def _firstHeader(request: Request) -> Callable[[bytes], Optional[bytes]]:
    """
    @return: a function of a header's name returning the first value
        C{request} has for it, or None.
    """

    def header(name: bytes) -> Optional[bytes]:
        values = request.requestHeaders.getRawHeaders(name)
        return values[0] if values else None

    return header


def _raise(error: BaseException) -> NoReturn:
    raise error


def buildThriftHttpClient(iface: type, dest: str, path: str = "/", **options: Any) -> ThriftHttpClient:
    """
    Build a Thrift-over-HTTP client; see L{txscales.http.ThriftHttp}.
    """
    from txscales.http._client import buildHttpClient

    options.setdefault("label", iface.__module__)
    http = buildHttpClient(dest, **options)
    methods = describeService(iface)
    return proxyClass(ThriftHttpClient, iface, methods)(http, path, serviceName(iface))


class ThriftResource(Resource):
    """
    A twisted.web resource serving a handler for a generated Thrift service
    to POSTed Thrift calls (as Apache Thrift's C{THttpClient} sends them).
    Mount it anywhere in a site.

    @param clock: an C{IReactorTime}: when given, the handler's failures are
        logged at a bounded rate (see L{ThriftProcessor}).
    """

    isLeaf = True

    def __init__(self, iface: type, handler: object, clock: Any = None, random: Optional[Random] = None) -> None:
        """
        @param random: the C{Random} of the sampling decisions requests come
            without, when tracing is on (L{txscales.tracing}).
        """
        Resource.__init__(self)
        self._processor = ThriftProcessor(iface, handler, clock)
        self._service = serviceName(iface)
        self._random = Random() if random is None else random

    def render_POST(self, request: Request) -> Union[bytes, int]:
        # twisted.web has read the body into content by now.
        assert request.content is not None
        body = request.content.read()
        tracer = TRACING.tracer
        if tracer is None:
            return self._answer(request, body)
        # A traced request: B3 headers in, a server span, and the trace
        # the handler's own calls descend from.
        address = request.getClientAddress()
        attributes: Dict[str, Any] = {"rpc.system": "thrift"}
        if isinstance(address, (IPv4Address, IPv6Address)):
            attributes.update({"client.address": address.host, "client.port": address.port})
        trace, span = startServerSpan(tracer, fromB3(_firstHeader(request)), self._random, self._service, body, attributes)
        token = currentTrace.set(trace)
        try:
            return self._answer(request, body, span)
        finally:
            currentTrace.reset(token)

    def _answer(self, request: Request, body: bytes, span: Optional[ISpan] = None) -> Union[bytes, int]:
        """
        Answer the call C{body}, ending its C{span} (when traced) with the
        answer.
        """
        try:
            result = self._processor.process(body)
        except BadMessageError as e:
            request.setResponseCode(400)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            if span is not None:
                endSpan(Failure(e), span)
            return ("not a Thrift message: %s\n" % (e,)).encode("utf-8")
        except RequestNackedError as e:
            # Refused at once: 503, as for a refusal made later.
            request.setResponseCode(503)
            if span is not None:
                endSpan(Failure(e), span)
            return b""
        request.setHeader(b"Content-Type", CONTENT_TYPE)
        if not isinstance(result, Deferred):
            return result if span is None else endServerSpan(result, span)
        if span is not None:
            result.addBoth(endServerSpan, span)
        # The client going away cancels the handler.
        reply = _Reply(request)
        request.notifyFinish().addErrback(reply.lost, result)
        result.addCallbacks(reply.write, reply.failed)
        return NOT_DONE_YET

    def render_GET(self, request: Request) -> bytes:
        request.setResponseCode(405)
        request.setHeader(b"Allow", b"POST")
        return b"POST Thrift calls here\n"


class _Reply:
    """
    Where the answer of a call made by a request goes: into that request,
    unless its client went away first (C{notifyFinish()} then fails, and the
    request can no longer be written to or finished).
    """

    def __init__(self, request: Request) -> None:
        self._request = request
        self._gone = False

    def lost(self, reason: Failure, call: "Deferred[bytes]") -> None:
        """
        The client went away: cancel its C{call}.
        """
        self._gone = True
        call.cancel()

    def _open(self) -> bool:
        return not self._gone and not self._request.finished

    def write(self, body: bytes) -> None:
        """
        Answer with the reply C{body}.
        """
        if self._open():
            self._request.write(body)
            self._request.finish()

    def failed(self, failure: Failure) -> None:
        """
        The call failed without a reply: answer 503.
        """
        if self._open():
            self._request.setResponseCode(503)
            self._request.finish()


class ThriftHttpServerService(ListeningService):
    """
    Serve a L{ThriftResource} at every path of an endpoint string.

    @ivar port: the listening port once started.
    @ivar listening: a Deferred firing with the port once listening.
    """

    description = "Thrift over HTTP"

    def __init__(
        self,
        iface: type,
        handler: object,
        listen: str,
        reactor: Any = None,
        description: Optional[str] = None,
        idleTimeout: Optional[float] = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        """
        @param idleTimeout: seconds a connection may stay silent before the
            server closes it (twisted.web's C{timeOut}), or None.
        """
        reactor = defaultReactor(reactor)
        site = Site(ThriftResource(iface, handler, reactor), timeout=idleTimeout, reactor=reactor)
        site.noisy = False
        ListeningService.__init__(self, site, listen, reactor, description=description)
