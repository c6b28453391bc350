"""
The admin site (C{twistd txscales ... --admin ENDPOINT}): one small
twisted.web site serving

  - C{/metrics}: the Prometheus metrics, as C{--metrics} serves them;
  - C{/health}: C{200 ok} while serving, C{503 draining} once a server of
    the process stops;
  - C{/admin/server}: the servers' listeners, sessions and drain state;
  - C{/admin/clients}: the clients, their endpoints, balancer, failure
    accrual, retry budget and discovery;
  - C{/admin/tracing}: the trace sample rate, read (GET) and set (POST).

The servers and clients are those of a L{txscales._registry.Registry} (the
process's unless another is given); each describes itself.  Nothing here
runs per call.
"""

import json
from typing import Any, Optional

from prometheus_client import CollectorRegistry
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.protocols.policies import WrappingFactory
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from txscales._listening import DRAINING, STOPPED, ListeningService
from txscales._reactor import defaultReactor
from txscales._registry import REGISTRY, Registry
from txscales._sampling import SAMPLER, Sampler
from txscales.stats import MetricsPage

MAX_BODY = 1024
"""The largest request body the admin site reads, in bytes; a larger one
is answered 413 and its connection closed."""

MAX_CONNECTIONS = 64
"""The most connections the admin site holds at once; new ones past it are
closed at once."""


