"""Drop-in tests (#20): the same test runs against Mosquitto's own TLS listener (the reference:
what a fleet gets from the bare broker) and then through Moat over TLS in front of a plain
Mosquitto. A target is anything with `port`, `tls`, `certs`, `dir` (what the client helpers of
moat_harness and js_harness use), plus `broker` (whose log tells what the broker saw) and
`kind` ("mosquitto" or "moat").

Clients: paho (MQTT 3.1, 3.1.1, 5), libmosquitto (mosquitto_pub / mosquitto_sub) and MQTT.js
(js_harness), each behind one small adapter so a feature test is written once."""

import os
import queue
import re
import signal
import ssl
import subprocess
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import moat_harness as h

# The deny_subscribe branch of the issue (#20.2): paho's interop suite names it so.
DENIED = "test/nosubscribe"

# Moat's policy: everything, except reading the denied branch.
FLEET_POLICY = {
    "policy": {
        "default_roles": ["fleet"],
        "roles": {"fleet": {"publish": ["#"], "subscribe": ["#"],
                            "deny_subscribe": [DENIED]}},
    },
}

# The same read rights as Mosquitto ACL lines (identity = certificate CN = username).
# Mosquitto's `deny` also refuses writing, so the publisher of the tests is device2.
FLEET_ACL = ("user device1\ntopic readwrite #\ntopic deny %s\n\n"
             "user device2\ntopic readwrite #\n" % DENIED)


class MosquittoTls:
    """Mosquitto's own TLS listener (mTLS, identity from the certificate CN, FLEET_ACL)."""

    kind = "mosquitto"
    tls = True

    def __init__(self, broker_factory, certs, workdir, acl=FLEET_ACL):
        os.makedirs(workdir, exist_ok=True)
        acl_path = os.path.join(workdir, "acl")
        with open(acl_path, "w") as f:
            f.write(acl)
        self.port = h.free_port()
        extra = "\n".join([
            "acl_file %s" % acl_path,
            "listener %d %s" % (self.port, h.HOST),
            "cafile %s" % certs.ca,
            "certfile %s" % certs.path("server.pem"),
            "keyfile %s" % certs.path("server.key"),
            "require_certificate true",
            "use_identity_as_username true",
        ]) + "\n"
        self.broker = broker_factory(extra=extra)
        self.certs = certs
        self.dir = workdir

    def stderr(self):
        return self.broker.log()[-4000:]


class ThroughMoat:
    """Moat (a `moat run` from moat_factory) in front of a plain Mosquitto."""

    kind = "moat"

    def __init__(self, moat, broker):
        self.moat = moat
        self.broker = broker
        self.port = moat.port
        self.tls = moat.tls
        self.certs = moat.certs
        self.dir = moat.dir

    def stderr(self):
        return self.moat.stderr()


def make_target(kind, broker_factory, broker, moat_factory, certs, tmp_path, overrides=None):
    if kind == "mosquitto":
        return MosquittoTls(broker_factory, certs, str(tmp_path / "tlsbroker"))
    moat = moat_factory(h.deep_merge(FLEET_POLICY, overrides or {}))
    return ThroughMoat(moat, broker)


# ---------------------------------------------------------------------------------------------
# Client adapters: connect(), subscribe(), publish(), messages(), drop(), disconnect()

_ids = iter(range(1, 1 << 30))


def new_client_id(prefix):
    return "%s-%d-%d" % (prefix, os.getpid(), next(_ids))


class Message:
    def __init__(self, topic, payload, retain=False, qos=0):
        self.topic, self.payload, self.retain, self.qos = topic, payload, bool(retain), qos

    def __repr__(self):
        return "Message(%r, %r, retain=%s)" % (self.topic, self.payload, self.retain)


class NotOffered(Exception):
    """The client library cannot express what the test needs (not a gateway failure)."""


