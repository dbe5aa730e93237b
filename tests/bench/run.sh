#!/usr/bin/env bash
# Side-by-side performance comparison of Moat, Mosquitto (plain and native TLS), HAProxy and
# stunnel, all on loopback (CONTRACT-level description in README, issue 10):
#
#   tests/bench/run.sh [--quick] [--repeat N] [--only SCENARIO,...] [--targets T,...]
#                      [--moat-workers auto|N] [--json FILE] [--pin] [--issue26]
#                      [--perf DIR] [--syscalls]
#
#   tests/bench/run.sh --issue26   # issue 26's table in one command (pinned, see bench.py)
#
# Installs nothing (tests/run.sh or deploy/install-deps.sh must have run: mosquitto, haproxy,
# stunnel4; --pin needs taskset and 2 CPUs). Builds a Release tree in build/release when moat
# or moat-bench is missing or stale, generates a PKI and the device fleet of the
# handshake_fleet scenario once into $MOAT_BENCH_PKI (default build/release/bench-pki; reused
# while valid: gen_certs.sh and gen_fleet.py are idempotent), starts every server on free
# 127.0.0.1 ports, runs each
# scenario interleaved across the targets, repeated (default 3, --quick 1 with short runs),
# and prints a markdown table of medians and ratios. Every process started is killed on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${MOAT_BENCH_BUILD:-$root/build/release}

for tool in mosquitto haproxy stunnel python3 openssl taskset; do
    command -v "$tool" >/dev/null || {
        echo "run.sh: '$tool' not found; run deploy/install-deps.sh first" >&2
        exit 1
    }
done

if [[ -z "${MOAT_BIN:-}" || -z "${MOAT_BENCH_BIN:-}" ]]; then
    # MOAT_BUILD_TESTS=ON: the demo configures the same tree with tests off.
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOAT_BUILD_TESTS=ON \
        >/dev/null
    ninja -C "$build" -j"$(nproc)" moat moat-bench >/dev/null
fi
export MOAT_BIN=${MOAT_BIN:-$build/gateway/cli/moat}
export MOAT_BENCH_BIN=${MOAT_BENCH_BIN:-$build/tests/bench/moat-bench}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
work=$(mktemp -d /tmp/moat-bench.XXXXXX)
pid=
cleanup() {
    # bench.py kills its own children on every exit path; this covers a kill of bench.py.
    if [[ -n "$pid" ]]; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        sleep 1
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pki=${MOAT_BENCH_PKI:-$build/bench-pki}
"$root/tests/certs/gen_certs.sh" "$pki"
# Own process group, so cleanup can end bench.py and everything it started at once.
setsid /usr/bin/python3 "$root/tests/bench/bench.py" --workdir "$work" --certs "$pki" "$@" &
pid=$!
wait "$pid"
rc=$?
pid=
exit $rc
