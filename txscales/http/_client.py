"""
The HTTP client: treq over twisted.web's Agent with a shared connection
pool, one endpoint per server of the destination, on the client stack.
"""

import random as _random
from typing import Any, Callable, Dict, Optional, Tuple, Union

from OpenSSL.SSL import Error as SSLError
from twisted.internet import error as netError
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.python.failure import Failure

# RequestNotSent has no public name: twisted.web.client imports it but leaves
# it out of __all__.  A connection that can no longer send a request fails
# the request with it, before writing anything.
from twisted.web._newclient import RequestNotSent
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS, IResponse
from zope.interface import implementer

import treq
from treq.client import HTTPClient

from txscales._reactor import defaultReactor
from txscales._tracing import CLIENT, TRACING, TraceId, b3Headers, clientTrace, currentTrace, destAttributes
from txscales.errors import ConnectError, ConnectionLostError, HttpStatusError, TlsError
from txscales.interfaces import CLOSED, OPEN, IEndpoint
from txscales.stack import buildStack
from txscales.thrift import endSpan

_CONNECT_ERRORS = (
    netError.ConnectError,
    netError.DNSLookupError,
    netError.ConnectionRefusedError,
    netError.TimeoutError,
    netError.NoRouteError,
)


class HttpRequest:
    """
    One HTTP request on its way down the client stack.

    @ivar method: the method, e.g. C{"GET"}.
    @ivar path: the path and query, e.g. C{"/users?id=3"}.
    @ivar kwargs: treq's keyword arguments (C{headers}, C{data}, C{json},
        C{params}, ...).
    @ivar timeout: seconds before the request is cancelled, or None.
    @ivar decode: None: the stack returns the connection's answer as it is.
    """

    __slots__ = ("method", "path", "kwargs", "timeout")
    decode = None

    def __init__(self, method: str, path: str, kwargs: Dict[str, Any], timeout: Optional[float]) -> None:
        self.method = method
        self.path = path
        self.kwargs = kwargs
        self.timeout = timeout

    def retried(self, retries: int) -> "HttpRequest":
        """
        @return: the request to send again (HTTP carries no retry count).
        """
        return self


@implementer(IPolicyForHTTPS)
class _TrustRootPolicy:
    """
    Verify servers against one trust root (a private CA), by the host name
    the client connects to.
    """

    def __init__(self, trustRoot: Certificate) -> None:
        self._trustRoot = trustRoot

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        return optionsForClientTLS(hostname.decode("ascii"), trustRoot=self._trustRoot)


@implementer(IEndpoint)
class HttpEndpoint:
    """
    One HTTP server of a destination; requests share the client's
    connection pool.
    """

    def __init__(
        self, reactor: Any, http: HTTPClient, host: str, port: int, scheme: str, connectTimeout: float
    ) -> None:
        self._reactor = reactor
        self._http = http
        self.host = host
        self.port = port
        self._base = "%s://%s:%d" % (scheme, "[%s]" % (host,) if ":" in host else host, port)
        self._connectTimeout = connectTimeout
        self._closed = False

    def __repr__(self) -> str:
        return self._base

    @property
    def status(self) -> str:
        return CLOSED if self._closed else OPEN

    def __call__(self, request: HttpRequest) -> "Deferred[Any]":
        d = self._http.request(request.method, self._base + request.path, **request.kwargs)
        return d.addErrback(self._translate)

    def _translate(self, failure: Failure) -> Failure:
        if failure.check(CancelledError):
            return failure
        if failure.check(*_CONNECT_ERRORS):
            raise ConnectError("cannot connect to %s: %s" % (self._base, failure.value))
        if failure.check(RequestNotSent):
            raise ConnectionLostError(failure, mayHaveReachedServer=False)
        if failure.check(ResponseNeverReceived, ResponseFailed, RequestTransmissionFailed):
            reasons = getattr(failure.value, "reasons", [])
            if reasons and all(isinstance(r, Failure) and r.check(CancelledError) for r in reasons):
                return Failure(CancelledError())
            if any(isinstance(r, Failure) and r.check(SSLError) for r in reasons):
                raise TlsError("TLS with %s failed: %s" % (self._base, reasons[0].value))
            raise ConnectionLostError(failure, mayHaveReachedServer=True)
        return failure

    def getProtocol(self) -> "Deferred[None]":
        """
        Check that a TCP connection can be made (fail-fast probes this).
        """
        endpoint = HostnameEndpoint(self._reactor, self.host, self.port, timeout=self._connectTimeout)
        d = endpoint.connect(Factory.forProtocol(Protocol))

        def connected(protocol: Protocol) -> None:
            # Connected: the protocol has its transport.
            assert protocol.transport is not None
            protocol.transport.loseConnection()

        def failed(failure: Failure) -> None:
            raise ConnectError("cannot connect to %s: %s" % (self._base, failure.value))

        return d.addCallbacks(connected, failed)

    def close(self) -> "Deferred[None]":
        self._closed = True
        return succeed(None)


