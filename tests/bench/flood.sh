#!/usr/bin/env bash
# DoS benchmark (issue 6): what the gateway holds under connection floods, with its limits on.
#
#   tests/bench/flood.sh            # full run, < 3 minutes
#   tests/bench/flood.sh --smoke    # tiny counts, a few seconds (ctest bench_flood_smoke)
#   tests/bench/flood.sh --json FILE  # also keep the raw result lines
#
# Generates a throw-away PKI, starts Mosquitto and `moat run` (Release build in
# build/release unless MOAT_BIN / MOAT_BENCH_BIN are set) on free 127.0.0.1 ports with the
# contract's default limits (max_connections 10000, max_connections_per_ip 100,
# connection_rate_per_ip 20/s, bans after 5 failed authentications) and a 5 s
# handshake_timeout, then runs `moat-bench flood`:
#   slowloris  2,000 silent TCP sockets, then 2,000 that send 1 byte of TLS: RSS per pending
#              socket, time until reaped (fresh gateway each);
#   idle       9,500 authenticated TLS + MQTT sessions: RSS per connection of moat and
#              mosquitto (fresh servers; 10,000 does not fit the 20,000 open-file hard limit
#              with 2 descriptors per session in moat);
#   refuse     10 s of new connections from 4 source addresses over connection_rate_per_ip,
#              then from 4 banned addresses: refused/s, moat CPU per refusal, RSS;
#   anchor     the same rate-limited flood against HAProxy 2.6 (TLS in front of the same
#              Mosquitto) refusing at accept by a stick-table rule (conn_rate(1s) > 20 or more
#              than 100 connections per source): HAProxy's CPU per refusal, side by side
#              (skipped with a note when haproxy is not installed);
# with a TLS MQTT device timing a publish round trip every 100 ms before and during the
# slowloris and refuse attacks. Loopback only; every process started here is stopped on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${MOAT_BENCH_BUILD:-$root/build/release}
smoke=0
json_out=
while [[ $# -gt 0 ]]; do
    case $1 in
        --smoke) smoke=1 ;;
        --json) json_out=$2; shift ;;
        *) echo "usage: $0 [--smoke] [--json FILE]" >&2; exit 2 ;;
    esac
    shift
done

for tool in mosquitto python3 openssl curl; do
    command -v "$tool" >/dev/null || {
        echo "flood.sh: '$tool' not found; run deploy/install-deps.sh first" >&2
        exit 1
    }
done
if [[ -z "${MOAT_BIN:-}" || -z "${MOAT_BENCH_BIN:-}" ]]; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOAT_BUILD_TESTS=ON \
        >/dev/null
    ninja -C "$build" -j2 moat moat-bench >/dev/null
fi
moat_bin=${MOAT_BIN:-$build/gateway/cli/moat}
bench=${MOAT_BENCH_BIN:-$build/tests/bench/moat-bench}

if ((smoke)); then
    handshake_timeout=1s slow_count=50 idle_count=50 refuse_seconds=1 baseline=0.3 settle=200
else
    handshake_timeout=5s slow_count=2000 idle_count=9500 refuse_seconds=10 baseline=2 settle=1000
fi

# moat holds 2 descriptors per session (device + broker), mosquitto and the tool one each.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
work=$(mktemp -d /tmp/moat-flood.XXXXXX)
moat_pid= broker_pid= haproxy_pid=
stop_pid() {
    local pid=$1
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$haproxy_pid"
    stop_pid "$moat_pid"
    stop_pid "$broker_pid"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Four distinct free ports, bound at once so none can be handed out twice.
free_ports() {
    python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))'
}

"$root/tests/certs/gen_certs.sh" "$work/certs" >/dev/null
certs=$work/certs
read -r broker_port port metrics_port haproxy_port <<<"$(free_ports)"

cat >"$work/mosquitto.conf" <<EOF
listener $broker_port 127.0.0.1
allow_anonymous true
persistence false
log_dest file $work/mosquitto.log
max_queued_messages 0
EOF
[[ $(id -u) == 0 ]] && echo "user root" >>"$work/mosquitto.conf"

cat >"$work/moat.yaml" <<EOF
listeners:
  - name: flood
    bind: 127.0.0.1:$port
    tls:
      cert: $certs/server.pem
      key: $certs/server.key
      client_ca: $certs/ca.pem
      require_client_cert: true
backend:
  address: 127.0.0.1:$broker_port
