#!/usr/bin/env python3
"""Side-by-side benchmark of Moat against Mosquitto (plain / native TLS), HAProxy and stunnel.

Started by tests/bench/run.sh (which builds moat + moat-bench and generates the PKI in
WORKDIR/certs). Every server listens on a free 127.0.0.1 port; each TLS proxy (HAProxy,
stunnel, Moat) fronts its own plaintext Mosquitto so the broker-side memory and CPU of one
target never leak into another's figures. Scenarios run interleaved across the targets and
are repeated; the report gives medians and ratios. All processes started here are killed on
every exit path.

--pin (issue 26): the system under test — a proxy and its broker together, or the broker
alone — runs on core 0 and moat-bench (the load generator) on core 1, via taskset, so the
client never steals the server's core and each target gets exactly one core. Moat then runs
one worker unless --moat-workers says otherwise. --issue26 runs issue 26's table (and implies
--pin): 4 -> 4 relay scenarios, latency, full handshakes with a distinct device certificate
per connection, a known device reconnecting without a ticket, idle memory; targets
mosquitto-tls, haproxy, moat.
"""

import argparse
import json
import os
import signal
import socket
import shutil
import statistics
import subprocess
import sys
import time

MOAT = os.environ.get("MOAT_BIN", "moat")
BENCH = os.environ.get("MOAT_BENCH_BIN", "moat-bench")
HOST = "127.0.0.1"

PLAIN, NATIVE, HAPROXY, STUNNEL, MOAT_T = "mosquitto", "mosquitto-tls", "haproxy", "stunnel", "moat"
# Moat with tls.verify_cache: false — not run by default; `--targets ...,moat-nocache` shows
# what the verified-chain cache saves on the handshake scenarios.
MOAT_NOCACHE = "moat-nocache"
MOAT_WSS = "moat-wss"  # the same Moat config with a wss listener (MQTT over WebSocket)
# Moat with tuning.scheduler: batch (SCHED_BATCH event loops: a woken gateway does not preempt
# the broker sharing its core). Run by --issue26 beside the default; elsewhere name it.
MOAT_BATCH = "moat-batch"
# Moat with tls.session_tickets: false (no ticket built per handshake) — name it to see what
# that saves on the handshake scenarios.
MOAT_NOTICKET = "moat-noticket"
ALL_TARGETS = [PLAIN, NATIVE, HAPROXY, STUNNEL, MOAT_T, MOAT_WSS]
KNOWN_TARGETS = ALL_TARGETS + [MOAT_NOCACHE, MOAT_BATCH, MOAT_NOTICKET]
PROXIES = (HAPROXY, STUNNEL, MOAT_T, MOAT_NOCACHE, MOAT_WSS, MOAT_BATCH, MOAT_NOTICKET)

# name -> (kind, parameters). Throughput scenarios mirror issue 10's table.
SCENARIOS = {
    # Issue 26's relay shape: 4 publishers -> 4 subscribers, 1:1.
    "tp4_q0_64": ("throughput", {"qos": 0, "size": 64, "batch": 1, "pairs": 4}),
    "tp4_q1_64": ("throughput", {"qos": 1, "size": 64, "batch": 1, "pairs": 4}),
    "tp4_q0_4k": ("throughput", {"qos": 0, "size": 4096, "batch": 1, "pairs": 4}),
    "tp_q0_64_b1": ("throughput", {"qos": 0, "size": 64, "batch": 1}),
    "tp_q0_64_b32": ("throughput", {"qos": 0, "size": 64, "batch": 32}),
    "tp_q1_64": ("throughput", {"qos": 1, "size": 64, "batch": 1}),
    "tp_q0_4k": ("throughput", {"qos": 0, "size": 4096, "batch": 1}),
    "latency_5k_q1": ("latency", {"rate": 5000, "qos": 1, "size": 64}),
    # The same with a CPU-bound process sharing the server core (pinned) or the machine: what
    # tuning.scheduler: batch costs a device when a busy neighbour shares the gateway's cores.
    "latency_5k_q1_busy": ("latency", {"rate": 5000, "qos": 1, "size": 64, "busy": True}),
    # A known device reconnecting without a ticket: the same certificate every time.
    "handshake": ("handshake", {}),
    # New devices: a distinct certificate and key per connection (gen_fleet.py), each used
    # once per server process, so no server-side cache can help.
    "handshake_fleet": ("handshake", {"fleet": True}),
    "resume": ("handshake", {"resume": True}),
    "idle": ("idle", {}),
    "scaling": ("scaling", {"qos": 0, "size": 64, "batch": 32, "publishers": 4}),
}
TITLES = {
    "tp4_q0_64": "QoS 0, 64 B, 4 -> 4",
    "tp4_q1_64": "QoS 1, 64 B, 4 -> 4 (window 64)",
    "tp4_q0_4k": "QoS 0, 4 KiB, 4 -> 4",
    "tp_q0_64_b1": "QoS 0, 64 B, 1 packet/record",
    "tp_q0_64_b32": "QoS 0, 64 B, 32 packets/record",
    "tp_q1_64": "QoS 1, 64 B (window 64)",
    "tp_q0_4k": "QoS 0, 4 KiB",
}

ISSUE26_SCENARIOS = ["tp4_q0_64", "tp4_q1_64", "tp4_q0_4k", "latency_5k_q1",
                     "latency_5k_q1_busy", "handshake_fleet", "handshake", "idle"]
ISSUE26_TARGETS = [NATIVE, HAPROXY, MOAT_T, MOAT_BATCH]

processes = []  # every Popen started here
# --pin: CPU lists for taskset; None = not pinned.
PIN = {"server": None, "client": None}


