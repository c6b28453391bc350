"""
HTTP clients on the client stack, and Thrift over HTTP.

    >>> from txscales.http import Http
    >>> client = Http.newClient("tcp://127.0.0.1:8080,127.0.0.1:8081", timeout=2)
    >>> d = client.get("/status")             # a treq response
"""

from typing import Any, Optional

from txscales.http._client import HttpClient, buildHttpClient
from txscales.http._thrift import ThriftHttpClient, ThriftHttpServerService, ThriftResource, buildThriftHttpClient

__all__ = ["Http", "HttpClient", "ThriftHttp", "ThriftHttpClient", "ThriftHttpServerService", "ThriftResource"]


class Http:
    """
    The HTTP facade.
    """

    @staticmethod
    def newClient(dest: str, timeout: Optional[float] = None, **options: Any) -> HttpClient:
        """
        Make an HTTP client of the servers of C{dest}.

        @param dest: C{tcp://host:port[,...]} or any discovery URI.
        @param timeout: default per-request timeout in seconds (None: none).
        @param options: C{tls} (HTTPS, certificates verified against the
            system's trust store, or against C{trustRoot}, a
            C{twisted.internet.ssl.Certificate} of a private CA),
            C{raiseForStatus} (fail 4xx/5xx with
            L{txscales.errors.HttpStatusError}), C{persistent} and
            C{maxPersistentPerHost} (the shared connection pool),
            C{connectTimeout}, and the client stack's settings
            (C{balancer}, C{retryBudget}, C{label}, C{stats}, ...).
        @return: an L{HttpClient}.
        """
        return buildHttpClient(dest, timeout=timeout, **options)


class ThriftHttp:
    """
    The Thrift-over-HTTP facade (Apache Thrift's C{THttpClient} and
    C{THttpServer} wire format).
    """

    @staticmethod
    def newClient(iface: type, dest: str, path: str = "/", timeout: Optional[float] = None, **options: Any) -> Any:
        """
        Make a client of a generated Thrift service served over HTTP at
        C{path} (POST, C{application/x-thrift}, binary protocol).

        Apache Thrift's Python C{THttpServer} answers in HTTP/1.0 and closes
        each connection without saying so; use C{persistent=False} with it,
        since a POST is not retried on a pooled connection the server
        closed.

        @param options: as for L{Http.newClient}.
        @return: a proxy whose methods return Deferreds.
        """
        return buildThriftHttpClient(iface, dest, path, timeout=timeout, **options)

    @staticmethod
    def newResource(iface: type, handler: object) -> ThriftResource:
        """
        @return: a twisted.web resource serving C{handler} for C{iface} to
            POSTed Thrift calls; mount it in any site.
        """
        return ThriftResource(iface, handler)
