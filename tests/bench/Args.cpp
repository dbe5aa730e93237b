#include "tests/bench/Args.h"

#include <cerrno>
#include <cstdlib>

namespace moat::bench {

Args::Args(std::set<std::string> flags, std::set<std::string> valued,
           std::set<std::string> repeatable)
    : knownFlags_(std::move(flags)),
      knownValued_(std::move(valued)),
      knownRepeatable_(std::move(repeatable)) {}

bool Args::parse(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
        std::string a = argv[i];
        if (a.rfind("--", 0) != 0) {
            error_ = "unexpected argument '" + a + "'";
            return false;
        }
        std::string name = a.substr(2);
        std::string value;
        bool inlineValue = false;
        if (auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            inlineValue = true;
        }
        if (knownFlags_.count(name)) {
            if (inlineValue) {
                error_ = "--" + name + " takes no value";
                return false;
            }
            flags_.insert(name);
            continue;
        }
        bool repeatable = knownRepeatable_.count(name) != 0;
        if (!repeatable && !knownValued_.count(name)) {
            error_ = "unknown option --" + name;
            return false;
        }
        if (!inlineValue) {
            if (i + 1 >= argc) {
                error_ = "--" + name + " needs a value";
                return false;
            }
            value = argv[++i];
        }
        if (!repeatable && values_.count(name)) {
            error_ = "--" + name + " given twice";
            return false;
        }
        values_.emplace(name, value);
    }
    return true;
}

std::string Args::str(const std::string& name, const std::string& def) const {
    auto it = values_.find(name);
    return it == values_.end() ? def : it->second;
}

int64_t Args::integer(const std::string& name, int64_t def) {
    auto it = values_.find(name);
    if (it == values_.end()) return def;
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(it->second.c_str(), &end, 10);
    if (errno != 0 || end == it->second.c_str() || *end != '\0') {
        if (error_.empty()) error_ = "--" + name + ": not an integer: '" + it->second + "'";
        return def;
    }
    return v;
}

double Args::number(const std::string& name, double def) {
    auto it = values_.find(name);
    if (it == values_.end()) return def;
    errno = 0;
    char* end = nullptr;
    double v = std::strtod(it->second.c_str(), &end);
    if (errno != 0 || end == it->second.c_str() || *end != '\0') {
        if (error_.empty()) error_ = "--" + name + ": not a number: '" + it->second + "'";
        return def;
    }
    return v;
}

std::vector<std::string> Args::all(const std::string& name) const {
    std::vector<std::string> out;
    auto [b, e] = values_.equal_range(name);
    for (auto it = b; it != e; ++it) out.push_back(it->second);
    return out;
}

}  // namespace moat::bench
