"""Processes and clients for the integration suite: a real Mosquitto, a real `moat run`, real
TLS clients (paho, mosquitto_pub/sub, the wire client). Every wait is bounded; every process
started here is killed at teardown even when the test fails."""

import copy
import functools
import http.client
import json
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import paho.mqtt.client as paho
import yaml

import mqtt_wire

HOST = "127.0.0.1"
SOURCE_DIR = os.environ.get(
    "MOAT_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))


def moat_bin():
    path = os.environ.get("MOAT_BIN")
    if not path:
        for candidate in ("build-it", "build", "build/release", "build-debug"):
            p = os.path.join(SOURCE_DIR, candidate, "gateway", "cli", "moat")
            if os.access(p, os.X_OK):
                return p
        raise RuntimeError("set MOAT_BIN to the moat binary")
    return path


@functools.lru_cache(maxsize=None)
def moat_is_asan():
    """True when the binary is built with AddressSanitizer (its quarantine keeps freed memory
    resident, which memory-bound tests must account for). GCC links the runtime as libasan.so,
    clang statically: both leave the `__asan_init` symbol's name in the binary."""
    with open(moat_bin(), "rb") as f:
        return b"__asan_init" in f.read()


def limit_asan_quarantine(moat):
    """For memory-bound tests: under ASan, keep the quarantine small so RSS measures what the
    gateway holds, not the freed buffers the sanitizer keeps resident (up to 256 MiB).
    Call before moat.start()."""
    if moat_is_asan():
        opts = [o for o in (os.environ.get("ASAN_OPTIONS", ""),
                            "quarantine_size_mb=4:thread_local_quarantine_size_kb=64") if o]
        moat.env = dict(moat.env or {}, ASAN_OPTIONS=":".join(opts))


_handed_out = set()


def free_port(host=HOST):
    """A port nobody listens on now, and not one this process handed out before.

    The kernel may give the same ephemeral port to two consecutive bind(0)
    calls once the first socket is closed, so a listener and a metrics port
    chosen back to back could clash; remembering what was handed out avoids it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def port_accepts(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect((host, port))
            return True
        except OSError:
            return False


def wait_until(predicate, timeout=5.0, interval=0.02, message="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, message))
        time.sleep(interval)


def kill_process(proc):
    if proc is not None and proc.poll() is None:
        proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


def deep_merge(base, over):
    """Dicts merge recursively, anything else replaces; a None value deletes the key."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# ---------------------------------------------------------------------------------------------
# Certificates

class Certs:
    def __init__(self, directory):
        self.dir = directory
        script = os.path.join(SOURCE_DIR, "tests", "certs", "gen_certs.sh")
        subprocess.run(["bash", script, directory], check=True, timeout=60)

    def path(self, name):
        return os.path.join(self.dir, name)

    @property
    def ca(self):
        return self.path("ca.pem")

    def client(self, name):
        """(cert, key) of a client certificate set."""
        cert = self.path(name + "-chain.pem") if name == "device3" else self.path(name + ".pem")
        return cert, self.path(name + ".key")

    def context(self, cert=None, verify=True):
        """An ssl.SSLContext trusting ca.pem, presenting NAME's certificate when cert=NAME."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if verify:
            ctx.load_verify_locations(self.ca)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cert:
            ctx.load_cert_chain(*self.client(cert))
        return ctx


# ---------------------------------------------------------------------------------------------
# Mosquitto

class Mosquitto:
    def __init__(self, workdir, password_file=None, acl_file=None, extra=""):
        self.dir = workdir
        self.port = free_port()
        self.conf = os.path.join(workdir, "mosquitto.conf")
        self.log_path = os.path.join(workdir, "mosquitto.log")
        self.proc = None
        lines = [
            "listener %d %s" % (self.port, HOST),
            "allow_anonymous %s" % ("false" if password_file else "true"),
            "persistence false",
            "log_dest file %s" % self.log_path,
            "log_type all",
            "connection_messages true",
            "log_timestamp true",
            # The burst tests need every QoS 0 message kept while the gateway socket is busy.
            "max_queued_messages 0",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto drops to user "mosquitto", which cannot write the test's log.
            lines.append("user root")
        if password_file:
            lines.append("password_file %s" % password_file)
        if acl_file:
            lines.append("acl_file %s" % acl_file)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n" + extra)

    def start(self):
        # Readiness from the log, not from a probe connection: tests count the broker's
        # connections and a probe would be one. Count before starting: a fast broker may log
        # "running" before we first look.
        runs = self.log().count(" running")
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "mosquitto.err"), "ab"))
        try:
            wait_until(lambda: self.proc.poll() is not None or self.log().count(" running") > runs,
                       15, message="mosquitto to listen")
        except AssertionError as e:
            self.stop()
            raise AssertionError("%s; mosquitto log:\n%s" % (e, self.log()[-4000:]))
        if self.proc.poll() is not None:
            raise RuntimeError("mosquitto exited: " + self.log()[-4000:])
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                kill_process(self.proc)
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def client_lines(self):
        """The 'New client connected ... as CID (p2, c1, k60, u'USER')' lines."""
        return [l for l in self.log().splitlines() if "New client connected" in l]

    def connection_count(self):
        """TCP connections the broker accepted (seen before CONNECT)."""
        return sum(1 for l in self.log().splitlines() if "New connection from" in l)

    def wait_log(self, pattern, timeout=10.0):
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log()), timeout, message="broker log /%s/"
                          % pattern)


# ---------------------------------------------------------------------------------------------
# Moat

def default_config(certs, broker_port, listen_port, metrics_port, audit_log):
    return {
        "listeners": [{
            "name": "mqtts",
            "bind": "%s:%d" % (HOST, listen_port),
            "tls": {
                "cert": certs.path("server.pem"),
                "key": certs.path("server.key"),
                "client_ca": certs.ca,
                "require_client_cert": True,
            },
        }],
        "backend": {"address": "%s:%d" % (HOST, broker_port), "connect_timeout": "2s",
                    # Probes would show up as broker connections that tests count.
                    "health_check_interval": "0s"},
        "auth": {"methods": ["certificate"]},
        "policy": {
            "default_roles": ["tester"],
            "roles": {"tester": {"publish": ["#"], "subscribe": ["#"]}},
        },
        # Generous limits: the tests that exercise limits set their own.
        "limits": {
            "max_connections_per_ip": 5000,
            "connection_rate_per_ip": "10000/s",
            "handshake_timeout": "5s",
            "publish_rate": "unlimited",
            "publish_bytes_rate": "unlimited",
            "control_packet_rate": "unlimited",
            "max_inflight": 65535,
            "drain_timeout": "3s",
        },
        "bans": {"auth_failures": 1000},
        "metrics": {"bind": "%s:%d" % (HOST, metrics_port)},
        "audit": {"log": audit_log, "max_events_per_second": 100000},
    }


class Moat:
    def __init__(self, workdir, certs, broker_port, overrides=None, tls=None, listener=None,
                 extra_listeners=None):
        self.dir = workdir
        self.certs = certs
        self.port = free_port()
        self.metrics_port = free_port()
        self.audit_path = os.path.join(workdir, "audit.log")
        self.stderr_path = os.path.join(workdir, "moat.stderr")
        cfg = default_config(certs, broker_port, self.port, self.metrics_port, self.audit_path)
        if tls is not None:
            cfg["listeners"][0]["tls"] = deep_merge(cfg["listeners"][0]["tls"], tls)
        if listener is not None:
            cfg["listeners"][0] = deep_merge(cfg["listeners"][0], listener)
        cfg = deep_merge(cfg, overrides)
        if extra_listeners:
            cfg["listeners"] += extra_listeners
        self.config = cfg
        # A test may bind its own address (IPv6): the port clients use is the configured one.
        self.port = int(cfg["listeners"][0]["bind"].rsplit(":", 1)[1])
        self.config_path = os.path.join(workdir, "moat.yaml")
        with open(self.config_path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        self.proc = None
        self.tls = "tls" in cfg["listeners"][0]

    env = None  # extra environment variables for `moat run`

    def start(self, timeout=20.0):
        env = dict(os.environ, **(self.env or {}))
        self.proc = subprocess.Popen([moat_bin(), "run", "-c", self.config_path],
                                     stdout=subprocess.DEVNULL, env=env,
                                     stderr=open(self.stderr_path, "ab"))
        host = self.config["listeners"][0]["bind"].rsplit(":", 1)[0].strip("[]")
        try:
            wait_until(lambda: self.proc.poll() is not None or port_accepts(host, self.port),
                       timeout, message="moat to listen")
        except AssertionError:
            kill_process(self.proc)
            raise AssertionError("moat did not listen within %.0fs; stderr:\n%s"
                                 % (timeout, self.stderr()))
        if self.proc.poll() is not None:
            raise AssertionError("moat exited with %s; stderr:\n%s"
                                 % (self.proc.returncode, self.stderr()))
        return self

    @property
    def pid(self):
        return self.proc.pid

    def write_config(self, cfg):
        """Replaces the config file atomically (as a ConfigMap update does); a reload follows
        from the file watch or a SIGHUP."""
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        os.replace(tmp, self.config_path)
        self.config = cfg

    def stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()[-20000:]
        except FileNotFoundError:
            return ""

    def stop(self, expect_status=0):
        """SIGTERM, then the exit status must be `expect_status` within drain_timeout (+slack)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(8)
        except subprocess.TimeoutExpired:
            kill_process(self.proc)
            raise AssertionError("moat did not exit within 8s of SIGTERM; stderr:\n"
                                 + self.stderr())
        if expect_status is not None:
            assert rc == expect_status, "moat exited %d after SIGTERM; stderr:\n%s" % (
                rc, self.stderr())
        return rc

    def kill(self):
        kill_process(self.proc)

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    # --- audit log ---
    def audit_events(self, event=None):
        out = []
        try:
            with open(self.audit_path, errors="replace") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        raise AssertionError("audit line is not JSON: %r" % line)
                    if event is None or obj.get("event") == event:
                        out.append(obj)
        except FileNotFoundError:
            pass
        return out

    def wait_audit(self, predicate, timeout=10.0, message="audit event"):
        return wait_until(lambda: [e for e in self.audit_events() if predicate(e)], timeout,
                          message=message)

    # --- metrics ---
    def http_get(self, path):
        conn = http.client.HTTPConnection(HOST, self.metrics_port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            conn.close()

    def metrics(self):
        status, text = self.http_get(self.config.get("metrics", {}).get("path", "/metrics"))
        assert status == 200, "metrics endpoint answered %d" % status
        return parse_metrics(text)

    def metric(self, name, **labels):
        """Sum of every sample of `name` whose labels include `labels` (0 if none)."""
        total = 0.0
        for (n, lbls), v in self.metrics().items():
            if n == name and all(dict(lbls).get(k) == val for k, val in labels.items()):
                total += v
        return total

    # --- clients ---
    def wire(self, cert="device1", version=4, tls=True, timeout=10.0, host="127.0.0.1",
             port=None):
        ctx = self.certs.context(cert) if tls and self.tls else None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return mqtt_wire.WireClient(host, port or self.port, ctx, version, timeout, family)


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format -> {(name, frozenset(labels.items())): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = frozenset(_LABEL.findall(m.group(3) or ""))
        try:
            out[(m.group(1), labels)] = float(m.group(4))
        except ValueError:
            pass
    return out


# ---------------------------------------------------------------------------------------------
# paho

V311, V5 = 4, 5


class PahoClient:
    """paho with synchronous helpers; the network loop runs on paho's own thread."""

    def __init__(self, moat, version=V311, cert="device1", client_id=None, username=None,
                 password=None, tls=True, host="localhost", port=None, will=None):
        self.version = version
        self.host = host
        self.port = port or moat.port
        self.client_id = client_id if client_id is not None else "t-%d-%d" % (
            os.getpid(), next(_ids))
        proto = paho.MQTTv5 if version == V5 else (paho.MQTTv31 if version == 3 else
                                                   paho.MQTTv311)
        if version == V5:
            self.c = paho.Client(client_id=self.client_id, protocol=proto)
        else:
            self.c = paho.Client(client_id=self.client_id, protocol=proto, clean_session=True)
        if tls and moat.tls:
            cert_file, key_file = moat.certs.client(cert) if cert else (None, None)
            self.c.tls_set(ca_certs=moat.certs.ca, certfile=cert_file, keyfile=key_file)
        if username is not None:
            self.c.username_pw_set(username, password)
        if will:
            self.c.will_set(**will)
        self.messages = queue.Queue()
        self.connack = queue.Queue()
        self.acks = {}
        self.lock = threading.Lock()
        self.disconnected = threading.Event()
        self.disconnect_rc = None
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_subscribe = self._on_subscribe
        self.c.on_disconnect = self._on_disconnect
        self.c.on_publish = self._on_publish
        self.published = set()

    def _on_connect(self, c, u, flags, rc, props=None):
        code = rc.value if hasattr(rc, "value") else rc
        if code:
            # No automatic reconnects: each would be one more (refused) connection.
            c._thread_terminate = True
        self.connack.put(code)

    def _on_subscribe(self, c, u, mid, granted, props=None):
        codes = [g.value if hasattr(g, "value") else g for g in granted]
        with self.lock:
            self.acks[mid] = codes

    def _on_publish(self, c, u, mid):
        with self.lock:
            self.published.add(mid)

    def _on_disconnect(self, c, u, rc, props=None):
        c._thread_terminate = True  # tests reconnect explicitly, never behind their back
        self.disconnect_rc = rc.value if hasattr(rc, "value") else rc
        self.disconnected.set()

    def connect(self, timeout=10.0, keepalive=60):
        """Returns the CONNACK code (v3 return code / v5 reason code), or None when the
        connection failed before a CONNACK (TLS refused, closed)."""
        self.disconnected.clear()
        try:
            if self.version == V5:
                self.c.connect(self.host, self.port, keepalive, clean_start=True)
            else:
                self.c.connect(self.host, self.port, keepalive)
        except (ssl.SSLError, OSError):
            return None
        self.c.loop_start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self.connack.get(timeout=0.05)
            except queue.Empty:
                if self.disconnected.is_set():
                    return None
                # A TLS alert after the handshake (TLS 1.3 client-cert refusal) kills paho's
                # network thread with an exception instead of calling on_disconnect.
                thread = getattr(self.c, "_thread", None)
                if thread is not None and not thread.is_alive() and self.connack.empty():
                    return None
        return None

    def subscribe(self, topics, qos=0, timeout=10.0):
        """topics: str or list of str / (str, qos). Returns the granted / reason codes."""
        if isinstance(topics, str):
            topics = [(topics, qos)]
        topics = [(t, qos) if isinstance(t, str) else t for t in topics]
        rc, mid = self.c.subscribe(topics)
        assert rc == paho.MQTT_ERR_SUCCESS, "subscribe failed locally: %d" % rc
        wait_until(lambda: mid in self.acks or self.disconnected.is_set(), timeout,
                   message="SUBACK")
        return self.acks.get(mid)

    def publish(self, topic, payload=b"", qos=0, retain=False, timeout=10.0, properties=None):
        info = self.c.publish(topic, payload, qos, retain, properties=properties)
        if qos:
            wait_until(lambda: info.mid in self.published or self.disconnected.is_set(),
                       timeout, message="publish completion (mid %d)" % info.mid)
        return info

    def wait_published(self, info, timeout=10.0):
        wait_until(lambda: info.mid in self.published, timeout, message="publish completion")

    def get(self, timeout=10.0):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def expect_none(self, wait=0.5):
        """Asserts nothing arrives within `wait` (a bound on absence, not on speed)."""
        m = self.get(wait)
        assert m is None, "unexpected message on %s: %r" % (m.topic, m.payload[:60])

    def disconnect(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.disconnected.wait(2)
        self.c.loop_stop()

    def close(self):
        """Teardown: never raises."""
        try:
            self.c.disconnect()
        except Exception:
            pass
        try:
            self.c.loop_stop()
        except Exception:
            pass


def _counter():
    n = 0
    while True:
        n += 1
        yield n


_ids = _counter()


# ---------------------------------------------------------------------------------------------
# mosquitto_pub / mosquitto_sub

def mosq_tls_args(moat, cert="device1"):
    if not moat.tls:
        return []
    args = ["--cafile", moat.certs.ca]
    if cert:
        c, k = moat.certs.client(cert)
        args += ["--cert", c, "--key", k]
    return args


def mosquitto_pub(moat, topic, message, qos=0, version=V311, cert="device1", extra=(),
                  timeout=15):
    args = ["mosquitto_pub", "-h", "localhost", "-p", str(moat.port), "-t", topic, "-q",
            str(qos), "-V", "mqttv5" if version == V5 else "mqttv311"]
    if message is None:
        args.append("-n")
    else:
        args += ["-m", message]
    args += mosq_tls_args(moat, cert) + list(extra)
    return subprocess.run(args, capture_output=True, timeout=timeout)


class MosquittoSub:
    """mosquitto_sub -C N -W T in the background; wait_subscribed() polls the broker log."""

    def __init__(self, moat, topic, count, qos=0, version=V311, cert="device1", wait=10,
                 extra=(), client_id=None):
        self.client_id = client_id or "msub-%d-%d" % (os.getpid(), next(_ids))
        args = ["mosquitto_sub", "-h", "localhost", "-p", str(moat.port), "-t", topic,
                "-q", str(qos), "-C", str(count), "-W", str(wait), "-i", self.client_id,
                "-V", "mqttv5" if version == V5 else "mqttv311"]
        args += mosq_tls_args(moat, cert) + list(extra)
        self.out_path = os.path.join(moat.dir, self.client_id + ".out")
        self.out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=subprocess.PIPE)

    def wait_subscribed(self, broker, timeout=5.0):
        broker.wait_log(r"Received SUBSCRIBE from %s" % re.escape(self.client_id), timeout)
        # The SUBACK is sent right after the log line; the subscription is live at the broker.

    def result(self, timeout=20):
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_process(self.proc)
            raise AssertionError("mosquitto_sub did not finish within %ds" % timeout)
        self.out.close()
        with open(self.out_path, "rb") as f:
            return self.proc.returncode, f.read(), err

    def close(self):
        kill_process(self.proc)
        if not self.out.closed:
            self.out.close()


def connected(factory, moat, **kw):
    """A paho client that must be accepted (CONNACK 0)."""
    c = factory(moat, **kw)
    rc = c.connect()
    assert rc == 0, "CONNACK %r; moat stderr:\n%s" % (rc, moat.stderr())
    return c
