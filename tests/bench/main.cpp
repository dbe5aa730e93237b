// moat-bench: load generator and fake broker for Moat's performance comparison
// (tests/bench/run.sh). See `moat-bench help`.

#include <openssl/ssl.h>
#include <signal.h>

#include <cstdio>
#include <cstring>

#include "tests/bench/Commands.h"

namespace {

const char* kUsage = R"(usage: moat-bench COMMAND [options]

Client commands (common options: --host H (127.0.0.1) --port P [--tls --ca CA.pem
  --cert CLIENT.pem --key CLIENT.key] [--ws /mqtt (MQTT over WebSocket)] [--topic bench/t]
  [--pid LABEL=PID ...]; with --pid the
  CPU time / RSS of those server processes is sampled over exactly the measured window):

  throughput [--qos 0|1] [--size 64] [--batch 1] [--window 64] [--publishers 1]
             [--seconds 5] [--warmup 1] [--no-subscriber] [--count-at HOST:PORT] [--pairs N]
      publishers -> server -> one subscriber; --pairs N: N publishers -> N subscribers 1:1
      (publisher i on TOPIC/i); --batch K writes K PUBLISH packets at once
      (one TLS record); QoS 1 keeps --window un-acknowledged packets per publisher;
      --count-at counts at a `moat-bench sink` instead of a subscriber.
  latency    [--rate 5000] [--qos 1] [--size 64] [--seconds 5] [--warmup 1]
      open-loop publisher at a fixed rate; percentiles of receive - scheduled send time.
  handshake  [--count 1000] [--concurrency 4] [--settle-ms 300] [--resume]
             [--fleet FLEET.pem [--fleet-offset 0]]
      full TLS handshake + CONNECT/CONNACK + DISCONNECT per session; sessions/s, CPU/session.
      Every session presents --cert (a known device reconnecting without a ticket) unless
      --fleet: session i presents device OFFSET+i of FLEET.pem (gen_fleet.py; each once).
      --resume: each connection offers the previous one's session ticket (reconnecting
      devices); the report counts the sessions the server resumed.
  idle       [--count 1000] [--concurrency 4] [--warm 20] [--settle-ms 1000]
             [--hold-seconds S] [--ready-file F]
      N silent sessions; RSS growth of the --pid processes per connection.

Flood commands (issue 6: what the gateway holds; IPv4 --host, clients spread over --sources
  consecutive addresses from --source-base 127.10.0.1; --probe: a TLS MQTT device times a
  publish round trip every --probe-interval-ms 100, --baseline-seconds 2 before and during):

  flood refuse    [--seconds 10] [--concurrency 128] [--sources 4] [--answer-timeout-ms 250]
                  [--hello] [--ban --ban-cert UNTRUSTED.pem --ban-key K] [--probe]
      new connections from sources the gateway refuses at accept (over the per-IP limits, or
      banned first by failed certificate authentications with --ban); refused/s, CPU per
      refusal, RSS before/peak/after. --hello sends a real ClientHello (admission = ServerHello).
  flood slowloris [--count 1000] [--sources 100] [--bytes 0] [--max-wait-seconds 30] [--probe]
      N sockets that never finish TLS (--bytes of a ClientHello, then silence); RSS per pending
      socket, time until the gateway reaps them (handshake_timeout).
  flood idle      [--count 1000] [--sources 100] [--concurrency 8] [--warm 20] [--settle-ms 500]
      N silent authenticated TLS + MQTT sessions; RSS per connection of every --pid process.

Server commands:
  sink       [--host 127.0.0.1] [--port 0] [--seconds 0 (= until SIGINT/SIGTERM)] [--deliver]
      fake broker: CONNACK/SUBACK/PUBACK, counts and drops publishes; answers "STATS\n".
  selftest   runs every command briefly against an in-process sink (ctest bench_smoke).

Every command prints figures, then one JSON line with the results (last line of stdout).
)";

}  // namespace

int main(int argc, char** argv) {
    signal(SIGPIPE, SIG_IGN);  // a peer closing mid-write is an error value, not a signal
    OPENSSL_init_ssl(0, nullptr);
    if (argc < 2 || !std::strcmp(argv[1], "help") || !std::strcmp(argv[1], "--help")) {
        std::fputs(kUsage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    using namespace moat::bench;
    const char* cmd = argv[1];
    if (!std::strcmp(cmd, "throughput")) return runThroughput(argc, argv, 2);
    if (!std::strcmp(cmd, "latency")) return runLatency(argc, argv, 2);
    if (!std::strcmp(cmd, "handshake")) return runHandshake(argc, argv, 2);
    if (!std::strcmp(cmd, "idle")) return runIdle(argc, argv, 2);
    if (!std::strcmp(cmd, "sink")) return runSink(argc, argv, 2);
    if (!std::strcmp(cmd, "selftest")) return runSelfTest(argc, argv, 2);
    if (!std::strcmp(cmd, "flood")) return runFlood(argc, argv, 2);
    std::fprintf(stderr, "moat-bench: unknown command '%s'\n%s", cmd, kUsage);
    return 2;
}
