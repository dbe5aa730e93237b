#include "gateway/config/YamlReader.h"

#include <algorithm>
#include <cstdio>

#include "gateway/config/Scalars.h"

namespace moat::config::detail {
namespace {

const char* describeType(const YAML::Node& n) {
    switch (n.Type()) {
        case YAML::NodeType::Null:
            return "nothing";
        case YAML::NodeType::Scalar:
            return "a single value";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Map:
            return "a mapping";
        default:
            return "an undefined value";
    }
}

// Levenshtein distance, capped: only used to suggest a known key for a misspelt one.
size_t editDistance(std::string_view a, std::string_view b) {
    if (a.size() > 64 || b.size() > 64) return SIZE_MAX;
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
        }
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

std::string where(const std::string& path) {
    return path.empty() ? "at top level" : "in " + path;
}

}  // namespace

void Diagnostics::error(int line, std::string message) {
    if (errors_.size() >= kMaxErrors) {
        truncated_ = true;
        return;
    }
    errors_.push_back(ConfigError{file_, line, std::move(message)});
}

std::vector<ConfigError> Diagnostics::take() {
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
    if (truncated_) {
        errors_.push_back(ConfigError{
            file_, 0,
            "too many errors; only the first " + std::to_string(kMaxErrors) + " are shown"});
        truncated_ = false;
    }
    return std::move(errors_);
}

int lineOf(const YAML::Node& node) {
    const YAML::Mark m = node.Mark();
    return m.line >= 0 ? m.line + 1 : 0;
}

std::string childPath(const std::string& parent, std::string_view key) {
    if (parent.empty()) return std::string(key);
    std::string out;
    out.reserve(parent.size() + 1 + key.size());
    out += parent;
    out += '.';
    out += key;
    return out;
}

std::string quoteValue(std::string_view value) {
    constexpr size_t kMax = 80;
    std::string out = "'";
    for (size_t i = 0; i < value.size() && i < kMax; ++i) {
        auto c = static_cast<unsigned char>(value[i]);
        if (c < 0x20 || c == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    if (value.size() > kMax) out += "...";
    out += '\'';
    return out;
}

MapReader::MapReader(Diagnostics& diag, const YAML::Node& node, std::string path, int line)
    : diag_(diag), path_(std::move(path)), line_(line) {
    if (!node.IsMap()) return;
    entries_.reserve(node.size());
    for (auto it = node.begin(); it != node.end(); ++it) {
        // By value: yaml-cpp iterators hand out a temporary pair, so a reference would dangle.
        const YAML::Node key = it->first;
        int keyLine = lineOf(key);
        if (!key.IsScalar()) {
            diag_.error(keyLine,
                        "keys " + where(path_) + " must be plain names, not " + describeType(key));
            continue;
        }
        const std::string& name = key.Scalar();
        auto [slot, inserted] = index_.try_emplace(name, entries_.size());
        if (!inserted) {
            diag_.error(keyLine, "duplicate key " + quoteValue(name) + " " + where(path_) +
                                     " (first on line " +
                                     std::to_string(entries_[slot->second].keyLine) + ")");
            continue;
        }
        entries_.push_back(Entry{name, keyLine, it->second});
    }
}

std::optional<Field> MapReader::take(std::string_view key) {
    // Remembered for suggestions only. Maps of free-form names (roles, users) take every key,
    // so they never need suggestions; the cap keeps a huge users: map from growing this.
    if (known_.size() < 64) known_.push_back(key);
    auto slot = index_.find(std::string(key));
    if (slot != index_.end()) {
        Entry& e = entries_[slot->second];
        e.taken = true;
        Field f{childPath(path_, key), e.value, e.keyLine};
        if (e.value.IsScalar()) {
            int valueLine = lineOf(e.value);
            if (valueLine > 0) f.line = valueLine;
        }
        return f;
    }
    return std::nullopt;
}

void MapReader::finish() {
    for (const auto& e : entries_) {
        if (e.taken) continue;
        if (diag_.full()) return;  // spare the suggestions' edit distances
        std::string msg = "unknown key " + quoteValue(e.key) + " " + where(path_);
        std::string_view best;
        size_t bestDistance = 3;  // suggest only near misses: one or two edits
        for (auto k : known_) {
            size_t dist = editDistance(e.key, k);
            if (dist < bestDistance && dist < k.size()) {
                best = k;
                bestDistance = dist;
            }
        }
        if (!best.empty()) msg += " (did you mean '" + std::string(best) + "'?)";
        diag_.error(e.keyLine, std::move(msg));
    }
}

std::optional<MapReader> openMap(Diagnostics& d, const Field& f, bool nullIsEmpty) {
    if (f.node.IsMap() || (nullIsEmpty && f.node.IsNull())) {
        return std::optional<MapReader>(std::in_place, d, f.node, f.path, f.line);
    }
    d.error(f.line, f.path + ": expected a mapping, got " + describeType(f.node));
    return std::nullopt;
}

std::optional<std::vector<Field>> openList(Diagnostics& d, const Field& f) {
    if (!f.node.IsSequence()) {
        d.error(f.line, f.path + ": expected a list, got " + describeType(f.node));
        return std::nullopt;
    }
    std::vector<Field> items;
    items.reserve(f.node.size());
    size_t i = 0;
    for (auto it = f.node.begin(); it != f.node.end(); ++it, ++i) {
        int line = lineOf(*it);
        items.push_back(Field{f.path + "[" + std::to_string(i) + "]", *it, line ? line : f.line});
    }
    return items;
}

std::string describeChoices(const std::vector<std::string_view>& names) {
    std::string out;
    for (size_t i = 0; i < names.size(); ++i) {
        if (i > 0) out += (i + 1 == names.size()) ? " or " : ", ";
        out += names[i];
    }
    return out;
}

const std::string* scalarOf(Diagnostics& d, const Field& f, std::string_view expected) {
    if (f.node.IsScalar()) return &f.node.Scalar();
    if (f.node.IsNull()) {
        d.error(f.line, f.path + ": missing value (expected " + std::string(expected) + ")");
    } else {
        d.error(f.line,
                f.path + ": expected " + std::string(expected) + ", got " + describeType(f.node));
    }
    return nullptr;
}

bool readString(Diagnostics& d, const Field& f, std::string& out, bool allowEmpty) {
    const std::string* s = scalarOf(d, f, "a string");
    if (!s) return false;
    if (s->empty() && !allowEmpty) {
        d.error(f.line, f.path + ": must not be empty");
        return false;
    }
    out = *s;
    return true;
}

bool readBool(Diagnostics& d, const Field& f, bool& out) {
    const std::string* s = scalarOf(d, f, "true or false");
    if (!s) return false;
    auto v = parseBool(*s);
    if (!v) {
        d.error(f.line, f.path + ": bad value " + quoteValue(*s) + " (expected true or false)");
        return false;
    }
    out = *v;
    return true;
}

bool readUint(Diagnostics& d, const Field& f, uint32_t& out, uint32_t min, uint32_t max,
              bool allowUnlimited) {
    std::string expected = "an integer " + std::to_string(min) + ".." + std::to_string(max);
    if (allowUnlimited) expected += " or 'unlimited'";
    const std::string* s = scalarOf(d, f, expected);
    if (!s) return false;
    if (allowUnlimited && *s == "unlimited") {
        out = UINT32_MAX;
        return true;
    }
    auto v = parseUint(*s, UINT64_MAX);
    if (!v || *v < min || *v > max) {
        d.error(f.line, f.path + ": bad value " + quoteValue(*s) + " (expected " + expected + ")");
        return false;
    }
    out = static_cast<uint32_t>(*v);
    return true;
}

bool readDouble(Diagnostics& d, const Field& f, double& out, double minExclusive) {
    std::string expected = "a number above " + std::to_string(static_cast<long long>(minExclusive));
    const std::string* s = scalarOf(d, f, expected);
    if (!s) return false;
    auto v = parseDouble(*s);
    if (!v || !(*v > minExclusive) || *v > 1e9) {
        d.error(f.line, f.path + ": bad value " + quoteValue(*s) + " (expected " + expected + ")");
        return false;
    }
    out = *v;
    return true;
}

bool readDuration(Diagnostics& d, const Field& f, Millis& out, Millis min) {
    constexpr std::string_view kExpected = "a duration such as 500ms, 10s, 5m, 1h or 1d";
    const std::string* s = scalarOf(d, f, kExpected);
    if (!s) return false;
    auto v = parseDuration(*s);
    if (!v) {
        std::string hint(kExpected);
        if (parseUint(*s, UINT64_MAX)) hint = "a unit is required: " + hint;
        d.error(f.line, f.path + ": bad duration " + quoteValue(*s) + " (" + hint + ")");
        return false;
    }
    if (*v < min) {
        d.error(f.line,
                f.path + ": must be at least " +
                    (min.count() == 1 ? std::string("1ms") : std::to_string(min.count()) + "ms"));
        return false;
    }
    out = *v;
    return true;
}

bool readSize(Diagnostics& d, const Field& f, uint32_t& out, uint64_t min, uint64_t max) {
    constexpr std::string_view kExpected = "a size such as 512, 64KiB, 1MiB or 10KB";
    const std::string* s = scalarOf(d, f, kExpected);
    if (!s) return false;
    auto v = parseSize(*s);
    if (!v) {
        d.error(f.line, f.path + ": bad size " + quoteValue(*s) + " (expected " +
                            std::string(kExpected) + ")");
        return false;
    }
    if (*v < min || *v > max) {
        d.error(f.line, f.path + ": " + quoteValue(*s) + " is out of range (" +
                            std::to_string(min) + ".." + std::to_string(max) + " bytes)");
        return false;
    }
    out = static_cast<uint32_t>(*v);
    return true;
}

bool readRate(Diagnostics& d, const Field& f, Rate& out, RateKind kind) {
    const std::string expected = kind == RateKind::Count
                                     ? "a rate such as 100/s, 6000/m or 5/10s, or 'unlimited'"
                                     : "a rate such as 1MiB/s, 64KiB/s or 100KB/m, or 'unlimited'";
    const std::string* s = scalarOf(d, f, expected);
    if (!s) return false;
    auto v = parseRateSpec(*s);
    if (!v) {
        d.error(f.line, f.path + ": bad rate " + quoteValue(*s) + " (expected " + expected + ")");
        return false;
    }
    if (kind == RateKind::Count && v->bytes) {
        d.error(f.line,
                f.path + ": " + quoteValue(*s) + " is a byte rate; expected a count such as 100/s");
        return false;
    }
    out = v->rate;
    return true;
}

bool readHostPort(Diagnostics& d, const Field& f, HostPort& out, bool allowPortZero) {
    constexpr std::string_view kExpected =
        "host:port such as 0.0.0.0:8883, [::]:8883 or localhost:1883";
    const std::string* s = scalarOf(d, f, kExpected);
    if (!s) return false;
    auto v = parseHostPort(*s);
    if (!v) {
        std::string msg =
            f.path + ": bad address " + quoteValue(*s) + " (expected " + std::string(kExpected);
        if (std::count(s->begin(), s->end(), ':') > 1 && s->front() != '[') {
            msg += "; IPv6 addresses go in brackets";
        }
        d.error(f.line, msg + ")");
        return false;
    }
    if (v->port == 0 && !allowPortZero) {
        d.error(f.line, f.path + ": port 0 is not allowed here");
        return false;
    }
    out = std::move(*v);
    return true;
}

bool readStringList(Diagnostics& d, const Field& f, std::vector<std::string>& out) {
    auto items = openList(d, f);
    if (!items) return false;
    std::vector<std::string> values;
    values.reserve(items->size());
    bool ok = true;
    for (const auto& item : *items) {
        std::string v;
        if (readString(d, item, v)) {
            values.push_back(std::move(v));
        } else {
            ok = false;
        }
    }
    if (ok) out = std::move(values);
    return ok;
}

}  // namespace moat::config::detail