auth:
  methods: [certificate]
policy:
  default_roles: [bench]
  roles:
    bench:
      publish: ["bench/#"]
      subscribe: ["bench/#"]
limits:
  max_connections: 10000
  max_connections_per_ip: 100
  connection_rate_per_ip: 20/s
  handshake_timeout: $handshake_timeout
bans:
  auth_failures: 5
  window: 60s
  duration: 5m
metrics:
  bind: 127.0.0.1:$metrics_port
audit:
  log: $work/audit.log
EOF
"$moat_bin" check -c "$work/moat.yaml" >/dev/null

start_broker() {
    stop_pid "$broker_pid"
    local runs
    runs=$(grep -c " running" "$work/mosquitto.log" 2>/dev/null || true)
    mosquitto -c "$work/mosquitto.conf" 2>>"$work/mosquitto.err" &
    broker_pid=$!
    for _ in $(seq 150); do
        (($(grep -c " running" "$work/mosquitto.log" 2>/dev/null || echo 0) > ${runs:-0})) && return 0
        sleep 0.1
    done
    echo "flood.sh: mosquitto did not start" >&2
    exit 1
}
# A fresh gateway for every measurement: the heap a previous phase freed would hide growth.
start_moat() {
    stop_pid "$moat_pid"
    "$moat_bin" run -c "$work/moat.yaml" 2>>"$work/moat.stderr" &
    moat_pid=$!
    # Readiness from /healthz (metrics port), not a listener connection the limits would count.
    for _ in $(seq 200); do
        curl -fs "http://127.0.0.1:$metrics_port/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$moat_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "flood.sh: moat did not become healthy; stderr:" >&2
    tail -n 20 "$work/moat.stderr" >&2
    exit 1
}
# The anchor: HAProxy with the same limits as moat's (connection_rate_per_ip 20/s,
# max_connections_per_ip 100), refusing at accept from a stick table, before any TLS.
start_haproxy() {
    stop_pid "$haproxy_pid"
    cat "$certs/server.pem" "$certs/server.key" >"$work/haproxy-server.pem"
    cat >"$work/haproxy.cfg" <<EOF
global
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend mqtts
    bind 127.0.0.1:$haproxy_port ssl crt $work/haproxy-server.pem ca-file $certs/ca.pem verify required
    stick-table type ip size 100k expire 60s store conn_rate(1s),conn_cur
    tcp-request connection track-sc0 src
    tcp-request connection reject if { sc_conn_rate(0) gt 20 } || { sc_conn_cur(0) gt 100 }
    default_backend broker
backend broker
    server mosquitto 127.0.0.1:$broker_port
EOF
    haproxy -db -f "$work/haproxy.cfg" 2>>"$work/haproxy.err" >/dev/null &
    haproxy_pid=$!
    # Ready once the port accepts (one connection from 127.0.0.1, not a flood source).
    for _ in $(seq 100); do
        python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' \
            "$haproxy_port" 2>/dev/null && return 0
        kill -0 "$haproxy_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "flood.sh: haproxy did not start; stderr:" >&2
    tail -n 20 "$work/haproxy.err" >&2
    exit 1
}
metric() {  # metric NAME LABEL-SUBSTRING: the sample's value, 0 when absent
    curl -fs "http://127.0.0.1:$metrics_port/metrics" |
        awk -v n="$1" -v l="$2" 'index($0, n) == 1 && index($0, l) { v = $NF } END { print v + 0 }'
}

tls=(--tls --ca "$certs/ca.pem" --cert "$certs/device1.pem" --key "$certs/device1.key")
probe=(--probe --baseline-seconds "$baseline")
results=$work/results.jsonl
# run LABEL moat-bench-args...: prints the figures, keeps the JSON line. Against moat unless
# run_port / run_gateway (LABEL=PID of the process refusing) say otherwise.
run() {
    local label=$1
    shift
    echo "=== $label"
    local out rc=0
    out=$("$bench" flood "$@" --host 127.0.0.1 --port "${run_port:-$port}" \
        --pid "${run_gateway:-moat=$moat_pid}" --pid "mosquitto=$broker_pid") || rc=$?
    printf '%s\n' "$out" | sed '$d'
    if ((rc != 0)); then
        echo "flood.sh: '$label' failed (exit $rc): $(tail -n 1 <<<"$out")" >&2
        exit 1
    fi
    printf '%s\n' "$out" | tail -n 1 | python3 -c \
        'import json, sys; r = json.loads(sys.stdin.read()); r["label"] = sys.argv[1]; print(json.dumps(r))' \
        "$label" >>"$results"
}

