#!/usr/bin/env bash
# The demo: installs what is needed (Debian 12, as root), builds Moat, generates a development
# PKI and starts Mosquitto (plaintext, loopback only) with Moat in front of it, in the
# foreground. Ctrl-C stops both.
#
#   deploy/demo.sh            ports: Moat 8883 (mqtts) and 8084 (wss), broker 1883, metrics 9464
#   MOAT_PORT=18883 WSS_PORT=18084 BROKER_PORT=11883 METRICS_PORT=19464 deploy/demo.sh
# The browser example page is served on PAGE_PORT (8000) by `python3 -m http.server`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
export MOAT_PORT=${MOAT_PORT:-8883} BROKER_PORT=${BROKER_PORT:-1883} METRICS_PORT=${METRICS_PORT:-9464}
export WSS_PORT=${WSS_PORT:-8084} PAGE_PORT=${PAGE_PORT:-8000}
demo=${MOAT_DEMO_DIR:-$root/build/demo}

"$root/deploy/install-deps.sh"
cmake -S "$root" -B "$root/build/release" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOAT_BUILD_TESTS=OFF >/dev/null
ninja -C "$root/build/release" moat
moat="$root/build/release/gateway/cli/moat"

mkdir -p "$demo"
"$root/tests/certs/gen_certs.sh" "$demo/certs"
# ${VAR} in the template are the ports above; everything else is literal.
perl -pe 's/\$\{(\w+)\}/$ENV{$1}/g' "$root/deploy/demo/moat.yaml" >"$demo/moat.yaml"
[[ -f "$demo/passwd" ]] || echo "demo-password" | "$moat" passwd "$demo/passwd" ops-console

# A browser-ready example: MQTT.js over wss, password login (the page's origin is the one
# the wss listener allows).
mkdir -p "$demo/www"
cat >"$demo/www/index.html" <<PAGE
<!doctype html>
<html><head><meta charset="utf-8"><title>Moat over WebSocket</title></head>
<body><h1>MQTT over WebSocket through Moat</h1><pre id="log"></pre>
<script src="https://unpkg.com/mqtt@5.16.0/dist/mqtt.min.js"></script>
<script>
  const log = (s) => { document.getElementById('log').textContent += s + '\n'; };
  const c = mqtt.connect('wss://localhost:$WSS_PORT/mqtt',
                         { username: 'ops-console', password: 'demo-password' });
  c.on('connect', () => { log('connected'); c.subscribe('devices/#'); });
  c.on('message', (t, p) => log(t + ' ' + p));
  c.on('error', (e) => log('error: ' + e.message));
</script></body></html>
PAGE

cat >"$demo/mosquitto.conf" <<CONF
listener $BROKER_PORT 127.0.0.1
allow_anonymous true
persistence false
log_dest file $demo/mosquitto.log
CONF
"$moat" check -c "$demo/moat.yaml"
# Started as root, Mosquitto drops to user `mosquitto`: let that user write its log.
touch "$demo/mosquitto.log"
if [[ $(id -u) == 0 ]] && id mosquitto >/dev/null 2>&1; then chown mosquitto "$demo/mosquitto.log"; fi

mosquitto -c "$demo/mosquitto.conf" &
broker=$!
trap 'kill $broker 2>/dev/null || true' EXIT

cat <<HELP
Moat demo: devices -> TLS 127.0.0.1:$MOAT_PORT -> Moat -> 127.0.0.1:$BROKER_PORT Mosquitto
  certificates  $demo/certs   (device1, device2, operator1 = ops-console, revoked, ...)
  audit log     $demo/audit.log
  metrics       curl http://127.0.0.1:$METRICS_PORT/metrics
Try, from another shell:
  mosquitto_sub -h localhost -p $MOAT_PORT --cafile $demo/certs/ca.pem --cert $demo/certs/operator1.pem --key $demo/certs/operator1.key -t 'devices/#' -v
  mosquitto_pub -h localhost -p $MOAT_PORT --cafile $demo/certs/ca.pem --cert $demo/certs/device1.pem --key $demo/certs/device1.key -t devices/device1/telemetry/temp -m 21.5
  mosquitto_pub ... -t devices/device2/telemetry/temp   # denied: audit log + moat_authz_denied_total
Browser (MQTT over WebSocket, wss://localhost:$WSS_PORT/mqtt, user ops-console / demo-password):
  1. trust the demo CA $demo/certs/ca.pem in the browser, or open https://localhost:$WSS_PORT/
     once and accept the certificate (Moat then answers 404: only /mqtt upgrades)
  2. python3 -m http.server $PAGE_PORT --bind 127.0.0.1 -d $demo/www
  3. open http://127.0.0.1:$PAGE_PORT/ : it subscribes to devices/#; publish with mosquitto_pub
     above and the page shows it (pages from other origins get 403)
  In your own page:  mqtt.connect('wss://localhost:$WSS_PORT/mqtt', {username, password})
HELP
"$moat" run -c "$demo/moat.yaml"