def pinned(cmd, role):
    cpus = PIN[role]
    return ["taskset", "-c", cpus] + cmd if cpus is not None else cmd


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def kill_all():
    for p in processes:
        if p.poll() is None:
            try:
                p.terminate()
            except OSError:
                pass
    deadline = time.monotonic() + 3
    for p in processes:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def on_signal(signum, frame):
    raise SystemExit(128 + signum)


_handed_out = set()


def free_port():
    # Never the same port twice: consecutive bind(0) calls may repeat one.
    while True:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def start(name, cmd, workdir, stdout=None):
    logf = open(os.path.join(workdir, name + ".log"), "w")
    # taskset execs the server: the PID is the server's own (CPU / RSS sampling stay right).
    p = subprocess.Popen(pinned(cmd, "server"), stdout=stdout or logf, stderr=logf,
                         stdin=subprocess.DEVNULL, cwd=workdir)
    p.bench_name = name
    p.bench_log = logf.name
    processes.append(p)
    return p


def wait_port(proc, port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with socket.socket() as s:
            s.settimeout(0.3)
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    with open(proc.bench_log) as f:
        tail = f.read()[-2000:]
    raise SystemExit("%s did not start listening on %d:\n%s" % (proc.bench_name, port, tail))


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


# ---------------------------------------------------------------------------------------------
# Servers

def mosquitto(workdir, name, tls_certs=None):
    port = free_port()
    conf = ["per_listener_settings false", "persistence false", "log_dest none",
            "listener %d %s" % (port, HOST)]
    if os.geteuid() == 0:
        # Started as root, Mosquitto switches to user `mosquitto`, which cannot read the
        # private work folder; stay root for this throw-away loopback instance.
        conf.append("user root")
    if tls_certs:
        conf += ["cafile " + tls_certs + "/ca.pem", "certfile " + tls_certs + "/server.pem",
                 "keyfile " + tls_certs + "/server.key", "require_certificate true",
                 "use_identity_as_username true", "allow_anonymous false"]
    else:
        conf += ["allow_anonymous true"]
    path = write(os.path.join(workdir, name + ".conf"), "\n".join(conf) + "\n")
    p = start(name, ["mosquitto", "-c", path], workdir)
    wait_port(p, port)
    return port, p


def haproxy(workdir, certs, backend_port, suffix=""):
    port = free_port()
    bundle = os.path.join(workdir, "haproxy-server.pem")
    with open(bundle, "w") as out:
        for f in ("server.pem", "server.key"):
            out.write(open(os.path.join(certs, f)).read())
    cfg = """global
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend mqtts
    bind %s:%d ssl crt %s ca-file %s/ca.pem verify required
    default_backend broker
backend broker
    server mosquitto %s:%d
""" % (HOST, port, bundle, certs, HOST, backend_port)
    path = write(os.path.join(workdir, "haproxy%s.cfg" % suffix), cfg)
    p = start("haproxy" + suffix, ["haproxy", "-db", "-f", path], workdir)
    wait_port(p, port)
    return port, p


def stunnel(workdir, certs, backend_port, suffix=""):
    port = free_port()
    cfg = """foreground = yes
pid =
syslog = no
debug = 3
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
[mqtts]
accept = %s:%d
connect = %s:%d
cert = %s/server.pem
key = %s/server.key
CAfile = %s/ca.pem
verifyChain = yes
sslVersionMin = TLSv1.2
""" % (HOST, port, HOST, backend_port, certs, certs, certs)
    path = write(os.path.join(workdir, "stunnel%s.conf" % suffix), cfg)
    p = start("stunnel" + suffix, ["stunnel", path], workdir)
    wait_port(p, port)
    return port, p


def moat(workdir, certs, backend_port, name, workers, verify_cache=True, websocket=False,
         scheduler="normal", tickets=True):
    port = free_port()
    cfg = """listeners:
  - name: bench
    bind: %(host)s:%(port)d
    tls:
      cert: %(certs)s/server.pem
      key: %(certs)s/server.key
      client_ca: %(certs)s/ca.pem
      require_client_cert: true
      verify_cache: %(verify_cache)s%(tickets)s
    workers: %(workers)s%(websocket)s
backend:
  address: %(host)s:%(backend)d
auth:
  methods: [certificate]
policy:
  default_roles: [bench]
  roles:
    bench:
      publish: ["bench/#"]
      subscribe: ["bench/#"]
limits:
  max_connections: 100000
  max_connections_per_ip: 100000
  connection_rate_per_ip: unlimited
  publish_rate: unlimited
  publish_bytes_rate: unlimited
  control_packet_rate: unlimited
  max_inflight: 65535
bans:
  auth_failures: 100000
anomaly:
  connection_storm: 100000000
metrics:
  bind: %(host)s:%(metrics)d
audit:
  log: %(workdir)s/%(name)s-audit.log
%(tuning)s""" % {"host": HOST, "port": port, "certs": certs, "workers": workers, "backend": backend_port,
       "metrics": free_port(), "workdir": workdir, "name": name,
       "verify_cache": "true" if verify_cache else "false",
       "tickets": "" if tickets else "\n      session_tickets: false",
       "tuning": "" if scheduler == "normal" else "tuning:\n  scheduler: %s\n" % scheduler,
       "websocket": "\n    websocket: {path: /mqtt}" if websocket else ""}
    path = write(os.path.join(workdir, name + ".yaml"), cfg)
    check = subprocess.run([MOAT, "check", "-c", path], capture_output=True, text=True)
    if check.returncode != 0:
        raise SystemExit("moat check failed for %s:\n%s%s" % (path, check.stdout, check.stderr))
    p = start(name, [MOAT, "run", "-c", path], workdir)
    wait_port(p, port)
    return port, p


def sink(workdir):
    port = free_port()
    p = start("sink", [BENCH, "sink", "--port", str(port)], workdir)
    wait_port(p, port)
    return port, p


def start_target(t, workdir, certs, workers, suffix):
    """Starts target t (its proxy and its own broker); suffix keeps names / logs apart."""
    if t == PLAIN:
        port, p = mosquitto(workdir, "mosquitto-plain" + suffix)
        return {"port": port, "tls": False, "procs": {"broker": p}}
    if t == NATIVE:
        port, p = mosquitto(workdir, "mosquitto-tls" + suffix, tls_certs=certs)
        return {"port": port, "tls": True, "procs": {"broker": p}}
    bport, b = mosquitto(workdir, "mosquitto-%s%s" % (t, suffix))
    if t == HAPROXY:
        port, p = haproxy(workdir, certs, bport, suffix)
    elif t == STUNNEL:
        port, p = stunnel(workdir, certs, bport, suffix)
    elif t == MOAT_WSS:
        port, p = moat(workdir, certs, bport, "moat-wss" + suffix, workers, websocket=True)
        return {"port": port, "tls": True, "ws": "/mqtt", "procs": {t: p, "broker": b}}
    else:
        port, p = moat(workdir, certs, bport, t + suffix, workers, verify_cache=t != MOAT_NOCACHE,
                       scheduler="batch" if t == MOAT_BATCH else "normal",
                       tickets=t != MOAT_NOTICKET)
    return {"port": port, "tls": True, "procs": {t: p, "broker": b}}


def stop_target(target):
    for p in target["procs"].values():
        if p.poll() is None:
            p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        processes.remove(p)


# ---------------------------------------------------------------------------------------------
# Runs

def client_args(target, certs):
    args = ["--host", HOST, "--port", str(target["port"])]
    if target["tls"]:
        args += ["--tls", "--ca", certs + "/ca.pem", "--cert", certs + "/device1.pem",
                 "--key", certs + "/device1.key"]
    if target.get("ws"):
        args += ["--ws", target["ws"]]
    for label, proc in target["procs"].items():
        args += ["--pid", "%s=%d" % (label, proc.pid)]
    return args


def run_bench(cmd, timeout):
    try:
        r = subprocess.run(pinned([BENCH] + cmd, "client"), capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "timed out"}
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if not lines:
        return {"ok": False, "error": (r.stderr or r.stdout).strip()[-300:]}
    res = json.loads(lines[-1])
    if r.returncode != 0 and res.get("ok", True):
        res["ok"] = False
    if not res.get("ok", False) and "error" not in res:
        res["error"] = r.stderr.strip()[-300:]
    return res


def run_scenario(name, target, certs, d, rep=0):
    kind, p = SCENARIOS[name]
    base = client_args(target, certs)
    if kind == "throughput":
        cmd = ["throughput", "--qos", str(p["qos"]), "--size", str(p["size"]),
               "--batch", str(p["batch"]), "--seconds", str(d["seconds"]),
               "--warmup", str(d["warmup"])] + base
        if p.get("pairs"):
            cmd += ["--pairs", str(p["pairs"])]
        return run_bench(cmd, d["seconds"] + d["warmup"] + 30)
    if kind == "latency":
        cmd = ["latency", "--rate", str(p["rate"]), "--qos", str(p["qos"]), "--size",
               str(p["size"]), "--seconds", str(d["lat_seconds"]), "--warmup",
               str(d["warmup"])] + base
        if not p.get("busy"):
            return run_bench(cmd, d["lat_seconds"] + d["warmup"] + 30)
        hog = subprocess.Popen(pinned(["/bin/sh", "-c", "while :; do :; done"], "server"))
        try:
            return run_bench(cmd, d["lat_seconds"] + d["warmup"] + 30)
        finally:
            hog.kill()
            hog.wait()
    if kind == "handshake":
        cmd = ["handshake", "--count", str(d["handshakes"]), "--concurrency", "4"] + base
        if p.get("resume"):
            cmd.append("--resume")
        if p.get("fleet") and target["tls"]:  # plain Mosquitto: no certificates at all
            # Repetition r uses devices [r*N, (r+1)*N): a server process never sees one twice.
            cmd += ["--fleet", fleet_path(certs), "--fleet-offset", str(rep * d["handshakes"])]
        return run_bench(cmd, 120)
    if kind == "idle":
        cmd = ["idle", "--count", str(d["idle"]), "--concurrency", "4", "--settle-ms",
               str(d["settle_ms"])] + base
        return run_bench(cmd, 120)
    if kind == "scaling":
        cmd = ["throughput", "--qos", str(p["qos"]), "--size", str(p["size"]),
               "--batch", str(p["batch"]), "--publishers", str(p["publishers"]),
               "--no-subscriber", "--count-at", "%s:%d" % (HOST, target["sink_port"]),
               "--seconds", str(d["seconds"]), "--warmup", str(d["warmup"])] + base
        return run_bench(cmd, d["seconds"] + d["warmup"] + 30)
    raise ValueError(kind)


def fleet_path(certs):
    return os.path.join(certs, "fleet.pem")


def make_fleet(certs, count):
    here = os.path.dirname(os.path.abspath(__file__))
    t = time.monotonic()
    subprocess.run([sys.executable, os.path.join(here, "gen_fleet.py"), certs, str(count),
                    fleet_path(certs)], check=True)
    log("device fleet: %d distinct P-256 certificates in %s (%.1f s, cached)" % (
        count, fleet_path(certs), time.monotonic() - t))


def perf_profile(perf_dir, scenario, target, proc, run):
    """Runs run() with `perf record` sampling the gateway process `proc`; writes the flat
    profile (self time by shared object and symbol) to PERF_DIR/SCENARIO-TARGET.txt and
    returns run()'s result. Without perf (or when it cannot attach) run() goes unprofiled."""
    data = os.path.join(perf_dir, "%s-%s.data" % (scenario, target))
    cmd = pinned(["perf", "record", "-q", "-F", "499", "-g", "-p", str(proc.pid), "-o", data],
                 "client")
    try:
        rec = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as e:
        log("perf: cannot start (%s): not profiled" % e)
        return run()
    processes.append(rec)
    time.sleep(0.3)  # attached before the load starts
    try:
        return run()
    finally:
        rec.send_signal(signal.SIGINT)
        try:
            rec.wait(30)
        except subprocess.TimeoutExpired:
            rec.kill()
            rec.wait()
        processes.remove(rec)
        out = os.path.join(perf_dir, "%s-%s.txt" % (scenario, target))
        with open(out, "w") as f:
            subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                            "--sort", "dso,sym", "-g", "none", "--percent-limit", "0.5"],
                           stdout=f, stderr=subprocess.DEVNULL, timeout=120)
        log("perf: %s" % out)


