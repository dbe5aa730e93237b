#!/usr/bin/env python3
"""Generates a fleet of device identities for `moat-bench handshake --fleet`.

    gen_fleet.py CERTDIR COUNT OUT.pem

Each device gets its OWN P-256 key and a certificate (CN=fleet-NNNNN, EKU clientAuth) signed
by CERTDIR/ca.pem + ca.key (tests/certs/gen_certs.sh): distinct chains AND distinct keys, so no
cache on the server (chain verification, key parsing) can help a first connection. OUT.pem
holds, per device, its certificate followed by its private key.

Cached: when OUT.pem already holds at least COUNT devices issued by that same CA (recorded in
OUT.pem.ca, the CA certificate's SHA-256), nothing is generated. ~1,000 devices per second.
"""

import datetime
import hashlib
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def main():
    if len(sys.argv) != 4:
        raise SystemExit("usage: gen_fleet.py CERTDIR COUNT OUT.pem")
    certdir, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ca_pem = open(os.path.join(certdir, "ca.pem"), "rb").read()
    ca_id = "%s %d\n" % (hashlib.sha256(ca_pem).hexdigest(), count)
    stamp = out + ".ca"
    if os.path.exists(out) and os.path.exists(stamp):
        have = open(stamp).read().split()
        if len(have) == 2 and have[0] == ca_id.split()[0] and int(have[1]) >= count:
            return
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(
        open(os.path.join(certdir, "ca.key"), "rb").read(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(ca.public_key())
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    chunks = []
    for i in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Moat"),
                                         x509.NameAttribute(NameOID.COMMON_NAME,
                                                            "fleet-%05d" % i)]))
                .issuer_name(ca.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .add_extension(aki, critical=False)
                .sign(ca_key, hashes.SHA256()))
        chunks.append(cert.public_bytes(serialization.Encoding.PEM))
        chunks.append(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"".join(chunks))
    os.replace(tmp, out)
    with open(stamp, "w") as f:
        f.write(ca_id)


if __name__ == "__main__":
    main()
