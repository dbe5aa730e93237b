"""Values forwarded to the broker must be proven (#17.4): with backend.credentials:
passthrough the broker grants rights by the CONNECT username, so a username that no password
proved must be the identity the certificate proved."""

import pytest

import sec_util as u
from moat_harness import V311, V5


def _passthrough(moat_factory):
    return moat_factory({"backend": {"credentials": "passthrough"},
                         "auth": {"methods": ["certificate"]}})


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_passthrough_refuses_unproven_foreign_username(moat_factory, broker, version):
    moat = _passthrough(moat_factory)
    cid = u.unique("pt-forged")
    c = moat.wire(cert="device1", version=version)
    code = c.connect(cid, username="ops-console")
    c.close()
    assert code == (0x86 if version == V5 else 0x04), \
        "certificate device1 reached the broker as user ops-console (CONNACK %#x)" % code
    assert ("as %s " % cid) not in broker.log()
    moat.wait_audit(lambda e: e.get("event") == "auth_failure" and e.get("client_id") == cid,
                    message="auth_failure audit")


def test_passthrough_forwards_the_proven_name(moat_factory, broker):
    moat = _passthrough(moat_factory)
    cid = u.unique("pt-own")
    c = moat.wire(cert="device1", version=V5)
    assert c.connect(cid, username="device1") == 0
    broker.wait_log(r"New client connected .* as %s .*u'device1'" % cid)
    c.close()
    cid2 = u.unique("pt-none")
    c2 = moat.wire(cert="device1", version=V5)
    assert c2.connect(cid2) == 0
    c2.close()
