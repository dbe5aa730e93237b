#pragma once
// moat-bench subcommands. Each parses its own options from argv[first..], prints
// human-readable figures, then one final line of JSON (the result run.sh collects), and
// returns the process exit status (0 ok, 1 failure, 2 usage error).

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "tests/bench/Args.h"
#include "tests/bench/Conn.h"
#include "tests/bench/ProcStats.h"

namespace moat::bench {

using Clock = std::chrono::steady_clock;

int runThroughput(int argc, char** argv, int first);
int runLatency(int argc, char** argv, int first);
int runHandshake(int argc, char** argv, int first);
int runIdle(int argc, char** argv, int first);
int runSink(int argc, char** argv, int first);
int runSelfTest(int argc, char** argv, int first);
int runFlood(int argc, char** argv, int first);  // Flood.cpp: refuse | slowloris | idle

// Options every client subcommand accepts: --host --port --tls --ca --cert --key --topic --pid.
std::set<std::string> clientFlags(std::set<std::string> extra);
std::set<std::string> clientValued(std::set<std::string> extra);
inline std::set<std::string> clientRepeatable() {
    return {"pid"};
}

struct ClientSetup {
    Endpoint ep;
    SslCtxPtr tls;
    std::string topic;
    std::vector<Watched> watched;
};
// Reads the common options; prints the problem and returns false on a usage error.
bool setupClient(Args& a, ClientSetup& out);

// Parses "host:port"; false on a malformed value.
bool parseHostPort(const std::string& s, std::string& host, uint16_t& port);

void sleepFor(double seconds);
double secondsSince(Clock::time_point t);
// The result line: printed last, flushed.
void printResult(const std::string& json);

}  // namespace moat::bench
