"""
TLS for txscales' clients and servers, built on C{twisted.internet.ssl}
(with service_identity checking the server's host name): the clients' TLS
options, the servers' certificate options and endpoint, and the typed
errors that say why a handshake failed.
"""

import weakref
from typing import Any, Callable, Dict, Optional, Tuple

from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
from service_identity.hazmat import DNS_ID, IPAddress_ID, verify_service_identity
from service_identity.pyopenssl import extract_patterns
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import serverFromString, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamServerEndpoint
from twisted.internet.ssl import Certificate, CertificateOptions, PrivateCertificate, optionsForClientTLS
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from txscales._connection import tcpEndpoint
from txscales.errors import (
    TlsCertificateExpiredError,
    TlsCertificateUntrustedError,
    TlsClientCertificateError,
    TlsError,
    TlsHostnameMismatchError,
)

_log = Logger()

CLIENT_TLS_OPTIONS = ("tls", "tlsCa", "tlsClientCert", "tlsClientKey", "tlsHostname")
"""The clients' TLS options, by name."""

TLS_SCHEME = "tls://"
"""A static destination whose servers are reached over TLS."""

CLIENT_TLS_PARAMETERS = [
    ["tls-ca", None, None, "Over TLS: trust this PEM CA certificate (default: the platform's CAs)."],
    ["tls-cert", None, None, "Over TLS: present this PEM client certificate (mutual TLS)."],
    ["tls-key", None, None, "The PEM key of --tls-cert (default: in the same file)."],
    ["tls-hostname", None, None, "Over TLS: the name the servers' certificates must be valid for (default: each host)."],
]
"""The command-line options of a client's TLS settings, as
C{twisted.python.usage.Options.optParameters}; L{clientTlsKeywords} reads
them."""

_CLIENT_TLS_KEYWORDS = (
    ("tls-ca", "tlsCa"),
    ("tls-cert", "tlsClientCert"),
    ("tls-key", "tlsClientKey"),
    ("tls-hostname", "tlsHostname"),
)


def clientTlsKeywords(options: Any) -> Dict[str, str]:
    """
    @param options: parsed command-line options with
        L{CLIENT_TLS_PARAMETERS}.
    @return: the client options (C{tlsCa}, C{tlsClientCert}, ...) of those
        that were given.
    """
    return {name: options[option] for option, name in _CLIENT_TLS_KEYWORDS if options.get(option)}

# OpenSSL's X509_V_ERR_CERT_NOT_YET_VALID and X509_V_ERR_CERT_HAS_EXPIRED.
_EXPIRED = (9, 10)

# Why the verification of a connection's peer failed: the first OpenSSL
# verify error, by connection.
_verifyErrors: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@implementer(IOpenSSLClientConnectionCreator)
class _RecordingCreator:
    """
    Twisted's client TLS settings, with a verify callback that also
    remembers why verifying the server's certificate failed, for
    L{tlsError}: OpenSSL's verdict, and the server's identity checked by
    service_identity as Twisted checks it.
    """

    def __init__(self, creator: Any, hostname: str) -> None:
        self._creator = creator
        if isIPAddress(hostname) or isIPv6Address(hostname):
            self._identity: Any = IPAddress_ID(hostname)
        else:
            self._identity = DNS_ID(hostname)

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """
        @return: the connection Twisted's settings make, verifying with
            L{_verify}.
        """
        connection = self._creator.clientConnectionForTLS(tlsProtocol)
        protocols = [tlsProtocol]

        def verify(connection: SSL.Connection, certificate: Any, errno: int, depth: int, ok: int) -> bool:
            return self._verify(protocols, connection, certificate, errno, depth, ok)

        connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, verify)
        return connection

    def _verify(self, protocols: list, connection: Any, certificate: Any, errno: int, depth: int, ok: int) -> bool:
        if not ok:
            _verifyErrors.setdefault(connection, errno)
            return False
        if depth != 0 or not protocols:
            return True
        tlsProtocol = protocols.pop()
        try:
            verify_service_identity(extract_patterns(certificate), [self._identity], [])
        except VerificationError:
            tlsProtocol.failVerification(Failure())
            return False
        except BaseException:
            # An exception raised into OpenSSL's callback is lost: log it
            # here, and refuse the certificate that caused it.
            _log.failure("while verifying the certificate of {identity!r}", identity=self._identity)
            return False
        return True


