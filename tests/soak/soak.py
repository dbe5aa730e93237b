#!/usr/bin/python3
"""Soak under faults (issue #27): a fleet of TLS devices through Moat in front of a real
Mosquitto with persistent sessions, while the broker restarts, Moat reloads, a device is
revoked, a replica and Redis come and go, floods arrive from other loopback addresses and a
subscriber stops reading. Then it checks that nothing acknowledged was lost.

    tests/soak/soak.py --ci                      # CI setting (~1-2 min, 300 devices)
    tests/soak/soak.py --devices 2000 --duration 1800

Exit status 0 when every check passes, 1 otherwise, 2 on a setup error or the hard deadline.
Every process it starts is killed on the way out, whatever happens."""

import argparse
import asyncio
import http.client
import json
import os
import random
import re
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("MOAT_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))
sys.path.insert(0, HERE)

import logging  # noqa: E402

import yaml  # noqa: E402

import mqtt_wire as w  # noqa: E402
from soak_client import Peer, IO_ERRORS  # noqa: E402
from soak_pki import Pki  # noqa: E402

HOST = "127.0.0.1"
DEVICES_PER_ADDRESS = 50
REVOKED_SRC = "127.0.2.1"
FLOOD_SRC = ["127.0.3.%d" % i for i in range(1, 5)]
NAT_SRC = "127.0.4.1"
NAT_LOGINS = 20
SPRAY_SRC = ["127.0.3.%d" % i for i in range(10, 30)]  # 4 bad passwords each: no address ban
SANITIZER = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|"
                       r"SUMMARY: \w+Sanitizer")
PROCS = []  # every child process, killed on the way out

# Checks that fail on the current gateway for a known, reported reason (README "Soak"): printed
# as XFAIL and not counted; an XPASS says the entry can go.
# (Empty: the soak found that bad passwords claiming an identity banned it and closed its
# live session, CONTRACT section 3; fixed on main by the fix-auth merge before this landed.)
EXPECTED_FAILURES = {}


def log(msg):
    print("[%7.1f] %s" % (time.monotonic() - T_START, msg), flush=True)


T_START = time.monotonic()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_accepts(port):
    import socket
    with socket.socket() as s:
        s.settimeout(0.5)
        try:
            s.connect((HOST, port))
            return True
        except OSError:
            return False


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    raise RuntimeError("timed out waiting for " + what)


def kill_all():
    for p in PROCS:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass


def spawn(args, stderr_path, env=None):
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(stderr_path, "ab"),
                         env=env, start_new_session=True)
    PROCS.append(p)
    return p


def proc_stats(pid):
    """(RSS KiB, open fds) of a live process."""
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid))


# ---------------------------------------------------------------------------------- processes