SYSCALLS = ["read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg",
            "epoll_wait", "epoll_ctl"]


def count_syscalls(proc, seconds, run, warmup):
    """Runs run() while `perf stat` counts the system calls of the gateway process `proc` for
    `seconds` inside the measured window (after the warm-up); adds them to run()'s result as
    syscalls_per_msg {name: calls per delivered message}. Without perf the result is as is."""
    import threading
    out = {}

    def counter():
        time.sleep(warmup + 0.3)
        cmd = pinned(["perf", "stat", "-x", ",", "-e",
                      ",".join("syscalls:sys_enter_" + n for n in SYSCALLS),
                      "-p", str(proc.pid), "--", "sleep", str(seconds)], "client")
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
        except (OSError, subprocess.TimeoutExpired):
            return
        for line in r.stderr.splitlines():
            f = line.split(",")
            if len(f) > 2 and f[2].startswith("syscalls:sys_enter_") and f[0].isdigit():
                out[f[2][len("syscalls:sys_enter_"):]] = int(f[0])

    t = threading.Thread(target=counter)
    t.start()
    res = run()
    t.join()
    if out and res.get("ok") and res.get("msg_per_s"):
        msgs = res["msg_per_s"] * seconds
        res["syscalls_per_msg"] = {k: v / msgs for k, v in out.items() if v}
    return res


