#pragma once
// Schema-driven reading of a yaml-cpp tree. Every problem becomes a ConfigError with a
// 1-based line and the dotted path of the value ("listeners[0].tls.cert"); readers never
// throw and never stop at the first problem, so `moat check` can list all of them.

#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gateway/config/Config.h"

namespace moat::config::detail {

class Diagnostics {
  public:
    explicit Diagnostics(std::string file) : file_(std::move(file)) {}
    // A list past this length helps nobody, and keeps a hostile file from costing much.
    static constexpr size_t kMaxErrors = 200;

    void error(int line, std::string message);
    size_t count() const { return errors_.size() + (truncated_ ? 1 : 0); }
    bool full() const { return errors_.size() >= kMaxErrors; }
    // Errors in file order (stable for equal lines: parse order).
    std::vector<ConfigError> take();

  private:
    std::string file_;
    std::vector<ConfigError> errors_;
    bool truncated_ = false;
};

// 1-based line of a node, 0 when yaml-cpp has no position for it.
int lineOf(const YAML::Node& node);

// One value being read, and where it sits (for messages).
struct Field {
    std::string path;  // "backend.connect_timeout", "listeners[1]"
    YAML::Node node;
    int line = 0;  // the value's line, or the key's for nulls and collections
};

std::string childPath(const std::string& parent, std::string_view key);

// A user-supplied value made safe for a one-line message: quoted, control bytes escaped,
// cut at 80 bytes.
std::string quoteValue(std::string_view value);

// Reads one mapping: remembers which keys were taken, reports duplicate keys up front and
// unknown keys in finish().
class MapReader {
  public:
    // `node` must be a map or null (null reads as empty).
    MapReader(Diagnostics& diag, const YAML::Node& node, std::string path, int line);
    // `key` must outlive the reader (the schema's string literals do).
    std::optional<Field> take(std::string_view key);
    // Reports every key that was never taken: unknown keys are always errors.
    void finish();
    const std::string& path() const { return path_; }
    int line() const { return line_; }
    bool empty() const { return entries_.empty(); }

  private:
    struct Entry {
        std::string key;
        int keyLine;
        YAML::Node value;
        bool taken = false;
    };
    Diagnostics& diag_;
    std::string path_;
    int line_;
    std::vector<Entry> entries_;                     // file order, for messages
    std::unordered_map<std::string, size_t> index_;  // key -> entries_ slot: users: may be big
    std::vector<std::string_view> known_;  // every key asked for: the schema, for suggestions
};

// Opens a mapping-valued field. A null value reads as an empty mapping when `nullIsEmpty`
// (a section whose content is all commented out), else it is an error.
std::optional<MapReader> openMap(Diagnostics& d, const Field& f, bool nullIsEmpty);
// Opens a list-valued field; the items come back as Fields named "path[i]".
std::optional<std::vector<Field>> openList(Diagnostics& d, const Field& f);

// Scalar readers. On a bad value they report it and leave `out` untouched.
bool readString(Diagnostics& d, const Field& f, std::string& out, bool allowEmpty = false);
bool readBool(Diagnostics& d, const Field& f, bool& out);
// Integer in [min, max]; with `allowUnlimited`, the word "unlimited" reads as UINT32_MAX.
bool readUint(Diagnostics& d, const Field& f, uint32_t& out, uint32_t min, uint32_t max,
              bool allowUnlimited = false);
bool readDouble(Diagnostics& d, const Field& f, double& out, double minExclusive);
bool readDuration(Diagnostics& d, const Field& f, Millis& out, Millis min);
bool readSize(Diagnostics& d, const Field& f, uint32_t& out, uint64_t min, uint64_t max);
enum class RateKind { Count, Bytes };
bool readRate(Diagnostics& d, const Field& f, Rate& out, RateKind kind);
bool readHostPort(Diagnostics& d, const Field& f, HostPort& out, bool allowPortZero);
bool readStringList(Diagnostics& d, const Field& f, std::vector<std::string>& out);

template <class E>
struct EnumName {
    std::string_view name;
    E value;
};

// "expected a, b or c"
std::string describeChoices(const std::vector<std::string_view>& names);
const std::string* scalarOf(Diagnostics& d, const Field& f, std::string_view expected);

template <class E>
bool readEnum(Diagnostics& d, const Field& f, E& out, std::initializer_list<EnumName<E>> names) {
    std::vector<std::string_view> all;
    for (const auto& n : names) all.push_back(n.name);
    const std::string* s = scalarOf(d, f, describeChoices(all));
    if (!s) return false;
    for (const auto& n : names) {
        if (n.name == *s) {
            out = n.value;
            return true;
        }
    }
    d.error(f.line,
            f.path + ": bad value " + quoteValue(*s) + " (expected " + describeChoices(all) + ")");
    return false;
}

}  // namespace moat::config::detail
