// `selftest`: every subcommand for a fraction of a second against an in-process sink in
// deliver mode, over plaintext loopback on an ephemeral port. Checks that each run succeeds
// and that the sink counted what the clients sent; never checks a timing (ctest bench_smoke).

#include <unistd.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "tests/bench/Commands.h"
#include "tests/bench/Sink.h"

namespace moat::bench {
namespace {

using Runner = std::function<int(int, char**, int)>;

int invoke(const Runner& run, std::vector<std::string> args) {
    args.insert(args.begin(), "moat-bench");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::printf("--- %s\n",
                [&] {
                    std::string s;
                    for (size_t i = 1; i < args.size(); ++i) s += (i > 1 ? " " : "") + args[i];
                    return s;
                }()
                    .c_str());
    std::fflush(stdout);
    return run(static_cast<int>(args.size()), argv.data(), 2);
}

}  // namespace

// argv unused: takes no options, but keeps the signature every bench command has.
int runSelfTest(int argc, char** /*argv*/, int first) {
    if (argc > first) {
        std::fprintf(stderr, "moat-bench selftest: takes no options\n");
        return 2;
    }
    SinkServer sink;
    std::string error;
    if (!sink.start("127.0.0.1", 0, /*deliver=*/true, error)) {
        std::fprintf(stderr, "moat-bench selftest: %s\n", error.c_str());
        return 1;
    }
    const std::string port = std::to_string(sink.port());
    const std::string self = "self=" + std::to_string(::getpid());
    const std::string countAt = "127.0.0.1:" + port;
    int failures = 0;
    auto check = [&](const char* what, bool ok) {
        std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
        if (!ok) ++failures;
    };

    uint64_t before = sink.publishes();
    check("throughput qos0 batch 8 via subscriber",
          invoke(runThroughput, {"throughput", "--port", port, "--qos", "0", "--batch", "8",
                                 "--seconds", "0.2", "--warmup", "0.05", "--pid", self}) == 0);
    check("sink counted the qos0 publishes", sink.publishes() > before);
    check(
        "throughput qos1 window 16, counted at the sink",
        invoke(runThroughput, {"throughput", "--port", port, "--qos", "1", "--window", "16",
                               "--batch", "4", "--no-subscriber", "--count-at", countAt,
                               "--publishers", "2", "--seconds", "0.2", "--warmup", "0.05"}) == 0);
    check("throughput 4 KiB qos1 via subscriber",
          invoke(runThroughput, {"throughput", "--port", port, "--qos", "1", "--size", "4096",
                                 "--seconds", "0.2", "--warmup", "0.05"}) == 0);
    check("throughput qos1, 2 publishers -> 2 subscribers 1:1",
          invoke(runThroughput, {"throughput", "--port", port, "--qos", "1", "--pairs", "2",
                                 "--seconds", "0.2", "--warmup", "0.05"}) == 0);
    check("--pairs with --publishers is a usage error",
          invoke(runThroughput,
                 {"throughput", "--port", port, "--pairs", "2", "--publishers", "2"}) == 2);
    check("latency 2000/s qos1", invoke(runLatency, {"latency", "--port", port, "--rate", "2000",
                                                     "--seconds", "0.3", "--warmup", "0.05"}) == 0);
    check("handshake 40 sessions",
          invoke(runHandshake, {"handshake", "--port", port, "--count", "40", "--concurrency", "4",
                                "--settle-ms", "0", "--pid", self}) == 0);
    uint64_t conns = sink.connections();
    check("idle 30 sessions", invoke(runIdle, {"idle", "--port", port, "--count", "30", "--warm",
                                               "5", "--settle-ms", "50", "--pid", self}) == 0);
    check("sink saw the idle sessions", sink.connections() >= conns + 35);
    check("usage error is reported", invoke(runThroughput, {"throughput", "--qos", "7"}) == 2);
    sink.stop();
    std::printf("selftest: %s\n", failures == 0 ? "passed" : "FAILED");
    return failures == 0 ? 0 : 1;
}

}  // namespace moat::bench