def cpu_ticks(pids):
    """utime + stime (clock ticks) of the given processes, those still alive."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def wait_quiet(pids, limit=10.0):
    """Waits until the servers of every target are idle (under 2 % of a core over 200 ms), at
    most `limit` seconds: a broker still draining the queues of the last run would otherwise
    share core 0 with the next target's run (pinned, every target's servers share it)."""
    hz = os.sysconf("SC_CLK_TCK")
    end = time.monotonic() + limit
    last = cpu_ticks(pids)
    while time.monotonic() < end:
        time.sleep(0.2)
        now = cpu_ticks(pids)
        if (now - last) / hz < 0.004:
            return
        last = now


def summary_line(name, target, res):
    if not res.get("ok"):
        return "%-14s %-14s FAILED: %s" % (name, target, res.get("error", "?"))
    cmd = res["cmd"]
    if cmd == "throughput":
        per = res.get("cpu_us_per_msg", {})
        cpu = per.get("total")
        gw = per.get(target)  # the proxy process alone (its --pid label is the target name)
        sc = res.get("syscalls_per_msg")
        return "%-14s %-14s %9.0f msg/s  cpu %s us/msg%s%s" % (
            name, target, res["msg_per_s"], "%.2f" % cpu if cpu is not None else "-",
            "  (gateway %.2f)" % gw if gw is not None else "",
            ("  syscalls/msg %.2f (%s)" % (sum(sc.values()), ", ".join(
                "%s %.2f" % kv for kv in sorted(sc.items(), key=lambda kv: -kv[1])))
             if sc else ""))
    if cmd == "latency":
        return "%-14s %-14s p50 %.0f us  p99 %.0f us  (%d/%d)" % (
            name, target, res["p50_us"], res["p99_us"], res["received"], res["sent"])
    if cmd == "handshake":
        return "%-14s %-14s %.0f/s  cpu %.0f us/handshake%s" % (
            name, target, res["per_s"], res.get("cpu_us_per_handshake", {}).get("total", 0),
            "  (%d resumed)" % res.get("resumed", 0) if res.get("resume") else "")
    if cmd == "idle":
        return "%-14s %-14s %.1f KiB/conn" % (
            name, target, res.get("rss_kib_per_conn", {}).get("total", 0))
    return "%-14s %-14s %s" % (name, target, res)


# ---------------------------------------------------------------------------------------------
# Report

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def pick(results, scen, target, path):
    out = []
    for r in results.get(scen, {}).get(target, []):
        if not r.get("ok"):
            continue
        v = r
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        out.append(v)
    return med(out)


def fmt(v, spec="%.0f"):
    return "—" if v is None else spec % v


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def target_checks(results):
    """Issue 10's acceptance targets, from the medians (and issue 23's WebSocket one)."""
    out = []
    for s in [s for s in results if SCENARIOS[s][0] == "throughput"]:
        r = ratio(pick(results, s, MOAT_WSS, ["cpu_us_per_msg", MOAT_WSS]),
                  pick(results, s, MOAT_T, ["cpu_us_per_msg", "moat"]))
        if r is not None:
            out.append(("%s: wss CPU/msg <= 1.10 x mqtts (moat alone)" % TITLES[s],
                        "%.2f x" % r, r <= 1.10))
    for s in [s for s in results if SCENARIOS[s][0] == "throughput"]:
        m = pick(results, s, MOAT_T, ["msg_per_s"])
        for base, need in ((PLAIN, 0.97), (HAPROXY, 1.05)):
            r = ratio(m, pick(results, s, base, ["msg_per_s"]))
            out.append(("%s: moat >= %.2f x %s" % (TITLES[s], need, base), fmt(r, "%.2f x"),
                        None if r is None else r >= need))
        r = ratio(pick(results, s, MOAT_T, ["cpu_us_per_msg", "moat"]),
                  pick(results, s, HAPROXY, ["cpu_us_per_msg", "haproxy"]))
        out.append(("%s: moat CPU/msg <= 0.8 x haproxy's" % TITLES[s], fmt(r, "%.2f x"),
                    None if r is None else r <= 0.8))
    if "latency_5k_q1" in results:
        for k, limit in (("p50_us", 30), ("p99_us", 80)):
            m = pick(results, "latency_5k_q1", MOAT_T, [k])
            b = pick(results, "latency_5k_q1", PLAIN, [k])
            added = None if m is None or b is None else m - b
            out.append(("latency %s added over mosquitto <= %d us" % (k[:3], limit),
                        fmt(added, "%+.0f us"), None if added is None else added <= limit))
    if "handshake" in results:
        v = pick(results, "handshake", MOAT_T, ["cpu_us_per_handshake", "total"])
        out.append(("TLS handshake + CONNECT <= 450 us server CPU (moat + broker)",
                    fmt(v, "%.0f us"), None if v is None else v <= 450))
    if "resume" in results:
        full = pick(results, "handshake", MOAT_T, ["cpu_us_per_handshake", "total"])
        v = pick(results, "resume", MOAT_T, ["cpu_us_per_handshake", "total"])
        r = ratio(v, full)
        out.append(("session resumption makes reconnects cheaper (resumed / full CPU)",
                     "%s (%s)" % (fmt(v, "%.0f us"), fmt(r, "%.2f x")),
                     None if r is None else r < 1))
    if "idle" in results:
        v = pick(results, "idle", MOAT_T, ["rss_kib_per_conn", "moat"])
        out.append(("gateway RSS per idle TLS connection <= 16 KiB", fmt(v, "%.1f KiB"),
                    None if v is None else v <= 16))
    if "scaling" in results:
        r = ratio(pick(results, "scaling", "moat-w2", ["msg_per_s"]),
                  pick(results, "scaling", "moat-w1", ["msg_per_s"]))
        out.append(("2 workers >= 1.7 x 1 worker (sink backend)", fmt(r, "%.2f x"),
                    None if r is None else r >= 1.7))
    return out


def issue26_table(results, targets):
    """Issue 26's table: native Mosquitto TLS, HAProxy -> Mosquitto, Moat -> Mosquitto, and
    the two ratios; "gateway" = the proxy process alone, per delivered message. With
    moat-batch in the run, the same three columns again for tuning.scheduler: batch."""
    if not any(t in targets for t in (NATIVE, HAPROXY, MOAT_T)):
        return []
    moats = [t for t in (MOAT_T, MOAT_BATCH) if t in targets]
    out = []
    w = out.append
    w("### Issue 26 table (Moat ÷ HAProxy, Moat ÷ native Mosquitto TLS)")
    w("")
    heads = {MOAT_T: "Moat → Mosquitto", MOAT_BATCH: "Moat, scheduler: batch"}
    w("| scenario | native Mosquitto TLS | HAProxy → Mosquitto | " + " | ".join(
        "%s | ÷ HAProxy | ÷ native" % heads[m] for m in moats) + " |")
    w("|---|---:|---:|" + "---:|---:|---:|" * len(moats))

    def row(title, values, spec="%.0f", native_ratio=True, diff=False):
        native, hap = values[NATIVE], values[HAPROXY]
        cells = [fmt(native, spec), fmt(hap, spec)]
        for m in moats:
            v = values[m]
            last = ""
            if diff:
                last = fmt(None if v is None or native is None else v - native, "%+.1f µs")
            elif native_ratio:
                last = fmt(ratio(v, native), "%.2f")
            cells += [fmt(v, spec), fmt(ratio(v, hap), "%.2f"), last]
        w("| %s | %s |" % (title, " | ".join(cells)))

    def each(s, path_of):
        return {t: pick(results, s, t, path_of(t)) for t in (NATIVE, HAPROXY) + tuple(moats)}

    for s in ("tp4_q0_64", "tp4_q1_64", "tp4_q0_4k", "tp_q0_64_b1", "tp_q1_64", "tp_q0_4k"):
        if s not in results:
            continue
        row(TITLES[s] + ": msg/s", each(s, lambda t: ["msg_per_s"]))
        cpu = each(s, lambda t: ["cpu_us_per_msg", t])
        cpu[NATIVE] = None
        row(TITLES[s] + ": gateway µs/msg", cpu, "%.1f", native_ratio=False)
    for s, title in (("latency_5k_q1", "latency QoS 1 @5k/s p50 µs"),
                     ("latency_5k_q1_busy", "the same, a busy process on the server core")):
        if s in results:
            row(title, each(s, lambda t: ["p50_us"]), "%.1f", diff=True)
    for s, title in (("handshake_fleet", "full mTLS handshake + CONNECT, distinct device certs"),
                     ("handshake", "known device reconnect (same chain, no ticket)")):
        if s in results:
            row(title + ", µs CPU (gateway + broker)",
                each(s, lambda t: ["cpu_us_per_handshake", "total"]))
    if "idle" in results:
        row("idle TLS connection, KB RSS (gateway + broker)",
            each("idle", lambda t: ["rss_kib_per_conn", "total"]), spec="%.1f")
    w("")
    return out


def issue26_checks(results):
    """Issue 26's targets, from the medians (None: not measured in this run), for moat and,
    when it ran, moat-batch."""
    out = []

    def tp(s, t, path):
        return pick(results, s, t, path)

    for m in (MOAT_T, MOAT_BATCH):
        if not any(m in per_target for per_target in results.values()):
            continue
        for s, need_tp, need_cpu in (("tp4_q0_64", 1.25, 0.6), ("tp4_q1_64", 1.25, 0.6),
                                     ("tp4_q0_4k", 1.15, 0.85)):
            if s not in results:
                continue
            r = ratio(tp(s, m, ["msg_per_s"]), tp(s, HAPROXY, ["msg_per_s"]))
            out.append(("%s: %s >= %.2f x haproxy msg/s" % (TITLES[s], m, need_tp),
                        fmt(r, "%.2f x"), None if r is None else r >= need_tp))
            r = ratio(tp(s, m, ["cpu_us_per_msg", m]),
                      tp(s, HAPROXY, ["cpu_us_per_msg", "haproxy"]))
            out.append(("%s: %s µs/msg <= %.2f x haproxy's" % (TITLES[s], m, need_cpu),
                        fmt(r, "%.2f x"), None if r is None else r <= need_cpu))
        if "latency_5k_q1" in results:
            v = tp("latency_5k_q1", m, ["p50_us"])
            n = tp("latency_5k_q1", NATIVE, ["p50_us"])
            added = None if v is None or n is None else v - n
            out.append(("latency QoS 1 @5k/s: %s p50 <= native + 25 µs" % m,
                        fmt(added, "%+.1f µs"), None if added is None else added <= 25))
        for s, need in (("handshake_fleet", 0.7), ("handshake", 0.5)):
            if s in results:
                r = ratio(tp(s, m, ["cpu_us_per_handshake", "total"]),
                          tp(s, NATIVE, ["cpu_us_per_handshake", "total"]))
                out.append(("%s: %s + broker CPU <= %.1f x native" % (s, m, need),
                            fmt(r, "%.2f x"), None if r is None else r <= need))
        if "idle" in results:
            v = tp("idle", m, ["rss_kib_per_conn", "total"])
            out.append(("idle TLS connection: %s + broker <= 25 KB" % m, fmt(v, "%.1f KB"),
                        None if v is None else v <= 25))
    return out


def report(results, targets, repeat, workers):
    out = []
    w = out.append
    proxy_label = {HAPROXY: "haproxy", STUNNEL: "stunnel", MOAT_T: "moat",
                   MOAT_NOCACHE: MOAT_NOCACHE, MOAT_WSS: MOAT_WSS, MOAT_BATCH: MOAT_BATCH,
                   MOAT_NOTICKET: MOAT_NOTICKET}
    w("Medians of %d interleaved run(s); 127.0.0.1, TLS 1.3, P-256 client certificates, "
      "1 publisher -> 1 subscriber unless the scenario says 4 -> 4; moat workers: %s; %s. "
      "CPU = utime+stime from /proc of the server-side processes (proxy + its broker) per "
      "delivered message; \"gateway\" = the proxy alone. %s" % (
          repeat, workers,
          "pinned: system under test on CPU %s, load generator on CPU %s" % (
              PIN["server"], PIN["client"]) if PIN["server"] is not None else "not pinned",
          time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    w("")
    out.extend(issue26_table(results, targets))
    tp = [s for s in results if SCENARIOS[s][0] == "throughput"]
    if tp:
        w("### Relay throughput (msg/s received by the subscriber)")
        w("")
        w("| scenario | " + " | ".join(targets) +
          " | moat / mosquitto | moat / haproxy | moat / mosquitto-tls |")
        w("|---|" + "---:|" * (len(targets) + 3))
        for s in tp:
            vals = {t: pick(results, s, t, ["msg_per_s"]) for t in targets}
            w("| %s | %s | %s | %s | %s |" % (
                TITLES[s], " | ".join(fmt(vals[t]) for t in targets),
                fmt(ratio(vals.get(MOAT_T), vals.get(PLAIN)), "%.2f"),
                fmt(ratio(vals.get(MOAT_T), vals.get(HAPROXY)), "%.2f"),
                fmt(ratio(vals.get(MOAT_T), vals.get(NATIVE)), "%.2f")))
        w("")
        w("### Server CPU per delivered message (us; proxy+broker, proxy alone = gateway CPU "
          "in brackets)")
        w("")
        w("| scenario | " + " | ".join(targets) +
          " | moat gateway / haproxy gateway | moat+broker / mosquitto-tls |")
        w("|---|" + "---:|" * (len(targets) + 2))
        for s in tp:
            cells = []
            for t in targets:
                total = pick(results, s, t, ["cpu_us_per_msg", "total"])
                cell = fmt(total, "%.2f")
                if t in PROXIES:
                    cell += " (%s)" % fmt(pick(results, s, t, ["cpu_us_per_msg", proxy_label[t]]),
                                          "%.2f")
                cells.append(cell)
            r = ratio(pick(results, s, MOAT_T, ["cpu_us_per_msg", "moat"]),
                      pick(results, s, HAPROXY, ["cpu_us_per_msg", "haproxy"]))
            rn = ratio(pick(results, s, MOAT_T, ["cpu_us_per_msg", "total"]),
                       pick(results, s, NATIVE, ["cpu_us_per_msg", "total"]))
            w("| %s | %s | %s | %s |" % (TITLES[s], " | ".join(cells), fmt(r, "%.2f"),
                                         fmt(rn, "%.2f")))
        w("")
    for s, title in (("latency_5k_q1", ""),
                     ("latency_5k_q1_busy", ", a CPU-bound process sharing the server core")):
        if s not in results:
            continue
        w("### Latency, open loop 5000 msg/s, QoS 1, 64 B (us)%s" % title)
        w("")
        w("| target | p50 | p90 | p99 | p99.9 | p50 added vs mosquitto | p99 added vs mosquitto |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        base50 = pick(results, s, PLAIN, ["p50_us"])
        base99 = pick(results, s, PLAIN, ["p99_us"])
        for t in targets:
            p = {k: pick(results, s, t, [k]) for k in ("p50_us", "p90_us", "p99_us", "p999_us")}
            a50 = None if p["p50_us"] is None or base50 is None else p["p50_us"] - base50
            a99 = None if p["p99_us"] is None or base99 is None else p["p99_us"] - base99
            w("| %s | %s | %s | %s | %s | %s | %s |" % (
                t, fmt(p["p50_us"]), fmt(p["p90_us"]), fmt(p["p99_us"]), fmt(p["p999_us"]),
                fmt(a50, "%+.0f"), fmt(a99, "%+.0f")))
        w("")
    if "handshake_fleet" in results:
        w("### Full handshakes of new devices (a distinct certificate and key per connection)")
        w("")
        w("| target | sessions/s | server CPU us/session | proxy alone |")
        w("|---|---:|---:|---:|")
        for t in targets:
            w("| %s | %s | %s | %s |" % (
                t, fmt(pick(results, "handshake_fleet", t, ["per_s"])),
                fmt(pick(results, "handshake_fleet", t, ["cpu_us_per_handshake", "total"])),
                fmt(pick(results, "handshake_fleet", t, ["cpu_us_per_handshake", proxy_label[t]])
                    if t in PROXIES else None)))
        w("")
    if "handshake" in results or "resume" in results or "idle" in results:
        w("### Connections: TLS handshake + CONNECT (full, and resumed with the previous "
          "connection's ticket), idle memory")
        w("")
        w("| target | sessions/s | server CPU us/session | proxy alone | "
          "resumed: sessions/s | server CPU us | proxy alone | resumed share | "
          "RSS KiB/idle conn | proxy alone |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for t in targets:
            proxy_cpu = proxy_rcpu = proxy_rss = None
            if t in PROXIES:
                proxy_cpu = pick(results, "handshake", t, ["cpu_us_per_handshake", proxy_label[t]])
                proxy_rcpu = pick(results, "resume", t, ["cpu_us_per_handshake", proxy_label[t]])
                proxy_rss = pick(results, "idle", t, ["rss_kib_per_conn", proxy_label[t]])
            share = ratio(pick(results, "resume", t, ["resumed"]),
                          pick(results, "resume", t, ["ok_count"]))
            w("| %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                t, " (no TLS)" if t == PLAIN else "",
                fmt(pick(results, "handshake", t, ["per_s"])),
                fmt(pick(results, "handshake", t, ["cpu_us_per_handshake", "total"])),
                fmt(proxy_cpu),
                fmt(pick(results, "resume", t, ["per_s"])),
                fmt(pick(results, "resume", t, ["cpu_us_per_handshake", "total"])),
                fmt(proxy_rcpu), fmt(share, "%.2f"),
                fmt(pick(results, "idle", t, ["rss_kib_per_conn", "total"]), "%.1f"),
                fmt(proxy_rss, "%.1f")))
        w("")
    if "scaling" in results:
        w("### Worker scaling: moat alone against `moat-bench sink` "
          "(4 publishers, QoS 0, 64 B, 32/record)")
        w("")
        w("| workers | msg/s at the sink | moat CPU us/msg | vs 1 worker |")
        w("|---|---:|---:|---:|")
        one = pick(results, "scaling", "moat-w1", ["msg_per_s"])
        for t in ("moat-w1", "moat-w2"):
            v = pick(results, "scaling", t, ["msg_per_s"])
            w("| %s | %s | %s | %s |" % (
                t[-1], fmt(v), fmt(pick(results, "scaling", t, ["cpu_us_per_msg", "moat"]), "%.2f"),
                fmt(ratio(v, one), "%.2f")))
        w("")
    if MOAT_WSS in targets and MOAT_T in targets:
        w("### MQTT over WebSocket: moat wss vs moat mqtts (same config, same run)")
        w("")
        w("| scenario | wss msg/s | mqtts msg/s | wss proxy CPU us/msg | mqtts proxy CPU us/msg "
          "| wss / mqtts CPU |")
        w("|---|---:|---:|---:|---:|---:|")
        for s in tp:
            cw = pick(results, s, MOAT_WSS, ["cpu_us_per_msg", MOAT_WSS])
            cm = pick(results, s, MOAT_T, ["cpu_us_per_msg", "moat"])
            w("| %s | %s | %s | %s | %s | %s |" % (
                TITLES[s], fmt(pick(results, s, MOAT_WSS, ["msg_per_s"])),
                fmt(pick(results, s, MOAT_T, ["msg_per_s"])), fmt(cw, "%.2f"), fmt(cm, "%.2f"),
                fmt(ratio(cw, cm), "%.2f")))
        if "idle" in results:
            w("| idle RSS KiB/conn (proxy alone) | %s | %s | | | |" % (
                fmt(pick(results, "idle", MOAT_WSS, ["rss_kib_per_conn", MOAT_WSS]), "%.1f"),
                fmt(pick(results, "idle", MOAT_T, ["rss_kib_per_conn", "moat"]), "%.1f")))
        w("")
    checks26 = issue26_checks(results)
    if checks26:
        w("### Issue 26 targets")
        w("")
        w("| target | measured | verdict |")
        w("|---|---|---|")
        for name, measured, ok in checks26:
            w("| %s | %s | %s |" % (name, measured, "—" if ok is None else
                                    ("met" if ok else "**not met**")))
        w("")
    # Issue 10's targets compare with plain Mosquitto: only when it ran (the WebSocket one,
    # wss against mqtts, whenever both ran).
    checks = [c for c in target_checks(results) if PLAIN in targets or "wss" in c[0]]
    if checks:
        w("### Issue 10 targets")
        w("")
        w("| target | measured | verdict |")
        w("|---|---|---|")
        for name, measured, ok in checks:
            w("| %s | %s | %s |" % (name, measured, "—" if ok is None else
                                    ("met" if ok else "**not met**")))
        w("")
    failures = sum(1 for s in results.values() for rs in s.values() for r in rs if not r.get("ok"))
    if failures:
        w("%d run(s) failed (see the log above); medians use the successful ones." % failures)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--quick", action="store_true", help="1 repetition, short runs (< 2 min)")
    ap.add_argument("--repeat", type=int)
    ap.add_argument("--only", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    ap.add_argument("--targets", help="comma-separated: " + ",".join(KNOWN_TARGETS))
    ap.add_argument("--moat-workers", default="auto")
    ap.add_argument("--json", help="also write every raw result to this file")
    ap.add_argument("--pin", action="store_true",
                    help="system under test on CPU 0, moat-bench on CPU 1 (taskset)")
    ap.add_argument("--issue26", action="store_true",
                    help="issue 26's table: its scenarios and targets, pinned")
    ap.add_argument("--certs", help="PKI folder (gen_certs.sh); default WORKDIR/certs")
    ap.add_argument("--perf", metavar="DIR",
                    help="profile each proxy (moat, haproxy, ...) with perf record during each "
                         "relay and handshake run; flat profiles into DIR")
    ap.add_argument("--syscalls", action="store_true",
                    help="count each proxy's system calls per delivered message (perf stat "
                         "on syscall tracepoints) during each relay run")
    a = ap.parse_args()
    if a.issue26:
        a.pin = True
        a.only = a.only or ",".join(ISSUE26_SCENARIOS)
        a.targets = a.targets or ",".join(ISSUE26_TARGETS)
    if a.pin:
        if shutil.which("taskset") is None:
            raise SystemExit("--pin needs taskset (util-linux)")
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit("--pin needs 2 CPUs, this process may use %s" % cpus)
        PIN["server"], PIN["client"] = str(cpus[0]), str(cpus[1])
        if a.moat_workers == "auto":
            a.moat_workers = "1"  # one core for the system under test: one worker

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workdir = a.workdir
    certs = a.certs or os.path.join(workdir, "certs")
    repeat = a.repeat or (1 if a.quick else 3)
    if a.quick:
        d = {"seconds": 1.2, "warmup": 0.4, "lat_seconds": 1.5, "handshakes": 200, "idle": 200,
             "settle_ms": 400}
    else:
        d = {"seconds": 3, "warmup": 1, "lat_seconds": 4, "handshakes": 500, "idle": 500,
             "settle_ms": 1000}
    scenarios = a.only.split(",") if a.only else list(SCENARIOS)
    if a.pin and "scaling" in scenarios:
        # Worker scaling needs both cores for the gateway: meaningless on one pinned core.
        log("--pin: skipping the scaling scenario (it measures 2 workers on 2 cores)")
        scenarios.remove("scaling")
    targets = a.targets.split(",") if a.targets else list(ALL_TARGETS)
    for s in scenarios:
        if s not in SCENARIOS:
            raise SystemExit("unknown scenario %s" % s)
    for t in targets:
        if t not in KNOWN_TARGETS:
            raise SystemExit("unknown target %s" % t)

    if "handshake_fleet" in scenarios:
        make_fleet(certs, max(1000, d["handshakes"] * repeat))
    try:
        tgt = {}
        log("starting servers in %s" % workdir)
        for t in targets:
            tgt[t] = start_target(t, workdir, certs, a.moat_workers, "")
        if "scaling" in scenarios:
            sport, _ = sink(workdir)
            for wk in (1, 2):
                port, p = moat(workdir, certs, sport, "moat-w%d" % wk, wk)
                tgt["moat-w%d" % wk] = {"port": port, "tls": True, "procs": {"moat": p},
                                        "sink_port": sport}

        results = {}
        for rep in range(repeat):
            for s in scenarios:
                order = ["moat-w1", "moat-w2"] if s == "scaling" else [
                    t for t in targets if t in tgt]
                k = rep % len(order)
                order = order[k:] + order[:k]  # rotate: no target always runs first
                for t in order:
                    if s == "idle":
                        # Fresh processes: a heap that already grew and shrank (earlier runs,
                        # handshake churn) absorbs new connections without growing RSS.
                        fresh = start_target(t, workdir, certs, a.moat_workers,
                                             "-idle%d" % (rep + 1))
                        try:
                            res = run_scenario(s, fresh, certs, d, rep)
                        finally:
                            stop_target(fresh)
                    elif a.syscalls and t in PROXIES and SCENARIOS[s][0] == "throughput":
                        res = count_syscalls(tgt[t]["procs"][t], max(1.0, d["seconds"] - 1.0),
                                             lambda: run_scenario(s, tgt[t], certs, d, rep),
                                             d["warmup"])
                    elif a.perf and t in PROXIES and SCENARIOS[s][0] in ("throughput",
                                                                         "handshake"):
                        os.makedirs(a.perf, exist_ok=True)
                        res = perf_profile(a.perf, "%s-r%d" % (s, rep + 1), t,
                                           tgt[t]["procs"][t],
                                           lambda: run_scenario(s, tgt[t], certs, d, rep))
                    else:
                        res = run_scenario(s, tgt[t], certs, d, rep)
                    results.setdefault(s, {}).setdefault(t, []).append(res)
                    log("[%d/%d] %s" % (rep + 1, repeat, summary_line(s, t, res)))
                    for name, info in tgt.items():
                        for proc in info["procs"].values():
                            if proc.poll() is not None:
                                raise SystemExit("%s (%s) exited with %s; log: %s" % (
                                    proc.bench_name, name, proc.returncode, proc.bench_log))
                    time.sleep(0.3)  # let queues from this run drain before the next
                    wait_quiet([p.pid for info in tgt.values()
                                for p in info["procs"].values()])
        if a.json:
            with open(a.json, "w") as f:
                json.dump(results, f, indent=1)
        print(report(results, [t for t in targets if t in tgt], repeat, a.moat_workers))
    finally:
        kill_all()


if __name__ == "__main__":
    main()
