#pragma once
// Command-line options of moat-bench: `--key value` pairs and bare `--flag`s. Unknown options
// are errors, so a typo in run.sh fails loudly instead of benchmarking the wrong thing.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace moat::bench {

class Args {
  public:
    // `flags` take no value; `repeatable` options may appear several times (values kept in
    // order); every other option takes exactly one value.
    Args(std::set<std::string> flags, std::set<std::string> valued,
         std::set<std::string> repeatable = {});

    // Parses argv[first..argc). Returns false and sets error() on an unknown or malformed option.
    bool parse(int argc, char** argv, int first);
    const std::string& error() const { return error_; }

    bool flag(const std::string& name) const { return flags_.count(name) != 0; }
    std::string str(const std::string& name, const std::string& def = "") const;
    // Integer / floating options; a malformed number records an error (see ok()).
    int64_t integer(const std::string& name, int64_t def);
    double number(const std::string& name, double def);
    std::vector<std::string> all(const std::string& name) const;
    bool has(const std::string& name) const { return values_.count(name) != 0; }
    bool ok() const { return error_.empty(); }

  private:
    std::set<std::string> knownFlags_, knownValued_, knownRepeatable_;
    std::set<std::string> flags_;
    std::multimap<std::string, std::string> values_;
    std::string error_;
};

}  // namespace moat::bench
