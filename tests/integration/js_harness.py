"""Node.js processes for the interoperability suite: MQTT.js (npm `mqtt`) as a client and
aedes as a second backend broker. Both speak JSON lines (js/client.js, js/aedes_broker.js);
a reader thread collects stdout as a list of events. Every wait is bounded; every process is
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
        return "node is not installed (tests/run.sh installs nodejs)"
    for pkg in ("mqtt", "aedes"):
        if not os.path.isdir(os.path.join(JS_DIR, "node_modules", pkg)):
            return ("tests/integration/js/node_modules/%s is missing: run `npm ci` in "
                    "tests/integration/js (tests/run.sh does)" % pkg)
    return None


def b64(data):
    return base64.b64encode(data).decode()


class NodeProcess:
    """A node script speaking JSON lines; events() is everything seen so far."""

    def __init__(self, script, args, log_path):
        self.log_path = log_path
        self.proc = subprocess.Popen(["node", os.path.join(JS_DIR, script)] + list(args),
                                     cwd=JS_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(log_path, "ab"))
        self.seen = []
        self.taken = set()  # indexes into seen already returned by wait_event
        self.first_untaken = 0
        self.exited = False
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "garbage", "line": line.decode(errors="replace")}
            with self.cond:
                self.seen.append(event)
                self.cond.notify_all()
        with self.cond:
            self.exited = True
            self.cond.notify_all()

    def send(self, **cmd):
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()

    def events(self, name=None):
        with self.cond:
            return [e for e in self.seen if name is None or e["event"] == name]

    def wait_event(self, predicate, timeout=10.0, message="event"):
        """The oldest event not yet returned that satisfies predicate. Events of other kinds
        stay available to later waits (a message arriving before a SUBACK is not lost)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            scanned = self.first_untaken
            while True:
                for i in range(scanned, len(self.seen)):
                    if i not in self.taken and predicate(self.seen[i]):
                        self.taken.add(i)
                        while self.first_untaken in self.taken:
                            self.first_untaken += 1
                        return self.seen[i]
                scanned = len(self.seen)  # what did not match now never will
                if self.exited:
                    raise AssertionError("node exited while waiting for %s; stderr:\n%s"
                                         % (message, self.stderr()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out after %.1fs waiting for %s; stderr:\n%s"
                                         % (timeout, message, self.stderr()))
                self.cond.wait(left)

    def stderr(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return ""

    def kill(self):
        """SIGKILL: the socket closes without an MQTT DISCONNECT (abrupt for the peer)."""
        h.kill_process(self.proc)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # both scripts exit cleanly when stdin closes
                self.proc.wait(3)
            except (OSError, subprocess.TimeoutExpired):
                pass
        h.kill_process(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()


class Aedes(NodeProcess):
    """aedes on a kernel-chosen loopback port; `port` is what it reported."""

    def __init__(self, workdir):
        super().__init__("aedes_broker.js", ["0"], os.path.join(workdir, "aedes.stderr"))
        e = self.wait_event(lambda e: e["event"] == "listening", 15, "aedes to listen")
        self.port = e["port"]

    def stop(self):
        self.close()

    def wait_subscribed(self, topic, timeout=10.0):
        h.wait_until(lambda: any(topic in [t for t, _ in e["topics"]]
                                 for e in self.events("subscribe")),
                     timeout, message="aedes to see SUBSCRIBE %s" % topic)


class MqttJs(NodeProcess):
    """One MQTT.js client over mTLS to the gateway."""

    def __init__(self, moat, version=4, cert="device1", client_id=None, **connect_opts):
        self.client_id = client_id or "js-%d-%d" % (os.getpid(), next(_ids))
        super().__init__("client.js", [], os.path.join(moat.dir, self.client_id + ".stderr"))
        self.moat = moat
        self.version = version
        self.cert = cert
        self.connect_opts = connect_opts
        self._next_id = 0

    def connect(self, timeout=15.0):
        """Sends CONNECT; returns the first connect or error event."""
        cert, key = self.moat.certs.client(self.cert) if self.cert else (None, None)
        self.send(op="connect", port=self.moat.port, ca=self.moat.certs.ca, cert=cert, key=key,
                  protocolVersion=self.version, clientId=self.client_id, **self.connect_opts)
        return self.wait_event(lambda e: e["event"] in ("connect", "error", "close"), timeout,
                               "MQTT.js CONNACK")

    def _id(self):
        self._next_id += 1
        return self._next_id

    def _call(self, op, answer, timeout, **kw):
        i = self._id()
        self.send(op=op, id=i, **kw)
        return self.wait_event(lambda e: e["event"] == answer and e.get("id") == i, timeout,
                               "%s answer to %s" % (answer, op))

    def subscribe(self, topics, timeout=10.0, properties=None):
        """topics: {filter: qos}. Returns the SUBACK entries (granted QoS / reason codes)."""
        e = self._call("subscribe", "suback", timeout,
                       topics={t: {"qos": q} for t, q in topics.items()},
                       properties=properties)
        return e["granted"]

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, timeout=15.0):
        """Returns the published event (error, reasonCode) once the QoS flow completed."""
        return self._call("publish", "published", timeout, topic=topic, payload=b64(payload),
                          qos=qos, retain=retain, properties=properties)

    def burst(self, topic, count, qos=1, timeout=60.0):
        return self._call("burst", "burst_done", timeout, topic=topic, count=count, qos=qos)

    def end(self, timeout=10.0):
        return self._call("end", "ended", timeout)

    def message(self, timeout=10.0):
        """The next message event (payload decoded to bytes)."""
        e = self.wait_event(lambda e: e["event"] == "message", timeout, "a message")
        e["payload"] = base64.b64decode(e["payload"])
        return e

    def no_message(self, wait=0.5):
        """Asserts nothing is delivered within `wait` (a bound on absence, not on speed)."""
        try:
            e = self.wait_event(lambda e: e["event"] == "message", wait, "")
        except AssertionError:
            return
        raise AssertionError("unexpected message on %s" % e["topic"])


def _counter():
    n = 0
    while True:
        n += 1
        yield n


_ids = _counter()
