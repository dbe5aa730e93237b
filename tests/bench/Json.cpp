#include "tests/bench/Json.h"

#include <cmath>
#include <cstdio>

namespace moat::bench {

std::string jsonQuote(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

void Json::key(const std::string& k) {
    if (!body_.empty()) body_ += ',';
    body_ += jsonQuote(k);
    body_ += ':';
}

Json& Json::add(const std::string& k, double v) {
    key(k);
    if (!std::isfinite(v)) {
        body_ += "null";
    } else {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.6g", v);
        body_ += buf;
    }
    return *this;
}

Json& Json::add(const std::string& k, int64_t v) {
    key(k);
    body_ += std::to_string(v);
    return *this;
}

Json& Json::add(const std::string& k, const std::string& v) {
    key(k);
    body_ += jsonQuote(v);
    return *this;
}

Json& Json::add(const std::string& k, bool v) {
    key(k);
    body_ += v ? "true" : "false";
    return *this;
}

Json& Json::add(const std::string& k, const Json& object) {
    key(k);
    body_ += object.str();
    return *this;
}

}  // namespace moat::bench
