"""`moat import --from mosquitto.conf` (CONTRACT §1): equivalence proven by deliveries.

A realistic Mosquitto configuration (a certificate listener with use_identity_as_username, a
password listener, a broker-side loopback listener, an ACL file with user blocks, patterns
with %u and %c, deny lines and $SYS, options with no equivalent) is served twice:

  1. by Mosquitto alone, with its own TLS listeners and ACL;
  2. by Moat with the imported configuration, in front of a Mosquitto that has no ACL at
     all (so every refusal in phase 2 is Moat's).

The same clients subscribe to every topic of a matrix and publish on every topic; the sets
of (subscriber, topic, payload) delivered must be equal, and `moat explain` must agree with
every cell (delivered ⇔ publisher may publish and subscriber may subscribe).
"""

import os
import subprocess
import time

import yaml

import moat_harness as h
from moat_harness import V311, V5

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}

ACL = """\
# anonymous clients (allow_anonymous is false: these lines grant nobody anything)
topic read public/#

user alice
topic readwrite alice/#
topic deny alice/secret/#
topic read public/#

user bob
topic write public/#
topic read alice/#

user ops-console
topic read devices/#
topic read $SYS/broker/uptime
topic write devices/+/commands/#
topic deny devices/device2/commands/#

pattern write devices/%u/telemetry
pattern read devices/%u/commands/#
pattern readwrite clients/%c/#
"""

# identity -> how it connects: certificate name (cert listener) or password (password one)
CLIENTS = {
    "device1": {"cert": "device1"},
    "device2": {"cert": "device2"},
    "ops-console": {"cert": "operator1"},   # CN=ops-console
    "alice": {"password": PASSWORDS["alice"]},
    "bob": {"password": PASSWORDS["bob"]},
}

TOPICS = [
    "devices/device1/telemetry", "devices/device2/telemetry",
    "devices/device1/commands/reboot", "devices/device2/commands/reboot",
    "alice/notes", "alice/secret/key", "public/news", "bob/private",
] + ["clients/%s-c/state" % i for i in CLIENTS]


def _passwd(path):
    subprocess.run(["mosquitto_passwd", "-c", "-b", path, "alice", PASSWORDS["alice"]],
                   check=True, capture_output=True, timeout=30)
    subprocess.run(["mosquitto_passwd", "-b", path, "bob", PASSWORDS["bob"]],
                   check=True, capture_output=True, timeout=30)


def _mosquitto_conf(d, certs, cert_port, pw_port, local_port):
    lines = [
        "per_listener_settings false",
        "allow_anonymous false",
        "password_file %s/passwd" % d,
        "acl_file %s/acl" % d,
        "persistence false",
        "log_dest file %s/mosquitto.log" % d,
        "max_keepalive 600",
        "max_inflight_messages 50",
        "listener %d 127.0.0.1" % local_port,
        "listener %d 127.0.0.1" % cert_port,
        "cafile %s" % certs.ca,
        "certfile %s" % certs.path("server.pem"),
        "keyfile %s" % certs.path("server.key"),
        "require_certificate true",
        "use_identity_as_username true",
        "tls_version tlsv1.2",
        "listener %d 127.0.0.1" % pw_port,
        "certfile %s" % certs.path("server.pem"),
        "keyfile %s" % certs.path("server.key"),
    ]
    if os.geteuid() == 0:
        lines.append("user root")
    return "\n".join(lines) + "\n"


class _Endpoint:
    """What PahoClient needs to know of a server: its port, the PKI, TLS on."""

    def __init__(self, port, certs):
        self.port, self.certs, self.tls = port, certs, True


def _client(certs, ports, identity, version):
    spec = CLIENTS[identity]
    cid = identity + "-c"
    if "cert" in spec:
        return h.PahoClient(_Endpoint(ports["cert"], certs), version=version, cert=spec["cert"],
                            client_id=cid)
    return h.PahoClient(_Endpoint(ports["password"], certs), version=version, cert=None,
                        client_id=cid, username=identity, password=spec["password"])


def _run_matrix(certs, ports, version):
    """Every client subscribes to every topic, then publishes on every topic (QoS 1).
    Returns the set of (subscriber, topic, payload) delivered."""
    clients = {}
    try:
        for identity in CLIENTS:
            c = _client(certs, ports, identity, version)
            assert c.connect() == 0, "%s refused" % identity
            clients[identity] = c
        for c in clients.values():
            # One SUBSCRIBE per filter: a refused filter must not hide the others.
            for topic in TOPICS + ["devices/#", "alice/#", "$SYS/broker/uptime"]:
                c.subscribe(topic, qos=1)
        for identity, c in clients.items():
            for topic in TOPICS:
                c.publish(topic, ("%s|%s" % (identity, topic)).encode(), qos=1)
        got = set()
        quiet_since = time.monotonic()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 1.5:
            for identity, c in clients.items():
                m = c.get(timeout=0.05)
                while m is not None:
                    if not m.topic.startswith("$SYS"):
                        got.add((identity, m.topic, m.payload.decode()))
                    quiet_since = time.monotonic()
                    m = c.get(timeout=0)
        return got
    finally:
        for c in clients.values():
            c.close()