def clientCreator(
    hostname: str,
    ca: Any = None,
    clientCert: Optional[str] = None,
    clientKey: Optional[str] = None,
) -> Any:
    """
    Client TLS settings for one server.

    @param hostname: the name the server's certificate must be valid for
        (a DNS name or an IP address).
    @param ca: the path of a PEM file of the CA certificate to trust, or a
        C{twisted.internet.ssl.Certificate}; None trusts the platform's CAs.
    @param clientCert: the path of a PEM client certificate, for servers
        that require one (mutual TLS); its key is in C{clientKey}, or in
        the same file.
    @param clientKey: the path of the PEM key of C{clientCert}.
    @return: an C{IOpenSSLClientConnectionCreator}.
    """
    if isinstance(ca, str):
        ca = Certificate.loadPEM(_read(ca))
    client = None
    if clientCert is not None:
        pem = _read(clientCert)
        if clientKey is not None:
            pem = _read(clientKey) + b"\n" + pem
        client = PrivateCertificate.loadPEM(pem)
    return _RecordingCreator(optionsForClientTLS(hostname, trustRoot=ca, clientCertificate=client), hostname)


def clientTls(dest: str, options: Dict[str, Any]) -> Tuple[str, Optional[Callable[[str], Any]]]:
    """
    Take a client's TLS options out of C{options}.

    @param dest: the destination; C{tls://host:port,...} means
        C{tcp://host:port,...} with C{tls=True}.
    @param options: the client's options; C{tls} (True, or an
        C{IOpenSSLClientConnectionCreator} used for every server),
        C{tlsCa}, C{tlsClientCert}, C{tlsClientKey} and C{tlsHostname} (see
        L{clientCreator}) are removed from it.
    @return: the destination to resolve, and a callable giving the
        C{IOpenSSLClientConnectionCreator} for a server's host (None
        without TLS).
    @raise TypeError: for TLS settings without TLS.
    """
    settings = {name: options.pop(name) for name in CLIENT_TLS_OPTIONS if name in options}
    tls = settings.pop("tls", False)
    if dest.startswith(TLS_SCHEME):
        dest = "tcp://" + dest[len(TLS_SCHEME):]
        tls = tls or True
    if not tls:
        if settings:
            raise TypeError("%s need tls=True or a tls:// destination" % (", ".join(sorted(settings)),))
        return dest, None
    if IOpenSSLClientConnectionCreator.providedBy(tls):
        if settings:
            raise TypeError("tls= is a connection creator: %s do not apply" % (", ".join(sorted(settings)),))
        creatorFor: Callable[[str], Any] = lambda host: tls
    else:
        creators: Dict[str, Any] = {}
        hostname = settings.get("tlsHostname")

        def creatorFor(host: str) -> Any:
            name = hostname or host
            if name not in creators:
                creators[name] = clientCreator(
                    name, settings.get("tlsCa"), settings.get("tlsClientCert"), settings.get("tlsClientKey")
                )
            return creators[name]

    return dest, creatorFor


def tlsEndpointFactory(
    creatorFor: Callable[[str], Any], endpointFactory: Optional[Callable[[Any, str, int, float], Any]] = None
) -> Callable[[Any, str, int, float], Any]:
    """
    @param creatorFor: gives the C{IOpenSSLClientConnectionCreator} of a
        host.
    @param endpointFactory: makes the endpoints to wrap (default: TCP).
    @return: an endpoint factory whose endpoints speak TLS from the first
        byte.
    """

    inner = endpointFactory or tcpEndpoint

    def factory(reactor: Any, host: str, port: int, timeout: float) -> Any:
        return wrapClientTLS(creatorFor(host), inner(reactor, host, port, timeout))

    return factory


def serverOptions(cert: str, key: Optional[str] = None, ca: Optional[str] = None) -> CertificateOptions:
    """
    Server TLS settings.

    @param cert: the path of the server's PEM certificate (followed by any
        intermediate certificates).
    @param key: the path of its PEM key (default: in C{cert}).
    @param ca: the path of a PEM file of CA certificates; when given,
        clients must present a certificate signed by one of them (mutual
        TLS).
    @return: C{CertificateOptions} for a TLS server.
    """
    certPem = _read(cert)
    keyPem = _read(key) if key is not None else certPem
    certificate = PrivateCertificate.loadPEM(keyPem + b"\n" + certPem)
    chain = [Certificate.loadPEM(p).original for p in _splitPem(certPem)[1:]]
    kwargs: Dict[str, Any] = {}
    if ca is not None:
        kwargs = dict(verify=True, caCerts=[Certificate.loadPEM(p).original for p in _splitPem(_read(ca))])
    return CertificateOptions(
        privateKey=certificate.privateKey.original,
        certificate=certificate.original,
        extraCertChain=chain,
        **kwargs,
    )


