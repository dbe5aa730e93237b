// Fuzzes the configuration loader: arbitrary bytes as a YAML file must never crash, hang or
// throw out of loadConfigString, and the result must be coherent (a config exactly when there
// are no errors; every error names the file; loaded values satisfy the schema's rules).
// The scalar parsers get the first line too, and must agree with their own printers.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "gateway/config/Config.h"

using namespace moat::config;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

// The folder does not exist: file checks fail the same way on every machine.
constexpr const char* kPath = "/nonexistent-moat-fuzz/moat.yaml";

void checkScalars(const std::string& s) {
    if (auto hp = parseHostPort(s)) {
        auto again = parseHostPort(hp->toString());
        check(again && again->host == hp->host && again->port == hp->port);
    }
    if (auto d = parseDuration(s)) check(d->count() >= 0);
    parseSize(s);
    if (auto r = parseRate(s)) check(r->perSecond >= 0);
}

void checkConfig(const Config& c) {
    check(!c.listeners.empty());
    for (const auto& l : c.listeners) {
        check(!l.name.empty());
        check(l.workers >= 0 && l.workers <= 256);
        auto again = parseHostPort(l.bind.toString());
        check(again && again->port == l.bind.port);
        if (l.tls) check(l.tls->minVersion == "1.2" || l.tls->minVersion == "1.3");
    }
    check(c.backend.address.port != 0);
    check(!c.auth.methods.empty() || c.auth.anonymous);
    check(c.bans.duration <= c.bans.maxDuration);
    check(c.metrics.path.front() == '/');
    check(c.audit.maxEventsPerSecond > 0);
    for (const auto& name : c.policy.defaultRoles) {
        bool found = false;
        for (const auto& r : c.policy.roles) found = found || r.name == name;
        check(found);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    checkScalars(text.substr(0, text.find('\n')));
    LoadResult r = loadConfigString(text, kPath);
    check(static_cast<bool>(r.config) == r.errors.empty());
    for (const auto& e : r.errors) {
        check(e.file == kPath);
        check(e.line >= 0);
        check(!e.message.empty());
    }
    if (r.config) checkConfig(*r.config);
    return 0;
}