t0=$SECONDS
start_broker
start_moat
run "slowloris, silent" slowloris --count "$slow_count" --sources 200 --bytes 0 \
    --settle-ms "$settle" --max-wait-seconds 30 "${tls[@]}" "${probe[@]}"
start_moat
run "slowloris, 1 byte of TLS" slowloris --count "$slow_count" --sources 200 --bytes 1 \
    --settle-ms "$settle" --max-wait-seconds 30 "${tls[@]}" "${probe[@]}"
start_broker
start_moat
run "idle TLS+MQTT" idle --count "$idle_count" --sources 150 --settle-ms "$settle" "${tls[@]}"
start_moat
run "refuse, over connection_rate_per_ip" refuse --seconds "$refuse_seconds" --sources 4 \
    --source-base 127.20.0.1 --concurrency 128 "${tls[@]}" "${probe[@]}"
limited=$(metric moat_connections_total 'result="limited"')
start_moat
run "refuse, banned" refuse --seconds "$refuse_seconds" --sources 4 --source-base 127.30.0.1 \
    --concurrency 128 --ban --ban-cert "$certs/rogue.pem" --ban-key "$certs/rogue.key" \
    "${tls[@]}" "${probe[@]}"
banned=$(metric moat_connections_total 'result="banned"')
stop_pid "$moat_pid"
moat_pid=
if command -v haproxy >/dev/null; then
    start_haproxy
    run_port=$haproxy_port run_gateway="haproxy=$haproxy_pid" \
        run "anchor: haproxy refuse, stick-table conn_rate" refuse --seconds "$refuse_seconds" \
        --sources 4 --source-base 127.40.0.1 --concurrency 128 "${tls[@]}" "${probe[@]}"
    stop_pid "$haproxy_pid"
    haproxy_pid=
else
    echo "flood.sh: haproxy not installed: no HAProxy anchor measured" >&2
fi

echo
echo "=== summary ($((SECONDS - t0)) s; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "moat counted: ${limited} connections limited (rate phase), ${banned} banned (ban phase)"
python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def probe(r):
    p = r.get("probe")
    if not p:
        return "-"
    b, a = p["baseline"], p["attack"]
    return "%.0f/%.0f -> %.0f/%.0f (%d lost)" % (b["p50_us"], b["p99_us"], a["p50_us"],
                                                a["p99_us"], a["lost"])
print("| phase | figures | gateway (moat; haproxy for the anchor) | mosquitto | "
      "probe p50/p99 µs before -> during |")
print("|---|---|--:|--:|---|")
for r in rows:
    m = r["mode"]
    if m == "slowloris":
        fig = "%d pending, reaped after %.1f-%.1f s, %d not reaped" % (
            r["pending_at_sample"], r["reap_min_ms"] / 1000, r["reap_max_ms"] / 1000,
            r["not_reaped"])
        moat = "%.2f KiB/socket" % r["rss_kib_per_pending"]["moat"]
        mosq = "%.2f KiB/socket" % r["rss_kib_per_pending"]["mosquitto"]
    elif m == "idle":
        fig = "%d sessions open in %.1f s" % (r["opened"], r["open_seconds"])
        moat = "%.2f KiB/conn" % r["rss_kib_per_conn"]["moat"]
        mosq = "%.2f KiB/conn" % r["rss_kib_per_conn"]["mosquitto"]
    else:
        fig = "%.0f attempts/s, %.0f refused/s, %d admitted" % (
            r["attempted_per_s"], r["refused_per_s"], r["answered"] + r["held"])
        gw = "moat" if "moat" in r["cpu_us_per_refused"] else "haproxy"
        rss = r["rss"][gw]
        moat = "%s: %.1f µs CPU/refusal; RSS %d -> %d KiB" % (
            gw, r["cpu_us_per_refused"][gw], rss["before_kib"], rss["after_kib"])
        mosq = "%.2f µs CPU/refusal" % r["cpu_us_per_refused"]["mosquitto"]
    print("| %s | %s | %s | %s | %s |" % (r["label"], fig, moat, mosq, probe(r)))
EOF
[[ -z "$json_out" ]] || cp "$results" "$json_out"
