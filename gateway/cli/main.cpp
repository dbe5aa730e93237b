// moat — the MQTT security gateway command line (CONTRACT.md §1).

#include <openssl/opensslv.h>
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "gateway/cli/Commands.h"

namespace {

void usage() {
    std::fprintf(
        stderr,
        "usage:\n"
        "  moat run -c FILE\n"
        "  moat check -c FILE\n"
        "  moat explain -c FILE --identity ID [--client-id CID] (publish|subscribe) TOPIC\n"
        "  moat audit -c FILE [--format text|json]\n"
        "  moat passwd FILE USER            (password read from stdin)\n"
        "  moat health -c FILE              (exit 0 while /healthz answers 200)\n"
        "  moat owners -c FILE [--release CLIENT_ID]   (client-id owners of the running gateway)\n"
        "  moat sign --key FILE --topic TOPIC [--algorithm hmac-sha256|ed25519]\n"
        "            [--timestamp[=now|SECONDS]] [--format v5|v3]   (payload on stdin;\n"
        "            v5 prints moat-sig/moat-ts values, v3 writes payload+trailer)\n"
        "  moat import --from mosquitto.conf   (prints a Moat config for it)\n"
        "  moat version\n");
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) {
        usage();
        return 1;
    }
    std::string cmd = args[0];
    args.erase(args.begin());
    // A peer closing mid-write must be an EPIPE error on that connection, not a dead process.
    std::signal(SIGPIPE, SIG_IGN);
    if (cmd == "run") return moat::cli::runCommand(args);
    if (cmd == "check") return moat::cli::checkCommand(args);
    if (cmd == "explain") return moat::cli::explainCommand(args);
    if (cmd == "audit") return moat::cli::auditCommand(args);
    if (cmd == "passwd") return moat::cli::passwdCommand(args);
    if (cmd == "health") return moat::cli::healthCommand(args);
    if (cmd == "owners") return moat::cli::ownersCommand(args);
    if (cmd == "sign") return moat::cli::signCommand(args);
    if (cmd == "import") return moat::cli::importCommand(args);
    if (cmd == "version" || cmd == "--version") return moat::cli::versionCommand(args);
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
        usage();
        return 0;
    }
    std::fprintf(stderr, "moat: unknown command '%s'\n", cmd.c_str());
    usage();
    return 1;
}
