#pragma once
// Config-time checks for MQTT topic filters and UTF-8 text. Kept local to the config layer so
// it does not depend on the codec; the rules are those of MQTT 3.1.1 §4.7 / 5.0 §4.7.

#include <string>
#include <string_view>

namespace moat::config {

// Well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF) without U+0000.
bool isValidMqttUtf8(std::string_view s);

// Returns an empty string when `filter` is a valid topic filter, else why it is not.
// With `allowPlaceholders`, a whole level may be `%u` (identity) or `%c` (client id); any other
// '%' is refused so that a typo such as `%U` cannot silently become a literal level.
std::string topicFilterError(std::string_view filter, bool allowPlaceholders);

}  // namespace moat::config
