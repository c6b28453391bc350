"""
A private certificate authority and certificates signed by it, made fresh
for TLS tests: a server certificate for 127.0.0.1 and localhost, a client
certificate, an expired server certificate and one for another host name;
and a mixin starting TLS servers and clients with them.
"""

import datetime
import ipaddress
import os
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.interfaces import ISSLTransport

from txscales.demo.gen import TestService
from txscales.demo.handler import TestServiceHandler
from txscales.thrift import Thrift, serverTlsOptions
from txscales.thriftmux import ThriftMux

_DAY = datetime.timedelta(days=1)

LOCAL = "tcp:0:interface=127.0.0.1"

# Failing handshakes are not retried elsewhere: there is one server, and
# the error must reach the caller as itself.
ONCE = dict(timeout=10, maxRequeues=0, failureAccrual=False, connectTimeout=10)


def _name(common):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class CertificateAuthority:
    """
    A CA and the certificates it signed, each written to L{directory}.

    @ivar caPem: the CA certificate, PEM bytes.
    @ivar certPem: the server certificate, PEM bytes.
    @ivar keyPem: the server key, PEM bytes.
    @ivar directory: a folder holding C{ca.pem}, C{server.pem},
        C{server.key}, C{client.pem}, C{client.key}, C{expired.pem},
        C{expired.key}, C{other.pem} and C{other.key} (a server certificate
        for C{other.example} only).
    """

    def __init__(self, common="txscales test CA"):
        now = datetime.datetime.now(datetime.timezone.utc)
        self._now = now
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._ca = (
            x509.CertificateBuilder()
            .subject_name(_name(common))
            .issuer_name(_name(common))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 2 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self._key, hashes.SHA256())
        )
        self.caPem = self._ca.public_bytes(serialization.Encoding.PEM)
        self.directory = tempfile.mkdtemp(prefix="txscales-tls-")
        self._write("ca.pem", self.caPem)
        self.certPem, self.keyPem = self.issue("server", "localhost", ["localhost", "127.0.0.1"])
        self.issue("client", "txscales test client", [])
        self.issue("expired", "localhost", ["localhost", "127.0.0.1"], expired=True)
        self.issue("other", "other.example", ["other.example"])

    def _write(self, name, data):
        with open(os.path.join(self.directory, name), "wb") as f:
            f.write(data)

    def path(self, name):
        """
        @return: the path of file C{name} in L{directory}.
        """
        return os.path.join(self.directory, name)

    def issue(self, prefix, common, hosts, expired=False):
        """
        Sign a certificate and write it as C{prefix.pem} and its key as
        C{prefix.key}.

        @param hosts: DNS names and IP addresses it is valid for.
        @param expired: whether it expired yesterday.
        @return: (certificate PEM, key PEM).
        """
        key = ec.generate_private_key(ec.SECP256R1())
        start, end = (self._now - 3 * _DAY, self._now - _DAY) if expired else (self._now - _DAY, self._now + 2 * _DAY)
        names = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common))
            .issuer_name(self._ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        certPem, keyPem = cert.public_bytes(serialization.Encoding.PEM), _pem(key)
        self._write(prefix + ".pem", certPem)
        self._write(prefix + ".key", keyPem)
        return certPem, keyPem

    def trustRoot(self):
        """
        @return: the CA as a C{twisted.internet.ssl.Certificate}.
        """
        from twisted.internet.ssl import Certificate

        return Certificate.loadPEM(self.caPem)

    def serverOptions(self):
        """
        @return: Twisted TLS server options with the server certificate.
        """
        from twisted.internet.ssl import PrivateCertificate

        return PrivateCertificate.loadPEM(self.keyPem + self.certPem).options()


class Authorities:
    """
    One private CA for the whole module, and another one nobody trusts.
    """

    authority = None
    stranger = None

    @classmethod
    def get(cls):
        if cls.authority is None:
            cls.authority = CertificateAuthority()
            cls.stranger = CertificateAuthority("untrusted test CA")
        return cls.authority, cls.stranger


class TlsServers:
    """
    Start ThriftMux and plain Thrift servers and clients on 127.0.0.1.
    """

    protocol = "thriftmux"

    @property
    def facade(self):
        return ThriftMux if self.protocol == "thriftmux" else Thrift

    def setUp(self):
        self.ca, self.stranger = Authorities.get()

    def serverTls(self, cert="server", clientCa=False):
        return serverTlsOptions(
            self.ca.path(cert + ".pem"), self.ca.path(cert + ".key"), self.ca.path("ca.pem") if clientCa else None
        )

    @inlineCallbacks
    def serve(self, listen=LOCAL, **options):
        server = self.facade.newServer(
            TestService.Iface, TestServiceHandler(reactor), listen, reactor=reactor, stats=False, **options
        )
        server.startService()
        self.addCleanup(server.stopService)
        port = yield server.listening
        self.server = server
        return port.getHost().port

    def client(self, dest, **options):
        client = self.facade.newClient(TestService.Iface, dest, stats=False, **dict(ONCE, **options))
        self.addCleanup(client.close)
        return client

    def trusting(self, port, **options):
        options.setdefault("tlsCa", self.ca.path("ca.pem"))
        return self.client("tls://127.0.0.1:%d" % (port,), **options)

    def withClientCert(self, authority=None):
        authority = authority or self.ca
        return dict(tlsClientCert=authority.path("client.pem"), tlsClientKey=authority.path("client.key"))

    def assertServerSpokeTls(self):
        protocols = list(self.server.factory.protocols)
        self.assertTrue(protocols)
        self.assertTrue(all(ISSLTransport.providedBy(p.transport) for p in protocols))