class _BlockingHandshakeSocket(ssl.SSLSocket):
    def settimeout(self, value):
        super().settimeout(None if value == 0 else value)


class Paho:
    name = "paho-mqtt"
    versions = (3, 4, 5)

    def __init__(self, target, version, client_id=None, keepalive=60, clean=True, will=None,
                 cert="device1"):
        self.version = version
        self.client_id = client_id or new_client_id("paho")
        self.keepalive, self.clean = keepalive, clean
        proto = {3: paho.MQTTv31, 4: paho.MQTTv311, 5: paho.MQTTv5}[version]
        kw = {} if version == 5 else {"clean_session": clean}
        self.c = paho.Client(client_id=self.client_id, protocol=proto, **kw)
        cert_file, key_file = target.certs.client(cert)
        ctx = ssl.create_default_context(cafile=target.certs.ca)
        ctx.load_cert_chain(cert_file, key_file)
        # paho 1.6 runs the TLS handshake with the socket timeout set to the keepalive, so
        # keepalive 0 makes it non-blocking and the handshake fails on the client side
        # (SSLWantReadError), whatever the server: a client bug worked around here.
        ctx.sslsocket_class = _BlockingHandshakeSocket
        self.c.tls_set_context(ctx)
        if will:
            self.c.will_set(will["topic"], will["payload"], will.get("qos", 0),
                            will.get("retain", False))
        self.target = target
        self.q = queue.Queue()
        self.connack = queue.Queue()
        self.subacks = {}
        self.done = set()
        self.lock = threading.Lock()
        self.c.on_connect = lambda c, u, f, rc, p=None: self.connack.put(
            (getattr(rc, "value", rc), f.get("session present", 0)))
        self.c.on_message = lambda c, u, m: self.q.put(
            Message(m.topic, m.payload, m.retain, m.qos))
        self.c.on_subscribe = self._on_subscribe
        self.c.on_publish = self._on_publish

    def _on_subscribe(self, c, u, mid, granted, props=None):
        with self.lock:
            self.subacks[mid] = [getattr(g, "value", g) for g in granted]

    def _on_publish(self, c, u, mid):
        with self.lock:
            self.done.add(mid)

    def connect(self, timeout=10.0):
        """(CONNACK code, session present), or (None, None) when closed before a CONNACK."""
        if self.version == 5:
            props = Properties(PacketTypes.CONNECT)
            if not self.clean:
                props.SessionExpiryInterval = 3600
            self.c.connect("localhost", self.target.port, self.keepalive,
                           clean_start=self.clean, properties=props)
        else:
            self.c.connect("localhost", self.target.port, self.keepalive)
        self.c.loop_start()
        try:
            return self.connack.get(timeout=timeout)
        except queue.Empty:
            return None, None

    def subscribe(self, filt, qos=1, timeout=10.0):
        rc, mid = self.c.subscribe(filt, qos)
        assert rc == paho.MQTT_ERR_SUCCESS
        h.wait_until(lambda: mid in self.subacks, timeout, message="SUBACK")
        return self.subacks[mid]

    def publish(self, topic, payload, qos=0, retain=False, alias=None, timeout=10.0):
        props = None
        if alias is not None:
            if self.version != 5:
                raise NotOffered("topic aliases are MQTT 5")
            props = Properties(PacketTypes.PUBLISH)
            props.TopicAlias = alias
        info = self.c.publish(topic, payload, qos, retain, properties=props)
        if qos:
            h.wait_until(lambda: info.mid in self.done, timeout,
                         message="publish flow of mid %d" % info.mid)

    def messages(self, count, timeout=10.0):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            try:
                out.append(self.q.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                break
        return out

    def quiet(self, wait=0.5):
        """Messages arriving within `wait` (a bound on absence, not on speed)."""
        return self.messages(1 << 20, wait)

    def drop(self):
        """Abrupt close (no DISCONNECT): the will goes out."""
        self.c.loop_stop()
        try:
            self.c.socket().close()
        except Exception:
            pass

    def disconnect(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()


class MosquittoClients:
    """libmosquitto through its own command-line clients (mosquitto_pub, mosquitto_sub)."""

    name = "libmosquitto"
    versions = (3, 4, 5)
    VERSION_ARG = {3: "mqttv31", 4: "mqttv311", 5: "mqttv5"}

    @staticmethod
    def common(target, version, cert="device1"):
        c, k = target.certs.client(cert)
        return ["-h", "localhost", "-p", str(target.port), "-V",
                MosquittoClients.VERSION_ARG[version], "--cafile", target.certs.ca, "--cert",
                c, "--key", k]

    @staticmethod
    def pub(target, version, topic, payload, qos=0, retain=False, keepalive=None, extra=()):
        args = ["mosquitto_pub"] + MosquittoClients.common(target, version) + [
            "-t", topic, "-m", payload, "-q", str(qos)]
        if retain:
            args.append("-r")
        if keepalive is not None:
            if keepalive < 5:
                raise NotOffered("mosquitto_pub refuses a keepalive below 5 s")
            args += ["-k", str(keepalive)]
        r = subprocess.run(args + list(extra), capture_output=True, timeout=20)
        assert r.returncode == 0, "mosquitto_pub: %s" % r.stderr.decode(errors="replace")

    class Sub:
        """mosquitto_sub in the background; lines are `topic|retain|payload`."""

        def __init__(self, target, version, filt, count, qos=1, keepalive=None, client_id=None,
                     extra=(), wait=10):
            self.client_id = client_id or new_client_id("msub")
            args = ["mosquitto_sub"] + MosquittoClients.common(target, version) + [
                "-t", filt, "-q", str(qos), "-C", str(count), "-W", str(wait), "-i",
                self.client_id, "-F", "%t|%r|%p"]
            if keepalive is not None:
                if keepalive < 5:
                    raise NotOffered("mosquitto_sub refuses a keepalive below 5 s")
                args += ["-k", str(keepalive)]
            self.out_path = os.path.join(target.dir, self.client_id + ".out")
            self.out = open(self.out_path, "wb")
            self.proc = subprocess.Popen(args + list(extra), stdout=self.out,
                                         stderr=subprocess.PIPE)
            self.target = target

        def wait_subscribed(self, timeout=10.0):
            self.target.broker.wait_log(r"Received SUBSCRIBE from %s" %
                                        re.escape(self.client_id), timeout)
            # The SUBACK follows the log line; through Moat it crosses one more hop.
            time.sleep(0.2)

        def result(self, timeout=20):
            try:
                _, err = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                h.kill_process(self.proc)
                _, err = b"", b"timeout"
            self.out.close()
            with open(self.out_path, "rb") as f:
                lines = [l for l in f.read().decode(errors="replace").splitlines() if l]
            msgs = []
            for l in lines:
                t, r, p = l.split("|", 2)
                msgs.append(Message(t, p.encode(), r == "1"))
            return self.proc.returncode, msgs, err

        def kill(self):
            """SIGKILL: no DISCONNECT, the will goes out."""
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(5)

        def close(self):
            h.kill_process(self.proc)
            if not self.out.closed:
                self.out.close()


def ss_keepalive_timer(port, timeout=5.0):
    """True when some established TCP socket with local port `port` (Moat's accepted client
    sockets) runs a keepalive timer. Polled: while data is unacknowledged, ss shows the
    retransmission timer instead."""
    out = [""]

    def look():
        r = subprocess.run(["ss", "-tnoH", "state", "established", "( sport = :%d )" % port],
                           capture_output=True, text=True, timeout=10)
        out[0] = r.stdout
        return "timer:(keepalive" in r.stdout

    try:
        h.wait_until(look, timeout, interval=0.1, message="a TCP keepalive timer")
        return True, out[0]
    except AssertionError:
        return False, out[0]
