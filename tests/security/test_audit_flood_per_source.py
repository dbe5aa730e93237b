"""Finding 18.5: the audit budget (`max_events_per_second`) was global, so one address
flooding connections blinded the log to everybody else: another address's `auth_failure`
vanished into an anonymous `audit_suppressed` count. Floods are now summarised per source
and auth / ban / authz / reload events keep a reserved share."""

import socket
import struct
import subprocess
import threading
import time

import moat_harness as h

V5 = 5
FLOODER = "127.0.0.2"
MAX_FLOOD_CONNECTIONS = 20000  # bounded in count …
MAX_FLOOD_SECONDS = 30         # … and in time


def _passwd(tmp_path, user, password):
    path = str(tmp_path / "passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", path, user, password], check=True,
                   capture_output=True, timeout=10)
    return path


class Flood(threading.Thread):
    """Plain TCP connections from FLOODER to the MQTT port, each reset at once."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.count = 0

    def run(self):
        deadline = time.monotonic() + MAX_FLOOD_SECONDS
        while (not self.stop.is_set() and self.count < MAX_FLOOD_CONNECTIONS
               and time.monotonic() < deadline):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            try:
                s.bind((FLOODER, 0))
                s.settimeout(2)
                s.connect((h.HOST, self.port))
            except OSError:
                pass
            finally:
                s.close()
            self.count += 1


def test_one_address_flood_does_not_hide_another_address_auth_failures(moat_factory, tmp_path):
    pw = _passwd(tmp_path, "device1", "right-one")
    moat = moat_factory({
        "auth": {"methods": ["certificate", "password"], "password_file": pw},
        # Every flood connection past the first few is refused and audited (rate_limited).
        "limits": {"connection_rate_per_ip": "20/s"},
        "anomaly": {"auth_failures": 1000},
        "audit": {"max_events_per_second": 100},
    })
    flood = Flood(moat.port)
    flood.start()
    try:
        # The flood is under way: the flooder's events are being cut.
        h.wait_until(lambda: flood.count > 500, 20, message="the flood to start")
        cids = []
        for i in range(5):
            cid = "victim-%d" % i
            c = moat.wire(version=V5)
            try:
                assert c.connect(cid, username="device1", password="wrong") == 0x86
            finally:
                c.close()
            cids.append(cid)
            time.sleep(0.3)
    finally:
        flood.stop.set()
        flood.join(MAX_FLOOD_SECONDS + 5)
    assert flood.count > 500
    # Every auth_failure of the other address is in the log, with its own address.
    for cid in cids:
        moat.wait_audit(lambda e, cid=cid: e.get("event") == "auth_failure"
                        and e.get("client_id") == cid, timeout=10,
                        message="auth_failure of %s" % cid)
    # The flood itself is summarised per source: one event per second naming the address.
    ev = moat.wait_audit(lambda e: e.get("event") == "audit_suppressed"
                         and e.get("remote") == FLOODER, timeout=10,
                         message="a per-source audit_suppressed for the flooder")
    assert ev[0]["count"] > 0
    assert "rate_limited" in ev[0].get("events", "")
    # And the flooder's own logged events stay within its share.
    per_second = {}
    for e in moat.audit_events("rate_limited"):
        if e.get("remote", "").split(":")[0] == FLOODER:
            per_second[e["ts"][:19]] = per_second.get(e["ts"][:19], 0) + 1
    assert per_second
    assert max(per_second.values()) <= 2 * 10  # its share is 10/s; a second may straddle two windows