class HttpClient:
    """
    An HTTP client of a destination's servers.  Each method returns a
    Deferred firing with treq's response (C{code}, C{headers},
    C{treq.content(response)}, C{response.json()}, ...).

    An error status is a response, not a failure, unless the client was
    made with C{raiseForStatus=True} (then L{HttpStatusError}).

    @ivar stack: the client stack requests go through.
    """

    def __init__(
        self,
        stack: Any,
        pool: HTTPConnectionPool,
        timeout: Optional[float],
        raiseForStatus: bool,
        random: Optional[_random.Random] = None,
        dest: str = "",
    ) -> None:
        self.stack = stack
        self._destAttributes = destAttributes(dest)
        self._pool = pool
        self._timeout = timeout
        self._raiseForStatus = raiseForStatus
        self._random = _random.Random() if random is None else random

    def request(
        self, method: Union[str, bytes], path: str, timeout: Optional[float] = None, **kwargs: Any
    ) -> "Deferred[IResponse]":
        """
        Send a request to one of the servers.

        @param method: e.g. C{"GET"}.
        @param path: the path and query, starting with C{/}.
        @param timeout: seconds (default: the client's); on expiry the
            request is cancelled and fails with
            L{txscales.errors.RequestTimeoutError}.
        @param kwargs: treq's request arguments: C{headers}, C{params},
            C{data}, C{json}, C{files}, C{auth}, ...
        @return: a Deferred of the response.
        """
        return self._request(method, path, timeout, kwargs)

    def _request(
        self,
        method: Union[str, bytes],
        path: str,
        timeout: Optional[float],
        kwargs: Dict[str, Any],
        span: Optional[Tuple[str, Dict[str, Any]]] = None,
        then: Optional[Callable[..., Any]] = None,
        thenArgs: Tuple[Any, ...] = (),
    ) -> "Deferred[Any]":
        """
        L{request}, whose span, when the request is traced, has the name
        and attributes C{span} (default: the HTTP method and path), and
        whose response goes to C{then(response, *thenArgs)} (when given)
        before the span ends.
        """
        if not path.startswith("/"):
            path = "/" + path
        if isinstance(method, bytes):
            method = method.decode("ascii")
        method = method.upper()
        request = HttpRequest(method, path, kwargs, self._timeout if timeout is None else timeout)
        tracer = TRACING.tracer
        started = None
        if tracer is not None:
            trace = clientTrace(currentTrace.get(), self._random)
            request.kwargs = dict(kwargs, headers=_withB3(kwargs.get("headers"), trace))
            if trace.sampled:
                if span is None:
                    span = ("%s %s" % (method, path.split("?", 1)[0]), {})
                name, attributes = span
                attributes.update(self._destAttributes)
                attributes.update({"http.request.method": method, "url.path": path.split("?", 1)[0]})
                started = tracer.startSpan(name, CLIENT, trace, attributes)
        d = self.stack(request)
        if started is not None:
            d.addCallback(_responseStatus, started)
        if self._raiseForStatus:
            d.addCallback(_checkStatus)
        if then is not None:
            d.addCallback(then, *thenArgs)
        if started is not None:
            d.addBoth(endSpan, started)
        return d

    def get(self, path: str, **kwargs: Any) -> "Deferred[IResponse]":
        """
        GET C{path}; see L{request}.
        """
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> "Deferred[IResponse]":
        """
        HEAD C{path}; see L{request}.
        """
        return self.request("HEAD", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> "Deferred[IResponse]":
        """
        POST to C{path}; see L{request}.
        """
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> "Deferred[IResponse]":
        """
        PUT to C{path}; see L{request}.
        """
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> "Deferred[IResponse]":
        """
        PATCH C{path}; see L{request}.
        """
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> "Deferred[IResponse]":
        """
        DELETE C{path}; see L{request}.
        """
        return self.request("DELETE", path, **kwargs)

    def close(self) -> "Deferred[None]":
        """
        Close the client and its pooled connections.

        @return: a Deferred firing when they are closed.
        """
        d = self.stack.close()
        d.addCallback(lambda _: self._pool.closeCachedConnections())
        return d


def _checkStatus(response: IResponse) -> "Union[IResponse, Deferred[IResponse]]":
    if response.code < 400:
        return response
    # Read the body, so that the connection goes back to the pool.
    return treq.content(response).addCallback(_statusError, response)


def _withB3(headers: Any, trace: TraceId) -> Any:
    """
    @return: a request's C{headers} (a dict, a Twisted C{Headers}, or None)
        with the B3 headers of C{trace} added, as a new object.
    """
    b3 = b3Headers(trace)
    if headers is None:
        return b3
    if isinstance(headers, Headers):
        headers = headers.copy()
        for name, values in b3.items():
            headers.setRawHeaders(name, values)
        return headers
    return dict(headers, **{name.decode("ascii"): values for name, values in b3.items()})


def _responseStatus(response: IResponse, span: Any) -> IResponse:
    span.setAttribute("http.response.status_code", response.code)
    if response.code >= 400:
        span.fail(HttpStatusError(response, b""))
    return response


def _statusError(body: bytes, response: IResponse) -> IResponse:
    raise HttpStatusError(response, body)


def buildHttpClient(
    dest: str,
    reactor: Any = None,
    timeout: Optional[float] = None,
    tls: bool = False,
    trustRoot: Optional[Certificate] = None,
    raiseForStatus: bool = False,
    persistent: bool = True,
    maxPersistentPerHost: int = 10,
    connectTimeout: float = 5.0,
    label: Optional[str] = None,
    **stackOptions: Any
) -> HttpClient:
    """
    Build an HTTP client; see L{txscales.http.Http.newClient}.
    """
    reactor = defaultReactor(reactor)
    pool = HTTPConnectionPool(reactor, persistent=persistent)
    pool.maxPersistentPerHost = maxPersistentPerHost
    policy = _TrustRootPolicy(trustRoot) if trustRoot is not None else BrowserLikePolicyForHTTPS()
    agent = Agent(reactor, contextFactory=policy, pool=pool, connectTimeout=connectTimeout)
    http = HTTPClient(agent)
    scheme = "https" if tls else "http"

    def makeEndpoint(host: str, port: int, stats: Any) -> HttpEndpoint:
        return HttpEndpoint(reactor, http, host, port, scheme, connectTimeout)

    stack = buildStack(dest, makeEndpoint, reactor, label or "http", protocol="http", **stackOptions)
    return HttpClient(stack, pool, timeout, raiseForStatus, stackOptions.get("random"), dest)