class Broker:
    def __init__(self, d):
        self.dir = d
        self.port = free_port()
        self.log_path = os.path.join(d, "mosquitto.log")
        self.conf = os.path.join(d, "mosquitto.conf")
        lines = ["listener %d %s" % (self.port, HOST), "allow_anonymous true",
                 "persistence true", "persistence_location %s/" % d,
                 # Saved on SIGTERM in the main run; the kill -9 phase loses what came after
                 # the last autosave, which it reports as the broker's loss.
                 "autosave_interval 5",
                 "max_queued_messages 0", "max_queued_bytes 0", "max_inflight_messages 20",
                 "log_dest file %s" % self.log_path, "log_type error", "log_type warning",
                 "log_type notice", "connection_messages false"]
        if os.geteuid() == 0:
            lines.append("user root")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None
        self.starts = 0

    def start(self):
        self.proc = spawn(["mosquitto", "-c", self.conf], os.path.join(self.dir, "mosq.err"))
        wait_for(lambda: self.proc.poll() is not None or port_accepts(self.port), 30,
                 "mosquitto to listen")
        if self.proc.poll() is not None:
            raise RuntimeError("mosquitto exited %s" % self.proc.returncode)
        self.starts += 1

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Redis:
    def __init__(self, d):
        self.dir, self.port, self.proc = d, free_port(), None

    def start(self):
        self.proc = spawn(["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "",
                           "--appendonly", "no", "--dir", self.dir, "--logfile",
                           os.path.join(self.dir, "redis.log")], os.path.join(self.dir, "r.err"))
        wait_for(lambda: self.proc.poll() is not None or port_accepts(self.port), 15,
                 "redis to listen")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class MoatProc:
    def __init__(self, d, name, binary, cfg_fn):
        self.dir, self.name, self.binary = d, name, binary
        self.port, self.metrics_port = free_port(), free_port()
        self.cfg_fn = cfg_fn
        self.config_path = os.path.join(d, "moat-%s.yaml" % name)
        self.stderr_path = os.path.join(d, "moat-%s.stderr" % name)
        self.audit_path = os.path.join(d, "audit-%s.log" % name)
        self.proc = None
        self.expected_down = True
        self.exits = []
        self.write_config()

    def write_config(self):
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            yaml.safe_dump(self.cfg_fn(self), f, sort_keys=False)
        os.replace(tmp, self.config_path)

    def start(self):
        env = dict(os.environ)
        # A small quarantine keeps an ASan build's RSS meaningful for the leak check;
        # LeakSanitizer at exit is the exact check there.
        env["ASAN_OPTIONS"] = ":".join(filter(None, [
            env.get("ASAN_OPTIONS", ""), "quarantine_size_mb=16"]))
        self.proc = spawn([self.binary, "run", "-c", self.config_path], self.stderr_path, env)
        wait_for(lambda: self.proc.poll() is not None or port_accepts(self.port), 30,
                 "moat %s to listen" % self.name)
        if self.proc.poll() is not None:
            raise RuntimeError("moat %s exited %s:\n%s" % (self.name, self.proc.returncode,
                                                           self.stderr()[-3000:]))
        self.expected_down = False

    def up(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        self.expected_down = True
        if not self.up():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            rc = None
        self.exits.append(rc)
        return rc

    def hup(self):
        if self.up():
            self.proc.send_signal(signal.SIGHUP)

    def stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def metrics(self):
        conn = http.client.HTTPConnection(HOST, self.metrics_port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode(errors="replace")
        finally:
            conn.close()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name_labels, _, value = line.rpartition(" ")
                try:
                    out[name_labels] = float(value)
                except ValueError:
                    pass
        return out

    def metric(self, name, **labels):
        total = 0.0
        for key, v in self.metrics().items():
            n = key.split("{", 1)[0]
            if n == name and all('%s="%s"' % kv in key for kv in labels.items()):
                total += v
        return total


# ------------------------------------------------------------------------------------ clients

class Device(Peer):
    def __init__(self, soak, index, version, ctx, src, password=None, prefer_b=False):
        name = "dev%05d" % index
        super().__init__(soak, name, version, ctx, src,
                         username=name if password else None, password=password,
                         prefer_b=prefer_b)
        self.index = index
        self.kind = "pw" if password else "cert"
        self.seq = {"telemetry": 0, "events": 0, "forbidden": 0}
        self.qos2 = index % 10 in (3, 4)  # v5 and v3.1.1
        self.forbidden = index % 50 in (7, 8)
        self.filters = [("fleet/%s/commands" % name, 1)]
        self.commands = set()
        self.skipped = 0

    def on_message(self, topic, qos, payload):
        if topic.endswith("/commands"):
            self.commands.add(int(payload.split(b"|")[1]))

    def on_ack(self, out, code):
        kind, seq, phase = out.meta
        if kind == "forbidden":
            self.soak.forbidden_acks[(self.version, code)] = \
                self.soak.forbidden_acks.get((self.version, code), 0) + 1
        elif code < 0x80:
            self.soak.acked.setdefault((self.name, kind), {})[seq] = phase
        else:
            self.soak.note("%s: %s seq %d refused 0x%02x" % (self.name, kind, seq, code))

    def tick(self):
        phase = self.soak.phase
        if phase not in ("main", "kill9") or not self.online:
            return
        if len(self.pending) >= self.max_pending:
            self.skipped += 1
            return
        kinds = ["telemetry"]
        if self.qos2:
            kinds.append("events")
        if self.forbidden and self.seq["telemetry"] % 5 == 4:
            kinds.append("forbidden")
        for kind in kinds:
            seq = self.seq[kind] + 1
            payload = ("%s|%d|%s|%.6f" % (self.name, seq, phase, time.time())).encode()
            if self.publish("fleet/%s/%s" % (self.name, kind), payload,
                            2 if kind == "events" else 1, (kind, seq, phase)):
                self.seq[kind] = seq

    async def produce(self, interval):
        await asyncio.sleep(random.uniform(0, interval))
        while not self.stopping:
            self.tick()
            await asyncio.sleep(interval * random.uniform(0.9, 1.1))


class Monitor(Peer):
    """A subscriber on a broad filter: counts every (device, kind, seq) it receives."""

    keepalive = 120
    max_pending = 0

    def __init__(self, soak, name, version, ctx, filters, username=None, password=None,
                 fallback=None):
        super().__init__(soak, name, version, ctx, HOST, username, password)
        self.filters = filters
        self.fallback = fallback
        self.used = None
        self.got = {}
        self.dups_q2 = 0
        self.denied = []
        self.revoked_after = 0
        self.received = 0

    def on_message(self, topic, qos, payload):
        self.received += 1
        parts = topic.split("/")
        if len(parts) >= 4 or parts[-1] == "forbidden":
            self.denied.append(topic)
            return
        kind = parts[-1]
        if kind not in ("telemetry", "events"):
            return
        fields = payload.split(b"|")
        dev, seq, sent = fields[0].decode(), int(fields[1]), float(fields[3])
        key = (dev, kind, seq)
        self.got[key] = self.got.get(key, 0) + 1
        if dev == self.soak.revoked_name and self.soak.revoked_at and \
                sent > self.soak.revoked_at:
            self.revoked_after += 1

    def on_duplicate_q2(self, topic, payload):
        pass  # a QoS 2 redelivery of a packet id still held: not a second delivery

    async def subscribe_all(self):
        """`fleet/#` overlaps the monitors' deny_subscribe branch: granted (deliveries there
        withheld) per CONTRACT section 3; a build that refuses the overlap gets the narrower
        fallback filters, and the run says which was used."""
        codes = await self.subscribe(self.filters)
        self.used = self.filters
        if any(c >= 0x80 for c in codes) and self.fallback:
            codes = await self.subscribe(self.fallback)
            self.used = self.fallback
        if any(c >= 0x80 for c in codes):
            self.soak.note("%s: SUBACK refused %r" % (self.name, codes))
        self.subscribed_once = True


class Commander(Peer):
    max_pending = 100

    def __init__(self, soak, ctx):
        super().__init__(soak, "commander", 5, ctx, HOST)
        self.acked = {}
        self.seq = 0
        self.private_sent = 0

    def on_ack(self, out, code):
        kind, dev, seq = out.meta
        if kind == "cmd" and code < 0x80:
            self.acked.setdefault(dev, set()).add(seq)

    async def produce(self, devices, period):
        """Each device gets one command per `period`; a few private publishes (allowed to the
        commander, withheld from the monitors' deliveries by deny_subscribe)."""
        targets = [d for d in devices]
        step = period / max(1, len(targets))
        i = 0
        while not self.stopping:
            await asyncio.sleep(step)
            if self.soak.phase != "main":
                continue
            dev = targets[i % len(targets)]
            i += 1
            if dev.name == self.soak.revoked_name:
                continue
            self.seq += 1
            self.publish("fleet/%s/commands" % dev.name,
                         ("c|%d" % self.seq).encode(), 1, ("cmd", dev.name, self.seq))
            if i % 25 == 0:
                if self.publish("fleet/%s/private/key" % dev.name, b"secret", 1,
                                ("private", dev.name, 0)):
                    self.private_sent += 1


def p99(values):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(0.99 * len(s)))]


