#pragma once
// Allocation-free walk over the `/`-separated levels of a topic name or filter.
// "a/b" -> "a", "b";  "/" -> "", "";  "a/" -> "a", "". An empty string has one empty level;
// callers reject empty topics before walking.

#include <cstddef>
#include <string_view>

namespace moat::policy {

class TopicLevels {
  public:
    explicit TopicLevels(std::string_view s) : s_(s) {}
    TopicLevels(std::string_view s, size_t pos, bool more) : s_(s), pos_(pos), more_(more) {}

    bool more() const { return more_; }

    // Precondition: more().
    std::string_view take() {
        const size_t slash = s_.find('/', pos_);
        std::string_view level;
        if (slash == std::string_view::npos) {
            level = s_.substr(pos_);
            more_ = false;
        } else {
            level = s_.substr(pos_, slash - pos_);
            pos_ = slash + 1;
        }
        return level;
    }

    std::string_view source() const { return s_; }
    size_t position() const { return pos_; }

  private:
    std::string_view s_;
    size_t pos_ = 0;
    bool more_ = true;
};

inline bool startsWithDollar(std::string_view level) {
    return !level.empty() && level[0] == '$';
}
inline bool isWildcardLevel(std::string_view level) {
    return level == "+" || level == "#";
}

}  // namespace moat::policy
