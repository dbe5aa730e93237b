"""The Node.js side of the interoperability suite: MQTT.js (npm `mqtt`) clients and aedes
brokers, all hosted by one `node js/hub.js` process per test file (node's start-up would
otherwise cost ~0.5 s per client). Commands go to the hub as JSON lines; its JSON-line events
are sorted by handle into one EventLog per client or broker. Every wait is bounded; the hub is
killed at teardown."""

import base64
import json
import os
import shutil
import subprocess
import threading
import time

import moat_harness as h

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")


def missing_reason():
    """Why the JS suite cannot run here, or None. tests/run.sh installs node_modules."""
    if shutil.which("node") is None:
        return "node is not installed (deploy/install-deps.sh installs it)"
    for pkg in ("mqtt", "aedes"):
        if not os.path.isdir(os.path.join(JS_DIR, "node_modules", pkg)):
            return ("tests/integration/js/node_modules/%s is missing: run `npm ci` in "
                    "tests/integration/js (tests/run.sh does)" % pkg)
    return None


def b64(data):
    return base64.b64encode(data).decode()


class EventLog:
    """Events of one handle, in arrival order. wait() hands each event out once, so a message
    arriving before the SUBACK a test waits for is still there for the next wait."""

    def __init__(self, hub):
        self.hub = hub
        self.seen = []
        self.taken = set()
        self.first_untaken = 0

    def events(self, name=None):
        with self.hub.cond:
            return [e for e in self.seen if name is None or e["event"] == name]

    def wait(self, predicate, timeout=10.0, message="event"):
        deadline = time.monotonic() + timeout
        with self.hub.cond:
            scanned = self.first_untaken
            while True:
                for i in range(scanned, len(self.seen)):
                    if i not in self.taken and predicate(self.seen[i]):
                        self.taken.add(i)
                        while self.first_untaken in self.taken:
                            self.first_untaken += 1
                        return self.seen[i]
                scanned = len(self.seen)  # what did not match now never will
                if self.hub.exited:
                    raise AssertionError("node exited while waiting for %s; stderr:\n%s"
                                         % (message, self.hub.stderr()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out after %.1fs waiting for %s; stderr:\n%s"
                                         % (timeout, message, self.hub.stderr()))
                self.hub.cond.wait(left)


class Hub:
    """`node js/hub.js`; log(handle) is the EventLog of one client or broker. Events without
    a handle (hub-level errors) go to log(None)."""

    def __init__(self, workdir):
        self.log_path = os.path.join(workdir, "hub.stderr")
        self.proc = subprocess.Popen(["node", os.path.join(JS_DIR, "hub.js")], cwd=JS_DIR,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(self.log_path, "ab"))
        self.cond = threading.Condition()
        self.logs = {}
        self.exited = False
        self.write_lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self._handles = iter(range(1, 1 << 62))

    def new_handle(self, prefix):
        with self.cond:
            handle = "%s%d" % (prefix, next(self._handles))
            self.logs[handle] = EventLog(self)
            return handle

    def log(self, handle):
        with self.cond:
            return self.logs.setdefault(handle, EventLog(self))

    def _read(self):
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "garbage", "line": line.decode(errors="replace")}
            with self.cond:
                self.logs.setdefault(event.get("c"), EventLog(self)).seen.append(event)
                self.cond.notify_all()
        with self.cond:
            self.exited = True
            self.cond.notify_all()

    def send(self, **cmd):
        with self.write_lock:
            self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            self.proc.stdin.flush()

    def stderr(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return ""

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # the hub exits when stdin closes
                self.proc.wait(3)
            except (OSError, subprocess.TimeoutExpired):
                pass
        h.kill_process(self.proc)
        self.proc.stdout.close()


class Aedes:
    """An aedes broker inside the hub, on a kernel-chosen loopback port (`port`)."""

    def __init__(self, hub):
        self.hub = hub
        self.handle = hub.new_handle("aedes")
        self.log = hub.log(self.handle)
        hub.send(op="broker_start", c=self.handle)
        self.port = self.log.wait(lambda e: e["event"] == "listening", 15,
                                  "aedes to listen")["port"]

    def events(self, name=None):
        return self.log.events(name)

    def stop(self):
        if self.hub.proc.poll() is None:
            self.hub.send(op="broker_stop", c=self.handle)
            self.log.wait(lambda e: e["event"] == "stopped", 10, "aedes to stop")


class MqttJs:
    """One MQTT.js client over mTLS to the gateway."""

    def __init__(self, hub, moat, version=4, cert="device1", client_id=None, **connect_opts):
        self.hub = hub
        self.handle = hub.new_handle("js")
        self.log = hub.log(self.handle)
        self.client_id = client_id or "js-%d-%s" % (os.getpid(), self.handle)
        self.moat = moat
        self.version = version
        self.cert = cert
        self.connect_opts = connect_opts
        self._next_id = 0

    def send(self, **cmd):
        self.hub.send(c=self.handle, **cmd)

    def events(self, name=None):
        return self.log.events(name)

    def wait_event(self, predicate, timeout=10.0, message="event"):
        return self.log.wait(predicate, timeout, message)

    def connect(self, timeout=15.0):
        """Sends CONNECT; returns the first connect, error or close event."""
        cert, key = self.moat.certs.client(self.cert) if self.cert else (None, None)
        opts = dict(self.connect_opts)
        port = opts.pop("port", self.moat.port)  # e.g. a WebSocket listener's
        self.send(op="connect", port=port, ca=self.moat.certs.ca, cert=cert, key=key,
                  protocolVersion=self.version, clientId=self.client_id, **opts)
        return self.wait_event(lambda e: e["event"] in ("connect", "error", "close"), timeout,
                               "MQTT.js CONNACK")

    def _call(self, op, answer, timeout, **kw):
        self._next_id += 1
        i = self._next_id
        self.send(op=op, id=i, **kw)
        return self.wait_event(lambda e: e["event"] == answer and e.get("id") == i, timeout,
                               "%s answer to %s" % (answer, op))

    def subscribe(self, topics, timeout=10.0, properties=None):
        """topics: {filter: qos or {qos, nl, rap, rh}}. Returns the SUBACK entries (granted
        QoS / reason codes)."""
        e = self._call("subscribe", "suback", timeout,
                       topics={t: q if isinstance(q, dict) else {"qos": q}
                               for t, q in topics.items()},
                       properties=properties)
        return e["granted"]

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, timeout=15.0):
        """Returns the published event (error, reasonCode) once the QoS flow completed."""
        return self._call("publish", "published", timeout, topic=topic, payload=b64(payload),
                          qos=qos, retain=retain, properties=properties)

    def burst(self, topic, count, qos=1, timeout=60.0):
        """Publishes count messages (payload = decimal index) back to back."""
        return self._call("burst", "burst_done", timeout, topic=topic, count=count, qos=qos)

    def end(self, timeout=10.0):
        """A clean disconnect (MQTT DISCONNECT)."""
        return self._call("end", "ended", timeout)

    def destroy(self):
        """Closes the socket without MQTT DISCONNECT: an abrupt disconnect for the gateway."""
        self.send(op="destroy")

    def message(self, timeout=10.0):
        """The next message event, payload decoded to bytes."""
        e = dict(self.wait_event(lambda e: e["event"] == "message", timeout, "a message"))
        e["payload"] = base64.b64decode(e["payload"])
        return e

    def no_message(self, wait=0.5):
        """Asserts nothing is delivered within `wait` (a bound on absence, not on speed)."""
        try:
            e = self.wait_event(lambda e: e["event"] == "message", wait, "")
        except AssertionError:
            return
        raise AssertionError("unexpected message on %s" % e["topic"])

    def close(self):
        if self.hub.proc.poll() is None:
            self.send(op="client_close")