def p50(values):
    return sorted(values)[len(values) // 2] if values else float("nan")


# --------------------------------------------------------------------------------------- soak

class Soak:
    def __init__(self, args, workdir):
        self.args, self.dir = args, workdir
        self.phase = "setup"
        self.acked = {}
        self.forbidden_acks = {}
        self.notes = []
        self.events = []
        self.revoked_name = None
        self.revoked_at = None
        self.revoked_connacks_after = 0
        self.max_backoff = 8.0 if args.ci else 15.0
        self.reconnect_spread = min(10.0, args.devices / 200.0)
        self.rss_samples = []  # (seconds since the fleet was up, RSS KiB) of replica A
        self.reloads = 0
        self.b_preferred = True
        self.checks = []
        self.figures = []
        self.flood_results = {}

    def note(self, msg):
        if len(self.notes) < 200:
            self.notes.append(msg)

    def event(self, what):
        self.events.append((time.monotonic(), what))
        log("event: " + what)

    def pick_target(self, peer):
        if peer.prefer_b and self.moat_b.up() and not self.moat_b.expected_down:
            return HOST, self.moat_b.port
        return HOST, self.moat_a.port

    def on_connack(self, peer):
        if peer.name == self.revoked_name and self.revoked_at is not None:
            self.revoked_connacks_after += 1

    # --- config ---
    def moat_config(self, m):
        roles = {
            "device": {"publish": ["fleet/%u/telemetry", "fleet/%u/events"],
                       "subscribe": ["fleet/%u/commands"]},
            "monitor": {"subscribe": ["fleet/#"], "deny_subscribe": ["fleet/+/private/#"]},
            "commander": {"publish": ["fleet/+/commands", "fleet/+/private/#"]},
            "probe": {"publish": ["probe/%u/#"], "subscribe": ["probe/%u/#"]},
            "flooder": {"subscribe": ["flood/%u/#"]},
        }
        # Every reload changes the policy a little (a role nobody holds), so a reload is a
        # real policy swap, not a no-op.
        roles["reload-%d" % self.reloads] = {"subscribe": ["reload/%d" % self.reloads]}
        cfg = {
            "listeners": [{"name": "mqtts", "bind": "%s:%d" % (HOST, m.port), "tls": {
                "cert": self.pki.server_cert, "key": self.pki.server_key_path,
                "client_ca": self.pki.ca, "require_client_cert": False, "crl": self.pki.crl}}],
            "backend": {"address": "%s:%d" % (HOST, self.broker.port), "connect_timeout": "5s"},
            "auth": {"methods": ["certificate", "password"], "require": "any",
                     "password_file": self.passwd, "client_id": "identity"},
            "policy": {"default_roles": ["device"], "roles": roles,
                       "users": {"monitor-a": ["monitor"], "monitor-b": ["monitor"],
                                 "monitor-slow": ["monitor"], "commander": ["commander"],
                                 "probe": ["probe"], "flood1": ["flooder"],
                                 "flood2": ["flooder"]}},
            # The default bans (5 failures): a reconnect wave of correct logins from one
            # address must never ban it (it did while started checks counted as failures).
            "limits": {"max_connections": 20000, "max_connections_per_ip": 200,
                       "connection_rate_per_ip": "100/s", "handshake_timeout": "10s",
                       "control_packet_rate": "50/s", "max_keepalive": "300s",
                       "drain_timeout": "5s"},
            "metrics": {"bind": "%s:%d" % (HOST, m.metrics_port)},
            "audit": {"log": m.audit_path},
            "cluster": {"redis": "%s:%d" % (HOST, self.redis.port), "key_prefix": "soak:"},
        }
        return cfg

    # --- setup ---
    def setup(self):
        a = self.args
        t0 = time.monotonic()
        self.pki = Pki(os.path.join(self.dir, "pki"))
        n = a.devices
        self.passwd = os.path.join(self.dir, "passwd")
        plain = {}
        specs = []
        for i in range(n):
            version = 5 if i % 2 else 4
            cert = (i // 2) % 2 == 0
            specs.append((i, version, cert))
            if not cert:
                plain["dev%05d" % i] = "pw-%05d" % i
        plain["monitor-b"] = "monitor-b-pass"
        plain["flood2"] = "flood2-pass"
        for i in range(NAT_LOGINS):
            plain["nat%d" % i] = "nat%d-pass" % i
        with open(self.passwd, "w") as f:
            f.writelines("%s:%s\n" % kv for kv in plain.items())
        subprocess.run(["mosquitto_passwd", "-U", self.passwd], check=True, timeout=120)
        self.plain_ctx = self.ctx(None)
        # The revoked device: a v5 certificate device on its own source address (its refused
        # handshakes earn that address a ban, which must not touch its neighbours).
        revoked_index = next(i for i, v, c in specs if v == 5 and c and i > n // 3)
        self.revoked_name = "dev%05d" % revoked_index
        self.revoked_name_pending = self.revoked_name
        self.revoked_name = None  # set when revoked
        self.devices = []
        for i, version, cert in specs:
            src = REVOKED_SRC if i == revoked_index else \
                "127.0.1.%d" % (1 + i // DEVICES_PER_ADDRESS)
            prefer_b = i % 10 == 1
            if cert:
                ctx = self.ctx(self.pki.client("dev%05d" % i))
                self.devices.append(Device(self, i, version, ctx, src, prefer_b=prefer_b))
            else:
                self.devices.append(Device(self, i, version, self.plain_ctx, src,
                                           password=plain["dev%05d" % i], prefer_b=prefer_b))
        fallback = [("fleet/+/telemetry", 2), ("fleet/+/events", 2), ("fleet/+/commands", 1)]
        self.monitors = [
            Monitor(self, "monitor-a", 5, self.ctx(self.pki.client("monitor-a")),
                    [("fleet/#", 2)], fallback=fallback),
            Monitor(self, "monitor-b", 4, self.plain_ctx,
                    [("fleet/+/telemetry", 1), ("fleet/+/events", 2), ("fleet/+/forbidden", 1)],
                    username="monitor-b", password="monitor-b-pass"),
            Monitor(self, "monitor-slow", 4, self.ctx(self.pki.client("monitor-slow")),
                    [("fleet/#", 2)], fallback=fallback),
        ]
        self.slow = self.monitors[2]
        self.slow.paused = asyncio.Event()
        self.slow.paused.set()
        self.commander = Commander(self, self.ctx(self.pki.client("commander")))
        self.probe_cert = self.pki.client("probe")
        self.probe_out = os.path.join(self.dir, "probe.txt")
        self.windows = {}
        self.flood_ctx = self.ctx(self.pki.client("flood1"))
        log("PKI and %d identities ready in %.1fs" % (n + 6, time.monotonic() - t0))

        self.broker = Broker(self.mkdir("broker"))
        self.broker.start()
        self.redis = Redis(self.mkdir("redis"))
        self.redis.start()
        self.moat_a = MoatProc(self.mkdir("moat-a"), "a", a.moat, self.moat_config)
        self.moat_b = MoatProc(self.mkdir("moat-b"), "b", a.moat, self.moat_config)
        self.moat_a.start()
        self.moat_b.start()

    def mkdir(self, name):
        d = os.path.join(self.dir, name)
        os.makedirs(d, exist_ok=True)
        return d

    def ctx(self, certfile):
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.load_verify_locations(self.pki.ca)
        if certfile:
            c.load_cert_chain(certfile)
        return c

    # --- faults ---
    async def reload(self):
        self.reloads += 1
        self.pki.reissue_server()
        self.pki.write_crl()
        for m in (self.moat_a, self.moat_b):
            m.write_config()
        for m in (self.moat_a, self.moat_b):
            m.hup()
        self.event("reload %d (policy, server certificate, CRL replaced; SIGHUP)" % self.reloads)

    async def broker_restart(self, sig=signal.SIGTERM, down=2.0):
        self.event("broker %s" % ("SIGTERM" if sig == signal.SIGTERM else "kill -9"))
        await asyncio.to_thread(self.broker.stop, sig)
        await asyncio.sleep(down)
        await asyncio.to_thread(self.broker.start)
        self.event("broker back")

    async def revoke(self):
        name = self.revoked_name_pending
        self.pki.revoke(name)
        replicas = [m for m in (self.moat_a, self.moat_b) if m.up() and not m.expected_down]
        before = []
        for m in replicas:
            before.append(await asyncio.to_thread(m.metric, "moat_config_reloads_total"))
            m.hup()
        # The revocation counts from when every live replica has reloaded (bounded wait).
        for m, b in zip(replicas, before):
            for _ in range(200):
                try:
                    if await asyncio.to_thread(m.metric, "moat_config_reloads_total") > b:
                        break
                except OSError:
                    break
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        self.revoked_name = name
        self.revoked_at = time.time()
        self.event("revoked %s through the CRL" % name)

    async def redis_cycle(self, down):
        self.event("redis killed")
        await asyncio.to_thread(self.redis.kill)
        await asyncio.sleep(down)
        await asyncio.to_thread(self.redis.start)
        self.event("redis back")

    async def replica_cycle(self, down):
        self.event("replica B SIGTERM")
        rc = await asyncio.to_thread(self.moat_b.stop)
        if rc != 0:
            self.note("replica B exited %r on SIGTERM" % rc)
        await asyncio.sleep(down)
        await asyncio.to_thread(self.moat_b.start)
        self.event("replica B back")

    async def slow_pause(self, seconds):
        self.event("monitor-slow stops reading for %.0fs" % seconds)
        self.slow.paused.clear()
        await asyncio.sleep(seconds)
        self.slow.paused.set()
        self.event("monitor-slow reads again")

    async def flood(self, seconds):
        self.event("flood from %s for %.0fs" % (",".join(FLOOD_SRC), seconds))
        self.bad_done = asyncio.Event()
        res = await asyncio.gather(
            self.flood_control(FLOOD_SRC[0], seconds),
            self.flood_connects(FLOOD_SRC[1], seconds, bad_password=False),
            self.flood_connects(FLOOD_SRC[2], seconds, bad_password=True),
            self.flood_half_open(FLOOD_SRC[3], seconds), self.password_spray(),
            return_exceptions=True)
        for k, r in zip(("control", "connects", "bad_passwords", "half_open", "spray"), res):
            if isinstance(r, BaseException):
                r = {"error": type(r).__name__}
            for key, v in r.items():
                self.flood_results["%s.%s" % (k, key)] = \
                    self.flood_results.get("%s.%s" % (k, key), 0) + v
        self.event("flood over")

    async def flood_control(self, src, seconds):
        """One authenticated client sending PINGREQ and SUBSCRIBE as fast as it can."""
        out = {"pingreq": 0, "subscribe": 0}
        try:
            r, wr = await asyncio.wait_for(asyncio.open_connection(
                HOST, self.moat_a.port, ssl=self.flood_ctx, server_hostname="localhost",
                local_addr=(src, 0)), 15)
        except IO_ERRORS:
            return {"refused": 1}
        drain = asyncio.ensure_future(self._discard(r))
        try:
            wr.write(w.connect_packet("flood1", version=4, keepalive=60))
            end = time.monotonic() + seconds
            i = 0
            while time.monotonic() < end and i < 200000:
                i += 1
                if i % 5:
                    wr.write(bytes([w.PINGREQ << 4, 0]))
                    out["pingreq"] += 1
                else:
                    wr.write(w.subscribe_packet([("flood/flood1/%d" % (i % 50), 1)],
                                                i % 65535 + 1))
                    out["subscribe"] += 1
                if i % 50 == 0:
                    if wr.transport.is_closing() or r.at_eof():
                        out["closed"] = 1
                        break
                    await asyncio.wait_for(wr.drain(), max(0.1, end - time.monotonic()))
        except IO_ERRORS:
            pass
        # The session stays open until the bad-password flood on its identity is over.
        try:
            await asyncio.wait_for(self.bad_done.wait(), seconds + 60)
        except asyncio.TimeoutError:
            pass
        drain.cancel()
        wr.close()
        return out

    async def _discard(self, reader):
        try:
            while await reader.read(65536):
                pass
        except IO_ERRORS:
            pass

    async def flood_connects(self, src, seconds, bad_password):
        """Connections as fast as a few at a time go, from one address: most are limited
        (connection rate), the bad-password ones get the address banned."""
        out = {"accepted": 0, "refused": 0}
        end = time.monotonic() + seconds

        async def one(k):
            try:
                r, wr = await asyncio.wait_for(asyncio.open_connection(
                    HOST, self.moat_a.port, ssl=self.plain_ctx, server_hostname="localhost",
                    local_addr=(src, 0), ssl_handshake_timeout=5), 6)
            except IO_ERRORS:
                out["refused"] += 1
                return
            try:
                # Bad passwords claim flood1, the identity the control flooder holds a live
                # (certificate) session as, 10 at a time from one address; good ones log in
                # as flood2.
                ident = "flood1" if bad_password else "flood2"
                wr.write(w.connect_packet(ident, version=4, username=ident,
                                          password="wrong" if bad_password else "flood2-pass"))
                from soak_client import read_packet
                ptype, _, body = await asyncio.wait_for(read_packet(r), 5)
                out["accepted" if ptype == w.CONNACK and body[1] == 0 else "refused"] += 1
            except IO_ERRORS:
                out["refused"] += 1
            finally:
                wr.close()

        k = 0
        while time.monotonic() < end and k < 5000:
            await asyncio.gather(*(one(k + j) for j in range(10)))
            k += 10
        return out

    async def password_spray(self):
        """Bad passwords for flood1 (the identity the control flooder holds a live
        certificate session as) from 20 addresses, 4 each: no address earns a ban, the
        identity collects 80 failures. Its live session must stay (CONTRACT section 3)."""
        out = {"refused": 0, "accepted": 0}
        from soak_client import read_packet

        async def from_address(src):
            for _ in range(4):
                try:
                    r, wr = await asyncio.wait_for(asyncio.open_connection(
                        HOST, self.moat_a.port, ssl=self.plain_ctx, server_hostname="localhost",
                        local_addr=(src, 0), ssl_handshake_timeout=5), 6)
                except IO_ERRORS:
                    out["refused"] += 1
                    continue
                try:
                    wr.write(w.connect_packet("flood1", version=4, username="flood1",
                                              password="wrong"))
                    ptype, _, body = await asyncio.wait_for(read_packet(r), 10)
                    out["accepted" if ptype == w.CONNACK and body[1] == 0 else "refused"] += 1
                except IO_ERRORS:
                    out["refused"] += 1
                finally:
                    wr.close()
        try:
            await asyncio.gather(*(from_address(a) for a in SPRAY_SRC))
        finally:
            self.bad_done.set()
        return out

    async def flood_half_open(self, src, seconds):
        """TCP connections that never start TLS: closed by handshake_timeout."""
        socks = []
        out = {"opened": 0, "closed_by_moat": 0}
        for _ in range(100):
            try:
                r, wr = await asyncio.wait_for(asyncio.open_connection(
                    HOST, self.moat_a.port, local_addr=(src, 0)), 5)
                socks.append((r, wr))
                out["opened"] += 1
            except IO_ERRORS:
                break
        deadline = time.monotonic() + max(seconds, 13)
        for r, wr in socks:
            try:
                data = await asyncio.wait_for(r.read(1), max(0.1, deadline - time.monotonic()))
                if not data:
                    out["closed_by_moat"] += 1
            except IO_ERRORS:
                pass
            wr.close()
        return out

    async def nat_logins(self):
        """10 devices behind one address log in with correct passwords at once, on a
        replica C with the default bans and no cluster: none may be refused or banned."""
        def cfg(m):
            c = self.moat_config(m)
            c.pop("cluster")
            c.pop("bans", None)
            return c
        c = MoatProc(self.mkdir("moat-c"), "c", self.args.moat, cfg)
        await asyncio.to_thread(c.start)
        def logins():
            # Blocking sockets: every TLS handshake first, then the CONNECTs back to back, so
            # the password checks overlap as a reconnect wave's do.
            import socket
            conns, codes = [], []
            try:
                for i in range(NAT_LOGINS):
                    try:
                        raw = socket.create_connection((HOST, c.port), 20,
                                                       source_address=(NAT_SRC, 0))
                        conns.append((i, self.plain_ctx.wrap_socket(
                            raw, server_hostname="localhost")))
                    except (OSError, ssl.SSLError) as e:
                        codes.append(type(e).__name__)
                for i, sock in conns:
                    sock.sendall(w.connect_packet("nat%d" % i, username="nat%d" % i,
                                                  password="nat%d-pass" % i))
                for i, sock in conns:
                    try:
                        data = sock.recv(4)
                        codes.append(data[3] if len(data) >= 4 else "closed")
                    except (OSError, ssl.SSLError) as e:
                        codes.append(type(e).__name__)
            finally:
                for i, sock in conns:
                    sock.close()
            return codes
        try:
            codes = await asyncio.to_thread(logins)
        finally:
            await asyncio.to_thread(c.stop)
        bans = 0
        with open(c.audit_path, errors="replace") as f:
            for line in f:
                if '"ban"' in line and '"auth_failures"' in line:
                    bans += 1
        sanitizer = [l for l in c.stderr().splitlines() if SANITIZER.search(l)]
        if sanitizer or c.exits != [0]:
            self.note("replica C: exit %r %s" % (c.exits, sanitizer[:2]))
        return codes, bans

    # --- checks ---
    def missing(self, phase):
        """{monitor: [(dev, kind, seq)]} acknowledged in `phase` and not yet delivered."""
        out = {}
        for m in self.monitors:
            miss = []
            for (dev, kind), seqs in self.acked.items():
                for seq, ph in seqs.items():
                    if ph == phase and (dev, kind, seq) not in m.got:
                        miss.append((dev, kind, seq))
            out[m.name] = miss
        return out

    def missing_commands(self):
        miss = []
        byname = {d.name: d for d in self.devices}
        for dev, seqs in self.commander.acked.items():
            if dev == self.revoked_name:
                continue
            miss += [(dev, s) for s in sorted(seqs - byname[dev].commands)]
        return miss

    async def drain(self, phase, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = sum(len(p.pending) for p in self.devices if p.name != self.revoked_name)
            miss = sum(len(v) for v in self.missing(phase).values())
            if phase == "main":
                miss += len(self.missing_commands()) + len(self.commander.pending)
            if pending == 0 and miss == 0:
                return True
            await asyncio.sleep(1.0)
        return False

    def check(self, name, ok, figures):
        if name in EXPECTED_FAILURES and not ok:
            print("XFAIL %-34s %s (known: %s)" % (name, figures, EXPECTED_FAILURES[name]))
            return
        if name in EXPECTED_FAILURES:
            print("XPASS %-34s %s (the bug did not show this time; once it never does, remove "
                  "it from EXPECTED_FAILURES)" % (name, figures))
            return
        self.checks.append((name, ok, figures))
        print("%s  %-34s %s" % ("PASS " if ok else "FAIL ", name, figures), flush=True)

    # --- the run ---
    async def run(self):
        a = self.args
        tasks = []
        watch = asyncio.ensure_future(self.watch_crashes())
        # Long-lived peers first: the monitors' sessions must exist before any publish.
        for p in self.monitors + [self.commander]:
            tasks.append(asyncio.ensure_future(p.run()))
        await self.wait_online(self.monitors + [self.commander], 60)
        lifetime = a.ramp + a.duration + 2 * a.drain + a.kill9_phase + 600
        self.probe_proc = spawn([sys.executable, os.path.join(HERE, "soak_probe.py"),
                                 str(self.moat_a.port), self.pki.ca, self.probe_cert,
                                 self.probe_out, "0.25", str(lifetime)],
                                os.path.join(self.dir, "probe.err"))
        await asyncio.sleep(3)
        w0 = time.time()
        await asyncio.sleep(8 if a.ci else 30)
        self.windows["unloaded"] = (w0, time.time())
        base_rss, base_fds = proc_stats(self.moat_a.proc.pid)
        log("baseline: moat A RSS %d KiB, %d fds" % (base_rss, base_fds))

        self.nat_result = await self.nat_logins()

        # Ramp: devices connect spread over the ramp period.
        self.phase = "main"
        ramp = a.ramp
        log("ramp: %d devices over %.0fs" % (len(self.devices), ramp))
        order = list(self.devices)
        random.shuffle(order)
        for k, d in enumerate(order):
            tasks.append(asyncio.ensure_future(self.start_later(d, ramp * k / len(order))))
        await asyncio.sleep(ramp)
        await self.wait_online([d for d in self.devices if d.filters], 60 + ramp,
                               need_subscribed=True)
        tasks.append(asyncio.ensure_future(self.commander.produce(self.devices, a.command_every)))
        log("fleet up: %d devices online" % sum(d.online for d in self.devices))
        await asyncio.sleep(2)
        up_rss, up_fds = proc_stats(self.moat_a.proc.pid)
        log("fleet up: moat A RSS %d KiB, %d fds" % (up_rss, up_fds))

        t0 = time.monotonic()
        w0 = time.time()
        D = a.duration
        peak = [0, 0]
        sched = self.schedule(D)
        faults = []
        sampler = asyncio.ensure_future(self.sample_peak(peak, t0))
        for at, name, fn in sched:
            delay = t0 + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.crashed():
                break
            task = asyncio.ensure_future(fn())
            task.fault_name = name
            faults.append(task)
        rest = t0 + D - time.monotonic()
        if rest > 0:
            await asyncio.sleep(rest)
        # Let the scheduled faults finish (each is bounded) before judging.
        if [t for t in faults if not t.done()]:
            await asyncio.wait(faults, timeout=180)
        self.windows["loaded"] = (w0, time.time())
        self.probe_proc.kill()
        self.fault_runs = {}
        self.fault_errors = []
        for t in faults:
            if t.done() and not t.cancelled() and t.exception() is None:
                self.fault_runs[t.fault_name] = self.fault_runs.get(t.fault_name, 0) + 1
            else:
                err = t.exception() if t.done() and not t.cancelled() else "did not finish"
                self.fault_errors.append("%s: %r" % (t.fault_name, err))

        # Drain: no new publishes; everything acknowledged must arrive.
        self.phase = "drain"
        log("main phase over; draining")
        drained = await self.drain("main", a.drain)
        log("drained: %s" % drained)
        main_missing = self.missing("main")
        cmd_missing = self.missing_commands()

        # kill -9 phase: broker-side loss is reported on its own line.
        self.phase = "kill9"
        self.event("kill -9 phase")
        await asyncio.sleep(a.kill9_phase / 2)
        await self.broker_restart(signal.SIGKILL, down=1.0)
        await asyncio.sleep(a.kill9_phase / 2)
        self.phase = "drain"
        await self.drain("kill9", a.drain / 2)
        k9_missing = self.missing("kill9")

        # The fleet leaves; Moat must come back to its baseline.
        self.phase = "leave"
        log("fleet leaves")
        await asyncio.gather(*(d.leave() for d in self.devices))
        sampler.cancel()
        after = await self.settle(base_fds)
        for p in self.monitors + [self.commander]:
            await p.leave()
        watch.cancel()
        for t in tasks + faults + list(self._forever):
            t.cancel()
        self.reload_ok = await asyncio.to_thread(self.moat_a.metric, "moat_config_reloads_total",
                                                 result="ok")
        self.reload_failed = await asyncio.to_thread(
            self.moat_a.metric, "moat_config_reloads_total", result="failed")
        return self.judge(main_missing, cmd_missing, k9_missing, (base_rss, base_fds), peak,
                          after, drained, up_rss)

    _forever = set()

    async def start_later(self, d, delay):
        await asyncio.sleep(delay)
        prod = asyncio.ensure_future(d.produce(self.args.interval))
        self._forever.add(prod)
        await d.run()

    async def wait_online(self, peers, timeout, need_subscribed=False):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            waiting = [p for p in peers if not p.online and p.name != self.revoked_name
                       or (need_subscribed and not p.subscribed_once)]
            if not waiting:
                return
            await asyncio.sleep(0.5)
        raise RuntimeError("%d peers not online after %.0fs (e.g. %s: refusals %r)" % (
            len(waiting), timeout, waiting[0].name, waiting[0].refusals))

    async def sample_peak(self, peak, t0):
        while True:
            await asyncio.sleep(2)
            if self.moat_a.up():
                rss, fds = proc_stats(self.moat_a.proc.pid)
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], fds)
                self.rss_samples.append((time.monotonic() - t0, rss))

    async def settle(self, base_fds):
        """Waits (bounded) for the fleet's connections to close, then RSS and fds: the
        lowest of a few samples."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            _, fds = proc_stats(self.moat_a.proc.pid)
            if fds <= base_fds:
                break
            await asyncio.sleep(1)
        await asyncio.sleep(3)
        samples = []
        for _ in range(5):
            samples.append(proc_stats(self.moat_a.proc.pid))
            await asyncio.sleep(1)
        return min(s[0] for s in samples), min(s[1] for s in samples)

    def crashed(self):
        return any(m.proc is not None and m.proc.poll() is not None and not m.expected_down
                   for m in (self.moat_a, self.moat_b))

    async def watch_crashes(self):
        while True:
            await asyncio.sleep(1)
            for m in (self.moat_a, self.moat_b):
                if m.proc is not None and m.proc.poll() is not None and not m.expected_down:
                    self.note("moat %s exited %s unexpectedly" % (m.name, m.proc.returncode))
                    m.expected_down = True
                    m.crashed = True

    def schedule(self, D):
        """(seconds after the fleet is up, name, coroutine factory), in time order."""
        ev = []
        t = self.args.reload_every / 2
        while t < D - 5:
            ev.append((t, "reload", self.reload))
            t += self.args.reload_every
        nb = max(2, int(D // 420))
        for k in range(nb):
            ev.append(((k + 0.3) * D / nb, "broker", self.broker_restart))
        nc = max(1, int(D // 900))
        for k in range(nc):
            base = k * D / nc
            span = D / nc
            ev.append((base + 0.15 * span, "slow",
                       lambda s=min(0.2 * span, 120): self.slow_pause(s)))
            ev.append((base + 0.35 * span, "redis",
                       lambda s=min(0.15 * span, 60): self.redis_cycle(s)))
            ev.append((base + 0.55 * span, "replica",
                       lambda s=min(0.2 * span, 90): self.replica_cycle(s)))
            ev.append((base + 0.45 * span, "flood",
                       lambda s=min(0.05 * span, 15): self.flood(s)))
        ev.append((0.5 * D, "revoke", self.revoke))
        ev.sort(key=lambda e: e[0])
        return ev

    def judge(self, main_missing, cmd_missing, k9_missing, base, peak, after, drained, up_rss):
        a = self.args
        print("\n==== soak results (%d devices, %.0fs under faults, %s)" % (
            len(self.devices), a.duration, "CI setting" if a.ci else "long setting"))
        sent = sum(len(v) for v in self.acked.values())
        main_acked = sum(1 for v in self.acked.values() for ph in v.values() if ph == "main")
        k9_acked = sum(1 for v in self.acked.values() for ph in v.values() if ph == "kill9")
        connects = sum(d.connects for d in self.devices)
        print("figures: %d acknowledged publishes (%d main, %d kill-9 phase), %d device "
              "connections, %d reloads, broker started %d times, %d commands acknowledged" % (
                  sent, main_acked, k9_acked, connects, self.reloads, self.broker.starts,
                  sum(len(s) for s in self.commander.acked.values())))
        for m in self.monitors:
            print("  %-13s received %d, distinct %d, session lost %d times, connects %d, "
                  "filters %s" % (m.name, m.received, len(m.got), m.session_lost, m.connects,
                                  " ".join(f for f, _ in m.used or ())))
        print("  floods: %s" % json.dumps(self.flood_results, sort_keys=True))
        print("  forbidden publishes acknowledged: %s" % ", ".join(
            "%s code 0x%02x: %d" % ("v5" if v == 5 else "v3.1.1", c, n)
            for (v, c), n in sorted(self.forbidden_acks.items())))
        refusals = {}
        for d in self.devices:
            for k, v in d.refusals.items():
                refusals[str(k)] = refusals.get(str(k), 0) + v
        print("  device connect refusals (retried): %s" % json.dumps(refusals, sort_keys=True))

        # 0. every scheduled fault ran (each kind at least once)
        kinds = ("broker", "reload", "revoke", "redis", "replica", "flood", "slow")
        self.check("every fault ran", not self.fault_errors and
                   all(self.fault_runs.get(k) for k in kinds),
                   ", ".join("%s %d" % (k, self.fault_runs.get(k, 0)) for k in kinds) +
                   (" (+ the kill -9 phase)" if not self.fault_errors else
                    "; errors: " + "; ".join(self.fault_errors)))
        # 1. acknowledged => delivered (telemetry QoS 1, events QoS 2) to every monitor
        total_gaps = sum(len(v) for v in main_missing.values())
        detail = []
        for mon, miss in main_missing.items():
            if miss:
                detail.append("%s: %s" % (mon, ", ".join("%s/%s#%d" % x for x in sorted(miss)[:15])))
        self.check("acknowledged => delivered", total_gaps == 0,
                   "%d acknowledged, %d gaps%s" % (main_acked, total_gaps,
                                                    ("; " + "; ".join(detail)) if detail else ""))
        # 2. QoS 2 exactly once
        dups = 0
        dup_keys = []
        for m in self.monitors:
            for (dev, kind, seq), n in m.got.items():
                if kind == "events" and n > 1 and self.acked.get((dev, kind), {}).get(seq) \
                        == "main":
                    dups += n - 1
                    dup_keys.append("%s:%s#%d" % (m.name, dev, seq))
        q1dups = sum(n - 1 for m in self.monitors for (d, k, s), n in m.got.items()
                     if k == "telemetry" and n > 1)
        self.check("QoS 2 exactly once", dups == 0,
                   "%d duplicate QoS 2 deliveries%s (QoS 1 duplicates, allowed: %d)" % (
                       dups, (": " + ", ".join(dup_keys[:10])) if dup_keys else "", q1dups))
        # 3. commands
        self.check("commands acknowledged => delivered", not cmd_missing,
                   "%d missing%s" % (len(cmd_missing), (": " + ", ".join(
                       "%s#%d" % x for x in cmd_missing[:15])) if cmd_missing else ""))
        # 4. denied topics
        denied = [t for m in self.monitors for t in m.denied]
        wrong_code = sum(n for (v, c), n in self.forbidden_acks.items()
                         if (v == 5 and c != 0x87) or (v == 4 and c != 0))
        self.check("nothing delivered on denied topics", not denied and not wrong_code,
                   "%d deliveries (forbidden publishes: %d acknowledged, %d with a code other "
                   "than v5 0x87 / v3 0; %d private publishes %s)" % (
                       len(denied), sum(self.forbidden_acks.values()), wrong_code,
                       self.commander.private_sent,
                       "withheld from the monitors' fleet/#" if self.monitors[0].used ==
                       self.monitors[0].filters else "outside the monitors' fallback filters"))
        # 5. revoked device
        after_rev = sum(m.revoked_after for m in self.monitors)
        rev = next((d for d in self.devices if d.name == self.revoked_name), None)
        ok = self.revoked_at is not None and self.revoked_connacks_after == 0 and after_rev == 0
        self.check("revoked device stayed out", ok,
                   "%s: %d CONNACK 0 after revocation, %d messages delivered after it, "
                   "refusals %r, DISCONNECT reasons %r" % (
                       self.revoked_name, self.revoked_connacks_after, after_rev,
                       rev.refusals if rev else None, rev.disconnect_reasons if rev else None))
        # 5b. a password attack on an identity must not close its live sessions
        kicked = 0
        with open(self.moat_a.audit_path, errors="replace") as f:
            for line in f:
                if '"disconnect"' in line and "identity banned" in line:
                    kicked += 1
        self.check("attacked identity's session kept", kicked == 0,
                   "%d live sessions closed by an identity ban" % kicked)
        # 5c. correct logins at once from one address (a NAT) are never a ban
        codes, bans = self.nat_result
        self.check("correct logins from one address", bans == 0 and all(c == 0 for c in codes),
                   "%d correct password logins at once from %s, default bans (5): CONNACK "
                   "codes %s, %d address bans" % (NAT_LOGINS, NAT_SRC, codes, bans))
        # 6. leak check. Descriptors: back to the baseline (a little slack for the Redis
        # connection being re-made). Memory: the allocator keeps freed pages, so RSS does not
        # fall back to the fleet-less baseline; a leak shows as RSS growing from one reconnect
        # wave to the next. The peak of the second half of the run (its waves, the kill -9
        # wave) must stay within 16 MiB + 15 % of the first half's peak, and so must RSS after
        # the fleet left.
        base_rss, base_fds = base
        rss, fds = after
        half = a.duration / 2
        first = max([r for t, r in self.rss_samples if t <= half] or [up_rss])
        second = max([r for t, r in self.rss_samples if t > half] or [0])
        bound = first + 16 * 1024 + first * 15 // 100
        fd_ok = fds <= base_fds + 4
        connects = sum(d.connects for d in self.devices)
        self.check("Moat returned to its baseline", fd_ok and second <= bound and rss <= bound,
                   "fds %d -> peak %d -> %d after (bound %d); RSS MiB: baseline %.1f, fleet up "
                   "%.1f, peak of first half %.1f, of second half %.1f (bound %.1f), after %.1f "
                   "(%d device connections in all)" % (
                       base_fds, peak[1], fds, base_fds + 4, base_rss / 1024, up_rss / 1024,
                       first / 1024, second / 1024, bound / 1024, rss / 1024, connects))
        # 7. crashes, exit status, sanitizer reports
        rcs = []
        for m in (self.moat_a, self.moat_b):
            rcs.append(m.stop())
        reports = []
        for m in (self.moat_a, self.moat_b):
            for line in m.stderr().splitlines():
                if SANITIZER.search(line):
                    reports.append("%s: %s" % (m.name, line.strip()[:160]))
        crashed = [n for n in self.notes if "unexpectedly" in n]
        bad_exits = [rc for m in (self.moat_a, self.moat_b) for rc in m.exits if rc != 0]
        self.check("no crash, no sanitizer report", not crashed and not reports and
                   not bad_exits, "exit statuses %r; %s; %s" % (
                       [e for m in (self.moat_a, self.moat_b) for e in m.exits],
                       "; ".join(crashed) or "no unexpected exit",
                       "; ".join(reports[:5]) or "no sanitizer report"))
        # 8. reloads
        self.check("reloads applied", self.reload_failed == 0 and
                   self.reload_ok >= self.reloads + 1,
                   "%d ok, %d failed on replica A (%d SIGHUPs: %d reloads + the revocation)" % (
                       self.reload_ok, self.reload_failed, self.reloads + 1, self.reloads))
        # 9. latency
        samples = []
        try:
            with open(self.probe_out) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2:
                        samples.append((float(parts[0]), float(parts[1])))
        except FileNotFoundError:
            pass

        def window(name):
            lo_t, hi_t = self.windows.get(name, (0, 0))
            return [r for t, r in samples if lo_t <= t <= hi_t]
        un, lo = window("unloaded"), window("loaded")
        bound = 10 * p99(un) + 0.050
        within = p99(lo) <= bound
        text = "unloaded p50 %.1f ms p99 %.1f ms (%d samples); loaded p50 %.1f ms p99 %.1f ms " \
               "(%d samples); bound 10 x unloaded p99 + 50 ms = %.1f ms" % (
                   p50(un) * 1e3, p99(un) * 1e3, len(un), p50(lo) * 1e3, p99(lo) * 1e3,
                   len(lo), bound * 1e3)
        if a.ci:
            print("INFO  %-34s %s (%s; not enforced in the CI setting)" % (
                "p99 round trip", text, "within" if within else "ABOVE"))
        else:
            self.check("p99 round trip within bound", within, text)
        # kill -9: the broker's own loss, reported, never failed on
        k9 = sum(len(v) for v in k9_missing.values())
        print("INFO  %-34s %d acknowledged in the kill -9 phase, %s (Mosquitto saves every "
              "5 s; a kill -9 loses what came after: the broker's loss, not the gateway's)" % (
                  "broker kill -9 loss", k9_acked, ", ".join(
                      "%s missing %d" % (m, len(v)) for m, v in k9_missing.items())))
        if not drained:
            print("note: the drain did not complete within %ds" % a.drain)
        for n in self.notes[:30]:
            print("note: " + n)
        failed = [c for c in self.checks if not c[1]]
        print("soak: %d passed, %d failed" % (len(self.checks) - len(failed), len(failed)))
        return not failed

    reload_ok = 0
    reload_failed = 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ci", action="store_true", help="the short CI setting (300 devices, "
                    "about a minute of faults, latency printed not enforced)")
    ap.add_argument("--devices", type=int)
    ap.add_argument("--duration", type=float, help="seconds under faults (after the ramp)")
    ap.add_argument("--interval", type=float, help="seconds between a device's publishes")
    ap.add_argument("--ramp", type=float)
    ap.add_argument("--reload-every", type=float)
    ap.add_argument("--command-every", type=float, help="seconds between commands to a device")
    ap.add_argument("--drain", type=float)
    ap.add_argument("--kill9-phase", type=float)
    ap.add_argument("--moat", default=os.environ.get("MOAT_BIN"))
    ap.add_argument("--workdir", help="keep logs here (default: a temporary folder, removed "
                    "after a passing run)")
    args = ap.parse_args()
    defaults = dict(devices=300, duration=45, interval=5, ramp=10, reload_every=10,
                    command_every=20, drain=60, kill9_phase=14) if args.ci else \
        dict(devices=2000, duration=1800, interval=15, ramp=90, reload_every=60,
             command_every=60, drain=240, kill9_phase=40)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if not args.moat:
        for cand in ("build/release", "build"):
            p = os.path.join(SOURCE_DIR, cand, "gateway", "cli", "moat")
            if os.access(p, os.X_OK):
                args.moat = p
                break
    if not args.moat:
        sys.exit("soak: set MOAT_BIN or --moat")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 20000 if hard == resource.RLIM_INFINITY else min(hard, 20000)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    workdir = args.workdir or tempfile.mkdtemp(prefix="moat-soak-")
    os.makedirs(workdir, exist_ok=True)

    # Hard deadline: whatever happens, everything is killed and the tool exits.
    # (CI: well inside ctest's 600 s TIMEOUT, so the tool, not ctest, ends its children.)
    limit = args.ramp + args.duration + 2 * args.drain + args.kill9_phase + (
        150 if args.ci else 600)
    def deadline():
        print("soak: hard deadline of %.0fs reached; killing everything" % limit, flush=True)
        kill_all()
        os._exit(2)
    timer = threading.Timer(limit, deadline)
    timer.daemon = True
    timer.start()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: (kill_all(), os._exit(2)))

    # asyncio warns about writes to connections Moat already closed (the floods): expected.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    log("moat %s; workdir %s; %d devices, %.0fs under faults" % (
        args.moat, workdir, args.devices, args.duration))
    ok = False
    try:
        soak = Soak(args, workdir)
        soak.setup()
        ok = asyncio.run(soak.run())
    except Exception as e:  # setup errors and the like: report, clean up, exit 2
        import traceback
        traceback.print_exc()
        print("soak: error: %s" % e, flush=True)
        kill_all()
        sys.exit(2)
    finally:
        kill_all()
    if ok and not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    elif not ok:
        print("soak: logs kept in %s" % workdir)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
