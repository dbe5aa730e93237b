"""Attack round: ten addresses blind the audit log for everyone (18.5 fixed one address).

The per-address share is 1/10 of `audit.max_events_per_second`, and the quarter "reserved for
auth, ban, authz, reload and anomaly events" is reserved only against the other kinds:
`authz_denied` is itself a reserved kind, and any authenticated device produces it at will
(a publish to a topic it may not use). Ten source addresses each spending their share on
`authz_denied` use the whole budget, reserved quarter included, every second: the security
events of every other address (its denials, auth failures, bans) are no longer written, only
counted in per-address summaries."""

import socket
import threading
import time

import moat_harness as h
import mqtt_wire as w
import sec_util as u


def _wire_from(moat, certs, source_ip, cert="device1"):
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.settimeout(10)
    raw.bind((source_ip, 0))
    raw.connect((h.HOST, moat.port))
    c = w.WireClient.__new__(w.WireClient)
    c.version, c.timeout, c.buf = 4, 10.0, bytearray()
    c.sock = certs.context(cert).wrap_socket(raw, server_hostname="localhost")
    return c


def test_ten_addresses_cannot_blind_the_audit_log_for_others(moat_factory, certs, broker):
    moat = moat_factory({
        "audit": {"max_events_per_second": 100},
        "policy": {"default_roles": ["tester"],
                   "roles": {"tester": {"publish": ["ok/#"], "subscribe": ["#"]}}}})
    flooders = []
    for i in range(10):
        c = _wire_from(moat, certs, "127.0.0.%d" % (110 + i))
        assert c.connect(u.unique("flood-%d" % i)) == 0
        flooders.append(c)
    stop = time.monotonic() + 3.0  # bounded: 3 s of 10 x ~200 small denied publishes/s

    def flood(c):
        burst = b"".join(w.publish_packet("no/x", b"") for _ in range(20))
        while time.monotonic() < stop:
            c.send(burst)
            time.sleep(0.1)

    threads = [threading.Thread(target=flood, args=(c,)) for c in flooders]
    for t in threads:
        t.start()
    victim = _wire_from(moat, certs, "127.0.0.130", cert="device2")
    assert victim.connect(u.unique("victim")) == 0
    time.sleep(0.5)
    # The victim address produces a handful of security events, spread over two seconds.
    marks = []
    for i in range(5):
        topic = "secret/victim-%d" % i
        marks.append(topic)
        victim.send(w.publish_packet(topic, b""))
        time.sleep(0.4)
    for t in threads:
        t.join()
    time.sleep(1.2)  # the window closes and its summaries are written
    events = moat.audit_events("authz_denied")
    logged = [e.get("topic") for e in events if e.get("topic") in marks]
    for c in flooders + [victim]:
        c.close()
    assert logged, ("none of the victim's %d authz_denied events was written while ten other "
                    "addresses flooded denials (%d authz_denied lines in all)"
                    % (len(marks), len(events)))
