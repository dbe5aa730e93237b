"""OpenSSL defaults a client could otherwise drive (own sweep of issue #19): the gateway's TLS
context sets its own floor instead of inheriting the system's openssl.cnf. With a lax system
configuration (security level 0, TLS 1.0 allowed) a client must still not get SHA-1
signatures or TLS below 1.2."""

import os
import subprocess

import pytest

import moat_harness as h

LAX_CNF = """openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
CipherString = DEFAULT@SECLEVEL=0
MinProtocol = TLSv1
"""


@pytest.fixture
def lax_moat(moat_factory, tmp_path):
    cnf = tmp_path / "lax-openssl.cnf"
    cnf.write_text(LAX_CNF)
    m = moat_factory(start=False)
    m.env = {"OPENSSL_CONF": str(cnf)}
    return m.start()


def _s_client(moat, certs, *args):
    # The client itself runs at level 0 so that it offers what is asked of it.
    env = dict(os.environ, OPENSSL_CONF="/dev/null")
    p = subprocess.run(
        ["openssl", "s_client", "-connect", "%s:%d" % (h.HOST, moat.port), "-cert",
         certs.path("device1.pem"), "-key", certs.path("device1.key"), "-CAfile", certs.ca,
         "-servername", "localhost"] + list(args),
        stdin=subprocess.DEVNULL, capture_output=True, timeout=30, env=env)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def test_sha1_only_signature_algorithms_refused_under_lax_system_config(lax_moat, certs):
    rc, out = _s_client(lax_moat, certs, "-tls1_2", "-sigalgs", "ECDSA+SHA1",
                        "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0, "a SHA-1-only client was served:\n" + out[-2000:]
    # Control: the same client with SHA-256 is served.
    rc, out = _s_client(lax_moat, certs, "-tls1_2", "-sigalgs", "ECDSA+SHA256")
    assert rc == 0, out[-2000:]


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_tls_below_1_2_refused_under_lax_system_config(lax_moat, certs, version):
    rc, out = _s_client(lax_moat, certs, version, "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0, "TLS below 1.2 was served:\n" + out[-2000:]
