"""The soak's own throw-away PKI, made in-process with python3-cryptography (thousands of
device certificates in seconds; one openssl process per certificate would take minutes).

One CA signs the server certificate, every certificate-identity device (CN = identity) and
the CRL. The server certificate and the CRL are re-issued on every reload (file replacement
by rename, as a certificate manager does); revoking a device re-issues the CRL with its
serial."""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Moat Soak"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _usage(sign=False, cert_sign=False):
    return x509.KeyUsage(digital_signature=sign, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
                         decipher_only=False)


def _write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class Pki:
    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_name = _name("Moat Soak CA")
        self.ca_cert = (
            x509.CertificateBuilder().subject_name(self.ca_name).issuer_name(self.ca_name)
            .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(self.now - datetime.timedelta(hours=1))
            .not_valid_after(self.now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()),
                           critical=False)
            .sign(self.ca_key, hashes.SHA256()))
        self.ca = os.path.join(directory, "ca.pem")
        _write(self.ca, self.ca_cert.public_bytes(serialization.Encoding.PEM))
        self.server_key = ec.generate_private_key(ec.SECP256R1())
        self.server_cert = os.path.join(directory, "server.pem")
        self.server_key_path = os.path.join(directory, "server.key")
        _write(self.server_key_path, _key_pem(self.server_key))
        self.crl = os.path.join(directory, "ca.crl")
        self.crl_number = 0
        self.revoked = []
        self.serials = {}
        self.reissue_server()
        self.write_crl()

    def _leaf(self, cn, key, eku, san=None):
        b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.ca_name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(self.now - datetime.timedelta(hours=1))
             .not_valid_after(self.now + datetime.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(_usage(sign=True), critical=True)
             .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                            critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 self.ca_key.public_key()), critical=False))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(self.ca_key, hashes.SHA256())

    def reissue_server(self):
        """A fresh server certificate (new serial, same key: the pair stays consistent at
        every instant, whichever file Moat reads first)."""
        cert = self._leaf("localhost", self.server_key, ExtendedKeyUsageOID.SERVER_AUTH,
                          [x509.DNSName("localhost"),
                           x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        _write(self.server_cert, cert.public_bytes(serialization.Encoding.PEM))

    def client(self, cn):
        """Path of a PEM file holding CN's key and certificate (one file per device)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._leaf(cn, key, ExtendedKeyUsageOID.CLIENT_AUTH)
        self.serials[cn] = cert.serial_number
        path = os.path.join(self.dir, "c-%s.pem" % cn)
        _write(path, _key_pem(key) + cert.public_bytes(serialization.Encoding.PEM))
        return path

    def revoke(self, cn):
        self.revoked.append(self.serials[cn])
        self.write_crl()

    def write_crl(self):
        self.crl_number += 1
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.ca_name)
             .last_update(now - datetime.timedelta(minutes=5))
             .next_update(now + datetime.timedelta(days=7))
             .add_extension(x509.CRLNumber(self.crl_number), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 self.ca_key.public_key()), critical=False))
        for serial in self.revoked:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now)
                .build())
        crl = b.sign(self.ca_key, hashes.SHA256())
        _write(self.crl, crl.public_bytes(serialization.Encoding.PEM))
