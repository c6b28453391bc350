"""
A private certificate authority and a server certificate for 127.0.0.1 and
localhost, made fresh for TLS tests.
"""

import datetime
import ipaddress
import os
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


class CertificateAuthority:
    """
    A CA and one server certificate signed by it.

    @ivar caPem: the CA certificate, PEM bytes.
    @ivar certPem: the server certificate, PEM bytes.
    @ivar keyPem: the server key, PEM bytes.
    @ivar directory: a folder holding C{ca.pem}, C{server.pem}, C{server.key}.
    """

    def __init__(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        caKey = ec.generate_private_key(ec.SECP256R1())
        ca = (
            x509.CertificateBuilder()
            .subject_name(_name("txscales test CA"))
            .issuer_name(_name("txscales test CA"))
            .public_key(caKey.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(caKey, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("localhost"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .sign(caKey, hashes.SHA256())
        )
        self.caPem = ca.public_bytes(serialization.Encoding.PEM)
        self.certPem = cert.public_bytes(serialization.Encoding.PEM)
        self.keyPem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.directory = tempfile.mkdtemp(prefix="txscales-tls-")
        for name, data in [("ca.pem", self.caPem), ("server.pem", self.certPem), ("server.key", self.keyPem)]:
            with open(os.path.join(self.directory, name), "wb") as f:
                f.write(data)

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
