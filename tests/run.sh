#!/usr/bin/env bash
# Builds and runs every test: installs what is needed (Debian 12, as root), then
#   1. Release build: the unit suites (Catch2), and what is about other software or needs the
#      optimised binary: the interoperability suites (`interop`: the compat matrix with real
#      client libraries, MQTT.js, fleets, Mosquitto migration input), the bench smokes, the
#      deployment files and the style check;
#   2. Asan build (AddressSanitizer + UndefinedBehaviorSanitizer): the unit suites again and
#      every suite that drives Moat's own code (`sanitized`: the integration suites against a
#      real Mosquitto with real TLS clients — mosquitto_pub/sub, paho, MQTT.js, Chromium — and
#      the security suites), plus the soak's CI setting (soak_short: 300 TLS devices under
#      faults, ~95 s). Each of these runs once, here, where it also checks for leaks, memory
#      errors and undefined behaviour; `ctest` in build/release runs them all by hand;
#      The ASan tree is built with clang-14 and libFuzzer's instrumentation (MOAT_FUZZ), so
#      it also holds the fuzz targets;
#   3. fuzz smoke: every libFuzzer target (from the ASan tree) for 10 s over its seed corpus.
# Stops at the first failing stage and exits non-zero. MOAT_SKIP_ASAN=1 / MOAT_SKIP_FUZZ=1
# skip stages 2 / 3 for a quick local loop.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
"$root/deploy/install-deps.sh"

# MQTT.js and aedes for the interoperability suite, exactly as package-lock.json pins them.
# Reinstalled whenever the lock file changes; a failed install stops the run (CI must not
# silently skip the suite). MOAT_SKIP_NPM=1 skips it: the JS tests then report themselves
# as skipped.
js="$root/tests/integration/js"
if [[ "${MOAT_SKIP_NPM:-0}" != 1 && -f "$js/package-lock.json" ]] &&
    ! cmp -s "$js/package-lock.json" "$js/node_modules/.moat-installed-lock"; then
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error &&
        cp package-lock.json node_modules/.moat-installed-lock)
fi

# Each run gets the open-file limit the connection-count tests need.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# build_and_test TYPE DIR [ctest arguments…]; extra cmake arguments in the array `configure`.
configure=()
build_and_test() {
    local type=$1 dir=$2
    shift 2  # the rest: extra ctest arguments
    echo "=== $type build ($dir)"
    # MOAT_BUILD_TESTS is passed explicitly: the demo's build folder caches it OFF, and a
    # cached OFF would leave this stage with no tests at all.
    cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" -DMOAT_BUILD_TESTS=ON \
        "${configure[@]}" >/dev/null
    ninja -C "$dir" -j"$jobs"
    echo "=== $type tests"
    # A failing suite is run once more before the stage fails: the integration suites drive
    # real brokers, clients and timers on a shared 2-core machine, and a rare scheduling
    # hiccup must not block everything else. A real failure fails twice; ctest's output
    # shows the first attempt either way.
    # --no-tests=error: a stage that finds no tests fails instead of passing empty.
    (cd "$dir" && ctest --output-on-failure --no-tests=error --timeout 600 --repeat until-pass:2 "$@")
}

# MOAT_SKIP_ASAN=1 (a quick local loop) runs every suite in the Release stage instead.
if [[ "${MOAT_SKIP_ASAN:-0}" == 1 ]]; then
    build_and_test Release "$root/build/release" -LE soak
else
    build_and_test Release "$root/build/release" -LE "soak|sanitized"
    # One clang-14 tree serves both the sanitized suites and the fuzz smoke (MOAT_FUZZ adds
    # libFuzzer's coverage instrumentation and the fuzz targets): one full build fewer.
    configure=(-DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 -DMOAT_FUZZ=ON)
    ASAN_OPTIONS=detect_leaks=1 build_and_test Asan "$root/build/asan" -LE "interop|bench|deploy|style"
    configure=()
fi

if [[ "${MOAT_SKIP_FUZZ:-0}" != 1 ]]; then
    echo "=== fuzz smoke"
    dir="$root/build/asan"
    if [[ "${MOAT_SKIP_ASAN:-0}" == 1 ]]; then
        # No sanitized tree was built: a fuzz-only one (libraries and targets).
        dir="$root/build/fuzz"
        cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
            -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
            -DMOAT_FUZZ=ON -DMOAT_BUILD_TESTS=OFF >/dev/null
        ninja -C "$dir" -j"$jobs" $(cd "$root/tests/fuzz" && ls fuzz_*.cpp 2>/dev/null | sed 's/\.cpp$//')
    fi
    targets=0
    for src in "$root"/tests/fuzz/fuzz_*.cpp; do
        [[ -e "$src" ]] || continue
        name=$(basename "$src" .cpp)
        corpus="$root/tests/fuzz/corpus/${name#fuzz_}"
        work=$(mktemp -d)
        [[ -d "$corpus" ]] && cp -r "$corpus"/. "$work"/
        echo "--- $name"
        "$dir/tests/fuzz/$name" -max_total_time=10 -max_len=4096 "$work" 2>&1 | tail -n 2
        rm -rf "$work"
        targets=$((targets + 1))
    done
    ((targets > 0)) || { echo "fuzz smoke: no fuzz targets found" >&2; exit 1; }
    echo "fuzz smoke: $targets targets run"
fi
echo "=== all tests passed"
