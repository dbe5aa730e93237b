#pragma once
// A flat-ish JSON object writer for the one-line result each subcommand prints last
// (run.sh parses that line). Keys keep insertion order.

#include <string>

namespace moat::bench {

class Json {
  public:
    Json& add(const std::string& key, double v);
    Json& add(const std::string& key, int64_t v);
    Json& add(const std::string& key, uint64_t v) { return add(key, static_cast<int64_t>(v)); }
    Json& add(const std::string& key, int v) { return add(key, static_cast<int64_t>(v)); }
    Json& add(const std::string& key, const std::string& v);
    Json& add(const std::string& key, const char* v) { return add(key, std::string(v)); }
    Json& add(const std::string& key, bool v);
    Json& add(const std::string& key, const Json& object);
    std::string str() const { return "{" + body_ + "}"; }

  private:
    void key(const std::string& k);
    std::string body_;
};

std::string jsonQuote(const std::string& s);

}  // namespace moat::bench