def _splitPem(pem: bytes) -> list:
    end = b"-----END CERTIFICATE-----"
    return [p.strip() + b"\n" + end + b"\n" for p in pem.split(end) if b"-----BEGIN CERTIFICATE-----" in p]


@implementer(IStreamServerEndpoint)
class TlsServerEndpoint:
    """
    A server endpoint that speaks TLS over another one (TCP, UNIX, ...).
    """

    def __init__(self, endpoint: Any, options: Any) -> None:
        """
        @param endpoint: the C{IStreamServerEndpoint} to listen on.
        @param options: the server's TLS settings (L{serverOptions}).
        """
        self._endpoint = endpoint
        self._options = options

    def listen(self, factory: Any) -> Any:
        """
        Listen, wrapping each connection of C{factory} in TLS.
        """
        return self._endpoint.listen(TLSMemoryBIOFactory(self._options, False, factory))


def tlsError(
    reason: Any, transport: Any = None, handshakeDone: bool = False, where: str = "the server"
) -> Optional[TlsError]:
    """
    Say why a connection failed, when a TLS handshake is why.

    @param reason: the C{Failure} (or exception) the connection was lost
        with.
    @param transport: its transport, whose C{getHandle()} gives the TLS
        connection, when it has one.
    @param handshakeDone: whether this side finished its handshake; then
        only a refused certificate counts (with TLS 1.3 the server refuses
        a client certificate after the client's handshake is done, and
        before reading any request), not another TLS error, which may come
        after requests were sent.
    @param where: the peer, for the message.
    @return: a L{TlsError} subclass instance, or None when the failure is
        not about a TLS handshake.
    """
    value = reason.value if isinstance(reason, Failure) else reason
    if isinstance(value, TlsError):
        return value
    if isinstance(value, (VerificationError, CertificateError)):
        return TlsHostnameMismatchError(
            "%s's certificate is not valid for its name (%s); the request was not sent" % (where, value)
        )
    if not isinstance(value, SSL.Error):
        return None
    text = str(value)
    errno = None
    if transport is not None:
        try:
            errno = _verifyErrors.get(transport.getHandle())
        except (AttributeError, TypeError):
            pass
    if errno in _EXPIRED:
        return TlsCertificateExpiredError(
            "%s's certificate has expired or is not valid yet; the request was not sent" % (where,)
        )
    if errno is not None or "certificate verify failed" in text:
        return TlsCertificateUntrustedError(
            "%s's certificate is not signed by a trusted CA (%s); the request was not sent" % (where, text)
        )
    if "certificate required" in text or "unknown ca" in text or "bad certificate" in text:
        return TlsClientCertificateError(
            "%s refused the client certificate, or its absence (%s); the request was not sent" % (where, text)
        )
    if handshakeDone:
        return None
    return TlsError("TLS with %s failed (%s); the request was not sent" % (where, text))


def opportunisticLevel(level: Any) -> bytes:
    """
    @param level: a Mux opportunistic TLS level: C{"off"} (or None),
        C{"desired"} or C{"required"}, as text or bytes.
    @return: it as the bytes of the C{tls} header.
    @raise ValueError: for another value.
    """
    if level is None:
        return b"off"
    value = level.encode("ascii") if isinstance(level, str) else level
    if value not in (b"off", b"desired", b"required"):
        raise ValueError("opportunisticTls must be off, desired or required, not %r" % (level,))
    return value


def serverEndpoint(reactor: Any, listen: Any, tls: Any) -> Any:
    """
    @param listen: a Twisted server endpoint string or endpoint.
    @param tls: the server's TLS settings (L{serverOptions}), or None.
    @return: C{listen} itself without C{tls}, else a L{TlsServerEndpoint}
        over it.
    """
    if tls is None:
        return listen
    if isinstance(listen, str):
        listen = serverFromString(reactor, listen)
    return TlsServerEndpoint(listen, tls)
