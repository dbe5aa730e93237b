// `moat sign`: the signing helper for device developers (and tests). Reads the payload on
// stdin and prints what integrity.rules expects (CONTRACT.md §3 "Signed messages"; the signed
// bytes are topic ‖ 0x00 ‖ payload, or topic ‖ 0x01 ‖ ts ‖ payload with --timestamp, built by
// integrity::Signer, the same code the gateway verifies with):
//   --format v5 (default): "moat-sig=<base64>" and, with a timestamp, "moat-ts=<seconds>",
//                          one per line, the values of the MQTT 5 user properties;
//   --format v3:           the payload followed by the trailer ([ts] ‖ signature), raw bytes,
//                          ready to publish as a 3.1 / 3.1.1 payload.

#include <cstdio>
#include <ctime>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>

#include "gateway/cli/Commands.h"
#include "gateway/integrity/SignedPublish.h"
#include "policy/Base64.h"

namespace moat::cli {

namespace {

void signUsage() {
    std::fprintf(
        stderr,
        "usage: moat sign --key FILE --topic TOPIC [--algorithm hmac-sha256|ed25519]\n"
        "                 [--timestamp[=now|SECONDS]] [--format v5|v3]  < payload\n"
        "  hmac-sha256: FILE holds the shared secret (trailing newline ignored)\n"
        "  ed25519:     FILE is the device's PRIVATE key PEM (the gateway has the public)\n"
        "  --timestamp: sign with a timestamp (required by rules with max_age);\n"
        "               signed bytes: topic 0x01 ts payload (without: topic 0x00 payload)\n"
        "  v5: prints moat-sig=... and moat-ts=... (user property values)\n"
        "  v3: writes payload + trailer ([8-byte ts] + signature) to stdout\n");
}

}  // namespace

int signCommand(const Args& args) {
    std::string key, topic, algorithm = "hmac-sha256", format = "v5";
    std::optional<uint64_t> timestamp;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&](const char* flag, std::string& out) {
            const std::string f = flag;
            if (a == f && i + 1 < args.size()) {
                out = args[++i];
                return true;
            }
            if (a.rfind(f + "=", 0) == 0) {
                out = a.substr(f.size() + 1);
                return true;
            }
            return false;
        };
        std::string ts;
        if (value("--key", key) || value("--topic", topic) || value("--algorithm", algorithm) ||
            value("--format", format))
            continue;
        if (a == "--timestamp" || a == "--timestamp=now") {
            timestamp = uint64_t(std::time(nullptr));
        } else if (a.rfind("--timestamp=", 0) == 0) {
            timestamp = integrity::parseDecimal(a.substr(12));
            if (!timestamp) {
                std::fprintf(stderr, "moat sign: --timestamp: not 'now' or Unix seconds\n");
                return 1;
            }
        } else if (a == "-h" || a == "--help") {
            signUsage();
            return 0;
        } else {
            std::fprintf(stderr, "moat sign: unexpected argument '%s'\n", a.c_str());
            signUsage();
            return 1;
        }
    }
    if (key.empty() || topic.empty()) {
        signUsage();
        return 1;
    }
    integrity::Algorithm alg;
    if (algorithm == "hmac-sha256")
        alg = integrity::Algorithm::HmacSha256;
    else if (algorithm == "ed25519")
        alg = integrity::Algorithm::Ed25519;
    else {
        std::fprintf(stderr, "moat sign: --algorithm: hmac-sha256 or ed25519\n");
        return 1;
    }
    if (format != "v5" && format != "v3") {
        std::fprintf(stderr, "moat sign: --format: v5 or v3\n");
        return 1;
    }
    std::string error;
    auto signer = integrity::Signer::load(alg, key, error);
    if (!signer) {
        std::fprintf(stderr, "moat sign: %s\n", error.c_str());
        return 1;
    }
    std::string payload((std::istreambuf_iterator<char>(std::cin)),
                        std::istreambuf_iterator<char>());
    std::vector<uint8_t> sig = signer->sign(topic, payload, timestamp);
    if (sig.empty()) {
        std::fprintf(stderr, "moat sign: signing failed\n");
        return 1;
    }
    if (format == "v5") {
        std::printf("moat-sig=%s\n", policy::base64Encode(sig.data(), sig.size()).c_str());
        if (timestamp) std::printf("moat-ts=%llu\n", static_cast<unsigned long long>(*timestamp));
        return 0;
    }
    std::string out = payload;
    if (timestamp) {
        uint8_t ts[integrity::kTimestampSize];
        integrity::putTimestamp(*timestamp, ts);
        out.append(reinterpret_cast<const char*>(ts), sizeof ts);
    }
    out.append(reinterpret_cast<const char*>(sig.data()), sig.size());
    return std::fwrite(out.data(), 1, out.size(), stdout) == out.size() && std::fflush(stdout) == 0
               ? 0
               : 1;
}

}  // namespace moat::cli
