#include "gateway/config/TopicFilter.h"

#include <cstdint>

namespace moat::config {

bool isValidMqttUtf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c == 0) return false;
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len = 0;
        uint32_t cp = 0;
        uint32_t min = 0;
        if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (s.size() - i < len) return false;
        for (size_t k = 1; k < len; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

std::string topicFilterError(std::string_view filter, bool allowPlaceholders) {
    if (filter.empty()) return "empty topic filter";
    if (filter.size() > 65535) return "topic filter longer than 65535 bytes";
    if (!isValidMqttUtf8(filter)) return "topic filter is not valid UTF-8 or contains U+0000";
    size_t start = 0;
    while (true) {
        size_t slash = filter.find('/', start);
        bool last = slash == std::string_view::npos;
        std::string_view level =
            filter.substr(start, last ? std::string_view::npos : slash - start);
        if (level.find('#') != std::string_view::npos) {
            if (level != "#" || !last) return "'#' must be the whole last level";
        }
        if (level.find('+') != std::string_view::npos && level != "+") {
            return "'+' must be a whole level";
        }
        if (level.find('%') != std::string_view::npos) {
            if (!allowPlaceholders) return "placeholders (%u, %c) are not allowed here";
            if (level != "%u" && level != "%c") {
                return "only %u and %c placeholders are allowed, each as a whole level";
            }
        }
        if (last) break;
        start = slash + 1;
    }
    return {};
}

}  // namespace moat::config
