#pragma once
// JSON string encoding for log lines built from untrusted bytes (topics, client ids, cert
// subjects). The output is always valid JSON and valid UTF-8, whatever the input.

#include <cstddef>
#include <string>
#include <string_view>

namespace moat::metrics {

// Appends `"…"`: quotes and backslashes escaped, control characters (and DEL, the C1 controls
// U+0080…U+009F, U+2028, U+2029, which break line-oriented and JavaScript consumers) as
// \uXXXX or their short escapes, and every byte that is not part of a well-formed UTF-8 sequence
// (overlong forms, surrogates, values above U+10FFFF, truncated sequences) replaced with U+FFFD. At
// most `maxInputBytes` input bytes are encoded (cut at a character boundary); a cut value ends with
// "…" so a reader can tell.
void appendJsonString(std::string& out, std::string_view value,
                      size_t maxInputBytes = std::string_view::npos);

// For the text log: appends `value` unquoted, but so that it always stays on one line and
// prints safely on a terminal. Control characters and DEL become \n, \r, \t or \xNN, bytes
// that are not well-formed UTF-8 become \xNN, and the C1 controls, U+2028 and U+2029 (where
// some readers split lines) become \uXXXX.
// Backslashes are kept (values already quoted with quoteForLog are not escaped twice): the
// guarantee is one record per line, not a reversible encoding.
void appendLogText(std::string& out, std::string_view value);

// `value` as a quoted JSON string (appendJsonString) cut at `maxInputBytes`: how the text log
// prints one untrusted value (a username, client id, topic, SNI …) so its end is unambiguous.
std::string quoteForLog(std::string_view value, size_t maxInputBytes = 256);

}  // namespace moat::metrics