def _json(request: IRequest, value: Any, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-store")
    return json.dumps(value, sort_keys=True, default=str).encode("utf-8") + b"\n"


def draining(registry: Registry) -> bool:
    """
    @return: whether a server of C{registry} is draining or stopped.
    """
    return any(server.drainState in (DRAINING, STOPPED) for server in registry.servers())


class HealthPage(Resource):
    """
    C{/health}: C{200 ok} while the servers serve, C{503 draining} once
    one of them stops (so that a load balancer stops sending new work
    while the sessions drain).
    """

    isLeaf = True

    def __init__(self, registry: Registry) -> None:
        Resource.__init__(self)
        self._registry = registry

    def render_GET(self, request: IRequest) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        if draining(self._registry):
            request.setResponseCode(503)
            return b"draining\n"
        return b"ok\n"


class ServerPage(Resource):
    """
    C{/admin/server}: the servers, each with its listener (C{protocol},
    C{address}), C{drainState} and C{sessions} (C{peer}, C{pending}), and
    whether the process is C{draining}.
    """

    isLeaf = True

    def __init__(self, registry: Registry) -> None:
        Resource.__init__(self)
        self._registry = registry

    def render_GET(self, request: IRequest) -> bytes:
        servers = self._registry.servers()
        return _json(request, {"draining": draining(self._registry), "servers": [s.describe() for s in servers]})


class ClientsPage(Resource):
    """
    C{/admin/clients}: the live clients, each as its C{describe()} gives it
    (see L{txscales.stack.ClientStack.describe}).
    """

    isLeaf = True

    def __init__(self, registry: Registry) -> None:
        Resource.__init__(self)
        self._registry = registry

    def render_GET(self, request: IRequest) -> bytes:
        return _json(request, {"clients": [c.describe() for c in self._registry.clients()]})


class TracingPage(Resource):
    """
    C{/admin/tracing}: GET answers C{{"sampleRate": r}}; POST sets the rate
    from a form (or query) field C{sampleRate=0.5}, else from a JSON body
    C{{"sampleRate": 0.5}}, and answers as GET does.  A rate that is not a
    number from 0.0 to 1.0 is answered 400 with C{{"error": "..."}}.
    """

    isLeaf = True

    def __init__(self, sampler: Sampler) -> None:
        Resource.__init__(self)
        self._sampler = sampler

    def render_GET(self, request: IRequest) -> bytes:
        return _json(request, {"sampleRate": self._sampler.rate})

    def render_POST(self, request: IRequest) -> bytes:
        try:
            rate = _postedRate(request)
            self._sampler.rate = rate
        except ValueError as e:
            return _json(request, {"error": str(e)}, 400)
        return self.render_GET(request)


def _postedRate(request: IRequest) -> float:
    """
    @return: the C{sampleRate} of a POST: its form (or query) field, else
        its JSON body's.
    @raise ValueError: when there is none, or it is not a number.
    """
    values = (request.args or {}).get(b"sampleRate")
    if values:
        text = values[0].decode("utf-8", "replace")
        try:
            return float(text)
        except ValueError:
            raise ValueError("sampleRate is not a number: %r" % (text,))
    content = request.content
    body = content.read() if content is not None else b""
    try:
        posted = json.loads(body)
    except ValueError:
        raise ValueError('send a JSON body such as {"sampleRate": 0.5}, or a form field sampleRate')
    rate = posted.get("sampleRate") if isinstance(posted, dict) else None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise ValueError('the body needs a number "sampleRate", as in {"sampleRate": 0.5}')
    return float(rate)


class BoundedRequest(Request):
    """
    A request whose body may be at most L{MAX_BODY} bytes: a larger one is
    answered 413 and the connection closed, without keeping what came.
    """

    _tooLarge = False
    _received = 0

    def gotLength(self, length: Optional[int]) -> None:
        if length is not None and length > MAX_BODY:
            self._refuse()
        Request.gotLength(self, length if not self._tooLarge else 0)

    def handleContentChunk(self, data: bytes) -> None:
        if self._tooLarge:
            return
        self._received += len(data)
        if self._received > MAX_BODY:
            self._refuse()
            return
        Request.handleContentChunk(self, data)

    def process(self) -> None:
        if not self._tooLarge:
            Request.process(self)

    def _refuse(self) -> None:
        if self._tooLarge:
            return
        self._tooLarge = True
        transport: Any = self.channel.transport
        transport.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        transport.loseConnection()


def adminResource(
    registry: Optional[Registry] = None,
    sampler: Optional[Sampler] = None,
    metrics: Optional[CollectorRegistry] = None,
) -> Resource:
    """
    @param registry: the clients and servers to show (default: the
        process's).
    @param sampler: the sampler C{/admin/tracing} reads and sets (default:
        L{txscales._sampling.SAMPLER}).
    @param metrics: the prometheus registry C{/metrics} shows (default: the
        global one).
    @return: the root resource of the admin site.
    """
    registry = registry if registry is not None else REGISTRY
    root = Resource()
    admin = Resource()
    root.putChild(b"metrics", MetricsPage(metrics))
    root.putChild(b"health", HealthPage(registry))
    root.putChild(b"admin", admin)
    admin.putChild(b"server", ServerPage(registry))
    admin.putChild(b"clients", ClientsPage(registry))
    admin.putChild(b"tracing", TracingPage(sampler if sampler is not None else SAMPLER))
    return root


def adminSite(root: Resource, reactor: Any = None) -> Site:
    """
    @return: a quiet twisted.web site serving C{root} with
        L{BoundedRequest}s, closing connections idle for a minute.
    """
    site = Site(root, timeout=60, reactor=defaultReactor(reactor))
    site.requestFactory = BoundedRequest
    site.noisy = False
    return site


class AdminService(ListeningService):
    """
    Serve the admin site on a Twisted server endpoint string, holding at
    most L{MAX_CONNECTIONS} connections.

    @ivar port: the listening port, once started.
    @ivar listening: a Deferred firing with the port once listening.
    """

    servingFormat = "txscales: admin pages on http://{host}:{port}/"
    description = "admin"
    listed = False

    def __init__(
        self,
        listen: str,
        reactor: Any = None,
        registry: Optional[Registry] = None,
        sampler: Optional[Sampler] = None,
        metrics: Optional[CollectorRegistry] = None,
    ) -> None:
        reactor = defaultReactor(reactor)
        site = adminSite(adminResource(registry, sampler, metrics), reactor)
        # The wrapper keeps the connections in its protocols, which the
        # limit counts.
        wrapper = WrappingFactory(site)
        wrapper.noisy = False
        ListeningService.__init__(self, wrapper, listen, reactor, maxConnections=MAX_CONNECTIONS)


class WithAdmin(MultiService):
    """
    Services run beside an admin site that stops only once they have
    stopped, so that C{/health} answers 503 while their sessions drain.
    """

    def __init__(self, admin: IService) -> None:
        MultiService.__init__(self)
        self._admin = admin
        admin.setServiceParent(self)

    def stopService(self) -> "Deferred[Any]":
        Service.stopService(self)
        others = [s for s in reversed(list(self)) if s is not self._admin]
        d = DeferredList([maybeDeferred(s.stopService) for s in others])
        d.addCallback(lambda _: self._admin.stopService())
        return d