def _explain(config_path, identity, action, topic):
    r = subprocess.run([h.moat_bin(), "explain", "-c", config_path, "--identity", identity,
                        "--client-id", identity + "-c", action, topic],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode in (0, 3), r.stderr
    return r.returncode == 0


def test_import_delivers_what_mosquitto_delivered(tmp_path, certs, broker_factory):
    d = str(tmp_path)
    with open(os.path.join(d, "acl"), "w") as f:
        f.write(ACL)
    _passwd(os.path.join(d, "passwd"))
    ports = {"cert": h.free_port(), "password": h.free_port()}
    conf_path = os.path.join(d, "mosquitto.conf")
    with open(conf_path, "w") as f:
        f.write(_mosquitto_conf(d, certs, ports["cert"], ports["password"], h.free_port()))

    # Phase 1: Mosquitto alone, with its own TLS and ACL.
    alone = subprocess.Popen(["mosquitto", "-c", conf_path], stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(d, "mosquitto.err"), "ab"))
    try:
        h.wait_until(lambda: h.port_accepts("127.0.0.1", ports["cert"]), 15,
                     message="mosquitto alone to listen")
        baseline = {v: _run_matrix(certs, ports, v) for v in (V311, V5)}
    finally:
        h.kill_process(alone)
        alone.wait(10)

    # The import, as an operator runs it.
    r = subprocess.run([h.moat_bin(), "import", "--from", conf_path], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    imported = yaml.safe_load(r.stdout)
    assert "persistence" in r.stdout  # listed as not carried over, never dropped silently
    assert imported["policy"]["check_deliveries"] is True
    assert imported["backend"]["address"].startswith("127.0.0.1:")  # the loopback listener

    # Phase 2: Moat with the imported policy in front of a broker with no ACL of its own. Only
    # what a test must change: the broker's port, a free metrics port, the audit log.
    backend = broker_factory()
    imported["backend"]["address"] = "127.0.0.1:%d" % backend.port
    imported["metrics"] = {"bind": "127.0.0.1:%d" % h.free_port()}
    imported["audit"] = {"log": os.path.join(d, "audit.log")}
    moat_conf = os.path.join(d, "moat.yaml")
    with open(moat_conf, "w") as f:
        yaml.safe_dump(imported, f, sort_keys=False)
    check = subprocess.run([h.moat_bin(), "check", "-c", moat_conf], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    moat = subprocess.Popen([h.moat_bin(), "run", "-c", moat_conf], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(d, "moat.err"), "ab"))
    try:
        h.wait_until(lambda: h.port_accepts("127.0.0.1", ports["password"]), 15,
                     message="moat to listen")
        through_moat = {v: _run_matrix(certs, ports, v) for v in (V311, V5)}
    finally:
        h.kill_process(moat)
        moat.wait(10)

    for v in (V311, V5):
        missing = baseline[v] - through_moat[v]
        extra = through_moat[v] - baseline[v]
        assert not missing and not extra, (
            "MQTT %s: delivered by Mosquitto alone but not through Moat: %s; "
            "through Moat only: %s" % (v, sorted(missing), sorted(extra)))
    assert len(baseline[V311]) >= 10, "the matrix delivered (almost) nothing: %s" % baseline[V311]
    print("deliveries per version:", {v: len(s) for v, s in baseline.items()})

    # `moat explain` agrees with every cell of the matrix.
    may_publish = {(i, t): _explain(moat_conf, i, "publish", t) for i in CLIENTS for t in TOPICS}
    may_read = {(i, t): _explain(moat_conf, i, "subscribe", t) for i in CLIENTS for t in TOPICS}
    for pub in CLIENTS:
        for sub in CLIENTS:
            for t in TOPICS:
                delivered = (sub, t, "%s|%s" % (pub, t)) in baseline[V311]
                assert delivered == (may_publish[(pub, t)] and may_read[(sub, t)]), (
                    "explain disagrees: %s publishes %s, %s reads: delivered=%s"
                    % (pub, t, sub, delivered))


def test_import_errors_name_file_and_line(tmp_path):
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("listener 8883\nrequire_certificate maybe\n")
    r = subprocess.run([h.moat_bin(), "import", "--from", str(conf)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1
    assert "%s:2: require_certificate" % conf in r.stderr
    missing = tmp_path / "include.conf"
    missing.write_text("include_dir %s/nowhere\n" % tmp_path)
    r = subprocess.run([h.moat_bin(), "import", "--from", str(missing)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "%s:1: include_dir" % missing in r.stderr
