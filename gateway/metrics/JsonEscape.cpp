#include "gateway/metrics/JsonEscape.h"

#include <cstdint>

namespace moat::metrics {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr std::string_view kEllipsis = "\xE2\x80\xA6";     // U+2026

void appendUnicodeEscape(std::string& out, uint32_t cp) {
    out += "\\u";
    out += kHex[(cp >> 12) & 0xF];
    out += kHex[(cp >> 8) & 0xF];
    out += kHex[(cp >> 4) & 0xF];
    out += kHex[cp & 0xF];
}

// Length of the well-formed UTF-8 sequence starting at s[i] (RFC 3629 table), 0 if ill-formed.
size_t utf8SequenceLength(std::string_view s, size_t i, uint32_t& cp) {
    const auto b0 = static_cast<uint8_t>(s[i]);
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 < 0x80) {
        cp = b0;
        return 1;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2;
        cp = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3;
        cp = b0 & 0x0F;
        if (b0 == 0xE0) lo = 0xA0;  // overlong
        if (b0 == 0xED) hi = 0x9F;  // UTF-16 surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4;
        cp = b0 & 0x07;
        if (b0 == 0xF0) lo = 0x90;  // overlong
        if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
        return 0;
    }
    if (i + len > s.size()) return 0;
    for (size_t k = 1; k < len; ++k) {
        const auto b = static_cast<uint8_t>(s[i + k]);
        if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
        cp = (cp << 6) | (b & 0x3F);
    }
    return len;
}

// C1 controls (NEL U+0085 above all) and U+2028 / U+2029: valid text, but line splitters
// (Python's str.splitlines, JavaScript, some log shippers) end a line there.
// The end of the run of printable ASCII that starts at i (i itself when there is none), with
// `"` and `\` ending it too when jsonQuotes: such a run is copied in one go, the common case
// for topics, ids and addresses.
size_t plainRunEnd(std::string_view s, size_t i, bool jsonQuotes) {
    while (i < s.size()) {
        const auto v = static_cast<uint8_t>(s[i]);
        if (v < 0x20 || v >= 0x7F || (jsonQuotes && (v == '"' || v == '\\'))) break;
        ++i;
    }
    return i;
}

bool breaksLines(uint32_t cp) {
    return (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029;
}

}  // namespace

void appendJsonString(std::string& out, std::string_view value, size_t maxInputBytes) {
    bool cut = false;
    if (value.size() > maxInputBytes) {
        size_t end = maxInputBytes;
        // Back off to a character boundary so the cut does not manufacture a U+FFFD.
        while (end > 0 && (static_cast<uint8_t>(value[end]) & 0xC0) == 0x80) --end;
        value = value.substr(0, end);
        cut = true;
    }
    out.reserve(out.size() + value.size() + 2);
    out += '"';
    size_t i = 0;
    while (i < value.size()) {
        const char c = value[i];
        const auto u = static_cast<uint8_t>(c);
        if (const size_t j = plainRunEnd(value, i, true); j > i) {
            out.append(value.data() + i, j - i);
            i = j;
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                ++i;
                continue;
            case '\\':
                out += "\\\\";
                ++i;
                continue;
            case '\n':
                out += "\\n";
                ++i;
                continue;
            case '\r':
                out += "\\r";
                ++i;
                continue;
            case '\t':
                out += "\\t";
                ++i;
                continue;
            case '\b':
                out += "\\b";
                ++i;
                continue;
            case '\f':
                out += "\\f";
                ++i;
                continue;
            default:
                break;
        }
        if (u < 0x20 || u == 0x7F) {
            appendUnicodeEscape(out, u);
            ++i;
            continue;
        }
        uint32_t cp = 0;
        const size_t len = utf8SequenceLength(value, i, cp);
        if (len == 0) {
            out += kReplacement;
            ++i;  // resynchronise on the next byte
        } else if (breaksLines(cp)) {
            appendUnicodeEscape(out, cp);
            i += len;
        } else {
            out.append(value.data() + i, len);
            i += len;
        }
    }
    if (cut) out += kEllipsis;
    out += '"';
}

void appendLogText(std::string& out, std::string_view value) {
    out.reserve(out.size() + value.size());
    size_t i = 0;
    while (i < value.size()) {
        const char c = value[i];
        const auto u = static_cast<uint8_t>(c);
        if (const size_t j = plainRunEnd(value, i, false); j > i) {
            out.append(value.data() + i, j - i);
            i = j;
            continue;
        }
        switch (c) {
            case '\n':
                out += "\\n";
                ++i;
                continue;
            case '\r':
                out += "\\r";
                ++i;
                continue;
            case '\t':
                out += "\\t";
                ++i;
                continue;
            default:
                break;
        }
        uint32_t cp = 0;
        const size_t len = u < 0x80 ? 0 : utf8SequenceLength(value, i, cp);
        if (len == 0) {  // a control character, DEL, or a byte of no well-formed sequence
            out += "\\x";
            out += kHex[u >> 4];
            out += kHex[u & 0xF];
            ++i;
        } else if (breaksLines(cp)) {
            appendUnicodeEscape(out, cp);
            i += len;
        } else {
            out.append(value.data() + i, len);
            i += len;
        }
    }
}

std::string quoteForLog(std::string_view value, size_t maxInputBytes) {
    std::string out;
    appendJsonString(out, value, maxInputBytes);
    return out;
}

}  // namespace moat::metrics
