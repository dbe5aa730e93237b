#!/usr/bin/env bash
# Installs everything Moat needs on Debian 12 (as root): the build toolchain and libraries,
# and the real peers the tests run against (Mosquitto, its clients, paho, Node for MQTT.js,
# HAProxy and stunnel for the side-by-side benchmark, Chromium for the browser test,
# clang-format-14 for the style check). Idempotent and quiet when all is there.
set -euo pipefail

packages=(
    build-essential cmake ninja-build pkg-config git ca-certificates openssl
    libuv1-dev libssl-dev libyaml-cpp-dev prometheus-cpp-dev catch2 libjemalloc-dev
    clang-14 libfuzzer-14-dev libclang-rt-14-dev
    mosquitto mosquitto-clients python3 python3-paho-mqtt python3-pytest python3-yaml
    python3-cryptography
    haproxy stunnel4 procps
    libhiredis-dev redis-server
    prometheus
    clang-format-14
    libwslay-dev nlohmann-json3-dev libcurl4-openssl-dev python3-jwt
    chromium
)
# Node (for MQTT.js) may already come from elsewhere (e.g. NodeSource, whose nodejs bundles
# npm and conflicts with Debian's npm package): only install Debian's when there is none.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian mosquitto package starts a system broker on :1883 where an init system exists;
# Moat's demo and tests run their own brokers, so a system one is never needed.
